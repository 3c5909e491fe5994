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
        @Flag var admin = false

        func run() async throws {
            let issued = try await options.client.createToken(subject: subject, admin: admin)
            try options.print(issued) { "token for \($0.subject): \($0.token)" }
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
