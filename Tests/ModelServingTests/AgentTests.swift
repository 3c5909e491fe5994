import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `registry agent` as a real process, watched by a reader that checks the directory thousands of times a second.
@Suite(.serialized, .timeLimit(.minutes(10))) struct AgentTests {
    @Test func currentAndRolloutJSONAreNeverTornOrIncompleteAcrossARollout() async throws {
        try await ToyRegistry.with { registry in
            let root = registry.directory + "/agent"
            let agent = try Self.startAgent(registry, root: root, instance: "agent-1", ["--report-seconds", "0.2"])
            defer {
                kill(agent.processIdentifier, SIGKILL)
                agent.waitUntilExit()
            }
            let started = await eventually { Self.current(root) == 1 }
            #expect(started != nil, "the agent linked current to version 1")

            let watch = DirectoryWatch()
            let reader = Thread {
                while !watch.stop.load(ordering: .relaxed) {
                    watch.check(root)
                }
                watch.done.store(true, ordering: .releasing)
            }
            reader.start()

            // A rollout the agent warms up for, taken through its steps to completion by hand.
            var rollout = try await registry.admin.startRollout(
                model: "toy", stage: "production", stageRevision: try await registry.stage().revision,
                .init(version: 2, bakeSeconds: 3600, minInstances: 1))
            let exposed = await eventually { Self.rolloutFile(root)?["weight"] == .number(5) }
            #expect(exposed != nil, "the agent reported version 2 loaded and wrote the 5 % step")
            #expect(Self.rolloutFile(root)?["candidate"] == .number(2))
            #expect(Self.rolloutFile(root)?["rolloutId"] == .string(rollout.id))
            rollout = try await registry.admin.rollout(model: "toy", stage: "production", id: rollout.id)
            for _ in 0..<3 {
                rollout = try await registry.admin.moveRollout(
                    model: "toy", stage: "production", id: rollout.id, .advance, revision: rollout.revision)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(rollout.state == .completed)
            let flipped = await eventually { Self.current(root) == 2 && Self.rolloutFile(root)?["candidate"] == .null }
            #expect(flipped != nil)
            #expect(Self.rolloutFile(root)?["previous"] == .number(1))
            #expect(
                FileManager.default.fileExists(atPath: root + "/1/model.txt"), "version 1 stays for the grace period")

            // A rollback is a rename back to the resident version.
            let stage = try await registry.stage()
            _ = try await registry.admin.rollback(model: "toy", stage: "production", revision: stage.revision)
            let back = await eventually { Self.current(root) == 1 }
            #expect(back != nil)

            watch.stop.store(true, ordering: .relaxed)
            _ = await eventually { watch.done.load(ordering: .acquiring) }
            #expect(watch.torn.load(ordering: .relaxed) == 0, "\(watch.problem.withLock { $0 } ?? "")")
            // The reader ran all along (hundreds of checks even on a loaded machine; thousands alone).
            #expect(watch.checks.load(ordering: .relaxed) > 100)
        }
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func theAgentStopsOnASignalAndLeavesWhatItLinked(_ signal: Int32) async throws {
        try await ToyRegistry.with { registry in
            let root = registry.directory + "/agent-\(signal)"
            let agent = try Self.startAgent(registry, root: root, instance: "agent-signal")
            let started = await eventually(within: .seconds(60)) { Self.current(root) == 1 }
            #expect(started != nil, "the agent linked current to version 1")
            // It holds a resolve watch open (10 s and more): the signal must end it, not the watch running out.
            try await registry.server.waitForMetric("registry_resolve_watches_open") { $0 >= 1 }
            let signalled = ContinuousClock.now
            kill(agent.processIdentifier, signal)
            let status = await offThePool { () -> Int32? in
                // Bounded: a hung agent fails the test instead of holding it for ever.
                let deadline = Date().addingTimeInterval(60)
                while agent.isRunning && Date() < deadline { usleep(10_000) }
                return agent.isRunning ? nil : agent.terminationStatus
            }
            if status == nil { kill(agent.processIdentifier, SIGKILL) }
            #expect(status == 0, "the agent exits cleanly on signal \(signal)")
            #expect(ContinuousClock.now - signalled < .seconds(30), "the open watch did not hold the agent up")
            #expect(Self.current(root) == 1, "what it linked stays for the next start")
            #expect(FileManager.default.fileExists(atPath: root + "/1/model.txt"))
        }
    }

    /// Starts `registry agent` following `toy@production` of `registry` into `root`.
    static func startAgent(
        _ registry: ToyRegistry, root: String, instance: String, _ extra: [String] = []
    ) throws -> Process {
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: try RegistryProcess.binary(named: "registry"))
        agent.arguments =
            [
                "agent", "--model", "toy", "--stage", "production", "--dir", root, "--url", registry.server.baseURL,
                "--token", ToyRegistry.secret, "--instance", instance,
            ] + extra
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        return agent
    }

    /// The version `root/current` points at, if it is a link to a version directory.
    static func current(_ root: String) -> Int? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/current") else {
            return nil
        }
        return Int(target)
    }

    static func rolloutFile(_ root: String) -> JSONValue? {
        guard let data = FileManager.default.contents(atPath: root + "/rollout.json") else { return nil }
        return try? JSONCoding.decode(JSONValue.self, from: Array(data))
    }
}

/// Reads `current` and `rollout.json` as a server would, counting anything torn or incomplete.
final class DirectoryWatch: Sendable {
    let stop = Atomic<Bool>(false)
    let done = Atomic<Bool>(false)
    let torn = Atomic<Int>(0)
    let checks = Atomic<Int>(0)
    let problem = Mutex<String?>(nil)

    func check(_ root: String) {
        checks.wrappingAdd(1, ordering: .relaxed)
        // `current` always names a complete version directory. (The directory the link named is read, not the link
        // again: the agent may flip it between the two reads, which is exactly what it is for.)
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/current") {
            guard let version = Int(target),
                let text = try? String(contentsOfFile: root + "/\(target)/model.txt", encoding: .utf8),
                text == "weights v\(version)"
            else { return fail("current -> \(target) is not a complete version directory") }
        } else {
            return fail("current is missing")
        }
        // Reading through `current` always finds a whole model, whichever version it is at that instant.
        guard let through = try? String(contentsOfFile: root + "/current/model.txt", encoding: .utf8),
            through == "weights v1" || through == "weights v2"
        else { return fail("reading through current found no complete model") }
        // `rollout.json` always parses and names complete directories.
        guard let data = FileManager.default.contents(atPath: root + "/rollout.json"),
            let file = try? JSONCoding.decode(JSONValue.self, from: Array(data)),
            case .number(let stable)? = file["stable"]
        else { return fail("rollout.json is missing or torn") }
        for case .number(let version)? in [file["stable"], file["candidate"]] {
            guard FileManager.default.fileExists(atPath: root + "/\(Int(version))/model.txt") else {
                return fail("rollout.json names \(Int(version)), which is not complete (stable \(Int(stable)))")
            }
        }
    }

    private func fail(_ reason: String) {
        torn.wrappingAdd(1, ordering: .relaxed)
        problem.withLock { $0 = $0 ?? reason }
    }
}
