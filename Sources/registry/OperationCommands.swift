import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

/// `registry events`: reads the event log, optionally following it.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the event log.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Start after this cursor.") var after: String?
    @Option(help: "Seconds to wait for the first new event.") var wait: Int?
    @Flag(help: "Keep reading new events until interrupted.") var follow = false

    func run() async throws {
        let client = options.client
        var cursor = after
        repeat {
            let page = try await client.events(after: cursor, wait: follow ? (wait ?? 30) : wait)
            for event in page.items {
                try options.print(event) { event in
                    "\(event.id)\t\(Timestamp.format(event.time))\t\(event.type)\t\(event.model ?? "-")"
                }
            }
            if !options.json && !follow { print("next cursor: \(page.nextCursor)") }
            cursor = page.nextCursor
        } while follow
    }
}

/// `registry audit …`: the hash-chained audit log.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read and verify the audit log.", subcommands: [List.self, Verify.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit entries.")
        @OptionGroup var options: ClientOptions
        @Option var model: String?
        @Option(help: "Start after this sequence number.") var after: Int64?
        @Option var limit: Int?

        func run() async throws {
            let page = try await options.client.auditEntries(model: model, after: after, limit: limit)
            try options.print(page) { page in
                page.items.map {
                    "\($0.sequence)\t\(Timestamp.format($0.time))\t\($0.actor)\t\($0.action)\t\($0.target)"
                }.joined(separator: "\n")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the audit hash chain end to end.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let result = try await options.client.verifyAudit()
            try options.print(result) { result in
                result.ok
                    ? "ok: \(result.entries) entries, head \(result.headHash)"
                    : "BROKEN at entry \(result.firstBadSequence ?? 0): \(result.problem ?? "unknown problem")"
            }
            if !result.ok { throw ExitCode.failure }
        }
    }
}

/// `registry token …`: bearer tokens (admins).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Issue, list and revoke tokens.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a token; its secret is shown only once.")
        @OptionGroup var options: ClientOptions
        @Argument var subject: String
        @Flag(help: "An administrator token: may do everything.")
        var admin = false
        @Flag(help: "May create models (and so becomes their owner); admins always may.")
        var canCreateModels = false
        @Option(help: "Expire the token at this RFC 3339 time (for example 2027-01-31T00:00:00Z), or after Nd/Nh.")
        var expires: String?

        func validate() throws {
            if let expires, Self.expiry(expires, now: Date()) == nil {
                throw ValidationError("--expires takes an RFC 3339 time or a duration such as 30d or 12h.")
            }
        }

        func run() async throws {
            let expiresAt = expires.flatMap { Self.expiry($0, now: Date()) }
            let issued = try await options.client.createToken(
                subject: subject, admin: admin, canCreateModels: canCreateModels, expiresAt: expiresAt)
            try options.print(issued) { "token for \($0.subject): \($0.token)" }
        }

        /// `text` as a time: RFC 3339, or `N` days (`30d`) or hours (`12h`) from `now`.
        static func expiry(_ text: String, now: Date) -> Date? {
            if let date = Timestamp.parse(text) { return date }
            guard let unit = text.last, let amount = Int(text.dropLast()), amount > 0, amount <= 36_500 * 24 else {
                return nil
            }
            switch unit {
            case "d": return now.addingTimeInterval(TimeInterval(amount) * 86_400)
            case "h": return now.addingTimeInterval(TimeInterval(amount) * 3_600)
            default: return nil
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (without secrets).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try options.print(try await options.client.tokens()) { tokens in
                tokens.map { "\($0.id)\t\($0.subject)\($0.admin ? "\tadmin" : "")" }.joined(separator: "\n")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by id.")
        @OptionGroup var options: ClientOptions
        @Argument var id: String

        func run() async throws {
            try await options.client.revokeToken(id: id)
            if !options.json { print("revoked \(id)") }
        }
    }
}
