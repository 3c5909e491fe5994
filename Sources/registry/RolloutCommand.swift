import ArgumentParser
import RegistryClient
import RegistryCore

/// `registry rollout …`: progressive rollouts of a version on a stage.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "Start, inspect and move progressive rollouts.",
        subcommands: [Start.self, Get.self, Move.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Roll a version out on a stage in steps, after the fleet reports it loaded.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String
        @Argument var version: Int
        @Option(help: "Exposure steps in percent, comma separated (default 5,25,50,100).") var steps: String?
        @Option(help: "Seconds each step is exposed before advancing on its own (default 300).") var bakeSeconds: Int?
        @Flag(help: "Advance only by hand.") var manual = false
        @Option(help: "Instances that must report the version loaded before traffic moves (default 1).")
        var minInstances: Int?
        @Option(help: "Abort when the error rate exceeds the stable version's by more than this (0–1, default 0.05).")
        var maxErrorRateIncrease: Double?
        @Option(help: "The stage revision (default: the current one).") var revision: Int?

        func run() async throws {
            let client = options.client
            var expected = revision
            if expected == nil { expected = try await client.stage(model: model, name: stage).revision }
            let parsedSteps = try steps.map { text in
                try text.split(separator: ",").map { part -> Double in
                    guard let value = Double(part.trimmingCharacters(in: .whitespaces)) else {
                        throw ValidationError("--steps takes numbers such as 5,25,50,100.")
                    }
                    return value
                }
            }
            let rollout = try await client.startRollout(
                model: model, stage: stage, stageRevision: expected ?? 0,
                .init(
                    version: version, steps: parsedSteps, bakeSeconds: bakeSeconds, autoAdvance: manual ? false : nil,
                    minInstances: minInstances, maxErrorRateIncrease: maxErrorRateIncrease))
            try options.print(rollout, Describe.rollout)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a rollout and its instances' reports.")
        @OptionGroup var options: ClientOptions
        @Argument var model: String
        @Argument var stage: String
        @Argument var id: String

        func run() async throws {
            try options.print(try await options.client.rollout(model: model, stage: stage, id: id), Describe.rollout)
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "move",
            abstract: "Advance, pause, resume or abort a rollout (abort: all traffic back at once).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "advance, pause, resume or abort") var action: String
        @Argument var model: String
        @Argument var stage: String
        @Argument var id: String
        @Option var reason: String?
        @Option(help: "The rollout revision (default: the current one).") var revision: Int?

        func run() async throws {
            guard let action = RegistryClient.RolloutAction(rawValue: action) else {
                throw ValidationError("The action is advance, pause, resume or abort.")
            }
            let client = options.client
            var expected = revision
            if expected == nil { expected = try await client.rollout(model: model, stage: stage, id: id).revision }
            let moved = try await client.moveRollout(
                model: model, stage: stage, id: id, action, revision: expected ?? 0, reason: reason)
            try options.print(moved, Describe.rollout)
        }
    }
}

extension Describe {
    static func rollout(_ rollout: Rollout) -> String {
        var lines = [
            "rollout \(rollout.id): \(rollout.model)@\(rollout.stage) \(rollout.previousVersion) -> \(rollout.version)",
            "  state \(rollout.state.rawValue), weight \(rollout.weight) %, steps "
                + rollout.steps.map { String(format: "%g", $0) }.joined(separator: ","),
            "  revision \(rollout.revision)" + (rollout.reason.map { ", reason: \($0)" } ?? ""),
        ]
        for report in rollout.reports.values.sorted(by: { $0.instance < $1.instance }) {
            lines.append(
                "  instance \(report.instance): \(report.state.rawValue), \(report.requests) requests, "
                    + "\(report.errors) errors, reported \(Timestamp.format(report.time))")
        }
        return lines.joined(separator: "\n")
    }
}
