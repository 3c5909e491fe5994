import ArgumentParser
import RegistryClient
import RegistryCore

/// `registry version …`: a model's versions.
struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Create, inspect and archive versions.",
        subcommands: [Create.self, Get.self, List.self, Archive.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an uploaded manifest as a new version.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Option(help: "The manifest's digest (sha256:…).") var manifest: String
        @Option(name: .customLong("tag"), help: "A tag as key=value (repeatable).") var tags: [String] = []
        @Option(help: "Free-form metadata as a JSON object.") var metadata: String?

        func run() async throws {
            let version = try await options.client.createVersion(
                model: model, manifestDigest: try Digest(parsing: manifest), metadata: try Parse.json(metadata),
                tags: try Parse.tags(tags))
            try options.print(version, Describe.version)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a version.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var version: Int

        func run() async throws {
            try options.print(try await options.client.version(model: model, number: version), Describe.version)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a model's versions, newest first.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Option(help: "pending, approved, rejected or archived.") var status: String?
        @Option(help: "Filter by tag, written key:value.") var tag: String?
        @Option var limit: Int?
        @Option var pageToken: String?

        func validate() throws {
            if let status, VersionStatus(rawValue: status) == nil {
                throw ValidationError("--status is pending, approved, rejected or archived.")
            }
        }

        func run() async throws {
            let page = try await options.client.versions(
                model: model, status: status.flatMap(VersionStatus.init(rawValue:)), tag: tag, limit: limit,
                pageToken: pageToken)
            try options.print(page) { page in
                (page.items.map { "\($0.version)\t\($0.status.rawValue)\t\($0.size)\t\($0.createdBy)" }
                    + (page.nextPageToken.map { ["next page: \($0)"] } ?? [])).joined(separator: "\n")
            }
        }
    }

    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Archive a version no stage points at.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var version: Int
        @Option(help: "The version revision to change (default: the current one).") var revision: Int?

        func run() async throws {
            let client = options.client
            let expected: Int
            if let revision {
                expected = revision
            } else {
                expected = try await client.version(model: model, number: version).revision
            }
            let archived = try await client.archiveVersion(model: model, number: version, revision: expected)
            try options.print(archived, Describe.version)
        }
    }
}

/// `registry approve MODEL VERSION`: records an approval or, with `--reject`, a rejection.
struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve (or reject) a version.")
    @OptionGroup var options: ClientOptions
    @Argument var model: String
    @Argument var version: Int
    @Flag(help: "Reject instead of approving.") var reject = false
    @Option var comment: String?
    @Option(help: "The version revision to decide on (default: the current one).") var revision: Int?

    func run() async throws {
        let client = options.client
        let expected: Int
        if let revision {
            expected = revision
        } else {
            expected = try await client.version(model: model, number: version).revision
        }
        let decided = try await client.decide(
            model: model, number: version, decision: reject ? .reject : .approve, comment: comment, revision: expected)
        try options.print(decided, Describe.version)
    }
}
