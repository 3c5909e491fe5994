import ArgumentParser
import RegistryClient
import RegistryCore

/// `registry stage …`: named pointers to approved versions.
struct StageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stage", abstract: "Inspect, promote and roll back stages.",
        subcommands: [Get.self, Set.self, History.self, Rollback.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show where a stage points.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String

        func run() async throws {
            try options.print(try await options.client.stage(model: model, name: stage), Describe.stage)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point a stage at an approved version.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String
        @Argument var version: Int
        @Option var reason: String?
        @Option(help: "The stage revision to move (default: the current one, or create the stage).") var revision: Int?

        func run() async throws {
            let client = options.client
            var expected = revision
            if expected == nil {
                do {
                    expected = try await client.stage(model: model, name: stage).revision
                } catch let error as RegistryError where error.code == .stageNotFound {
                    expected = nil
                }
            }
            let moved = try await client.promote(
                model: model, stage: stage, version: version, revision: expected, reason: reason)
            try options.print(moved, Describe.stage)
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a stage's promotions and rollbacks.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String
        @Option var limit: Int?
        @Option var pageToken: String?

        func run() async throws {
            let page = try await options.client.stageHistory(
                model: model, stage: stage, limit: limit, pageToken: pageToken)
            try options.print(page) { page in
                page.items.map { entry in
                    let from = entry.fromVersion.map(String.init) ?? "-"
                    return "\(entry.sequence)\t\(Timestamp.format(entry.time))\t\(entry.action.rawValue)\t"
                        + "\(from) -> \(entry.toVersion)\t\(entry.actor)\t\(entry.reason ?? "")"
                }.joined(separator: "\n")
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point a stage back at its previous version.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String
        @Option var reason: String?
        @Option(help: "The stage revision to move (default: the current one).") var revision: Int?

        func run() async throws {
            let client = options.client
            let expected: Int
            if let revision {
                expected = revision
            } else {
                expected = try await client.stage(model: model, name: stage).revision
            }
            let moved = try await client.rollback(model: model, stage: stage, revision: expected, reason: reason)
            try options.print(moved, Describe.stage)
        }
    }
}

/// `registry resolve MODEL STAGE`: what serving systems load.
struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the version and manifest a stage serves.")
    @OptionGroup var options: ClientOptions
    @Argument var model: String
    @Argument var stage: String

    func run() async throws {
        guard let resolution = try await options.client.resolve(model: model, stage: stage) else { return }
        try options.print(resolution) { resolution in
            "\(resolution.model)@\(resolution.stage) -> version \(resolution.stable.version) "
                + "\(resolution.stable.manifestDigest) (\(resolution.stable.size) bytes, ttl \(resolution.ttlSeconds)s)"
        }
    }
}
