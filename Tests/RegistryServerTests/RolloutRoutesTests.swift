import Foundation
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct RolloutRoutesTests {
    /// Starts a rollout of a new approved version of `demo` on `production` with `options`; returns it.
    static func start(_ world: World, _ options: [String: JSONValue] = [:]) async throws -> TestResponse {
        let candidate = try await world.approvedVersion("candidate \(UUID())")
        let stage = try await world.registry.send(
            .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
        var body = options
        body["version"] = .number(Double(candidate))
        return try await world.registry.send(
            .POST, "/v1/models/demo/stages/production/rollouts", token: world.tokens["deployer"], json: .object(body),
            headers: [("If-Match", stage.header("ETag") ?? "")])
    }

    static func string(_ value: JSONValue?) -> String? {
        if case .string(let text)? = value { return text }
        return nil
    }

    static func number(_ value: JSONValue?) -> Double? {
        if case .number(let number)? = value { return number }
        return nil
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aRolloutWarmsUpThenStepsToCompletion(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let refused = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts", token: world.tokens["deployer"],
                json: ["version": 1])
            #expect(refused.status == 428)
            let forbidden = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts", token: world.tokens["reader"],
                json: ["version": 1], headers: [("If-Match", "\"1\"")])
            #expect(forbidden.status == 403)

            let started = try await Self.start(world, ["bakeSeconds": 3600])
            #expect(started.status == 201)
            #expect(started.json["state"] == "warming")
            #expect(started.json["weight"] == .number(0))
            #expect(started.json["stepIndex"] == .number(-1))
            #expect(started.json["previousVersion"] == .number(1))
            #expect(started.json["steps"] == .array([5, 25, 50, 100].map { .number($0) }))
            let id = try #require(Self.string(started.json["id"]))
            let path = "/v1/models/demo/stages/production/rollouts/\(id)"
            #expect(started.header("Location") == path)

            // Warming: the candidate is announced (so the fleet can preload it) with no traffic.
            var resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            #expect(resolved.json["stable"]?["version"] == .number(1))
            #expect(resolved.json["candidate"]?["version"] == .number(2))
            #expect(resolved.json["candidate"]?["weight"] == .number(0))
            #expect(resolved.json["rolloutId"] == .string(id))
            let stage = try await registry.send(
                .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
            #expect(stage.json["rollout"]?["id"] == .string(id))

            // Without reports the gate holds: two periodic checks (every second) later, nothing is exposed.
            let checks = try await registry.metric("registry_rollout_checks_total") ?? 0
            try await registry.waitForMetric("registry_rollout_checks_total") { $0 >= checks + 2 }
            let held = try await registry.send(.GET, path, token: world.tokens["reader"])
            #expect(held.json["state"] == "warming")
            #expect(held.json["weight"] == .number(0))

            // Nothing else may move the stage meanwhile.
            let promote = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"], json: ["version": 2],
                headers: [("If-Match", stage.header("ETag") ?? "")])
            #expect(promote.status == 409)
            #expect(promote.errorCode == "ROLLOUT_IN_PROGRESS")

            // An instance reports the candidate loaded: exposure starts at 5 %.
            let report = try await registry.send(
                .POST, path + "/reports", token: world.tokens["serving"],
                json: ["instance": "pod-1", "region": "eu", "state": "loaded"])
            #expect(report.status == 200)
            #expect(report.json["state"] == "progressing")
            #expect(report.json["weight"] == .number(5))
            resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            #expect(resolved.json["candidate"]?["weight"] == .number(5))

            // By hand through 25 and 50 to 100, each with If-Match.
            var current = try await registry.send(.GET, path, token: world.tokens["reader"])
            let stale = try await registry.send(
                .POST, path + "/advance", token: world.tokens["deployer"], headers: [("If-Match", "\"1\"")])
            #expect(stale.status == 412)
            for expected in [25.0, 50, 100] {
                current = try await registry.send(
                    .POST, path + "/advance", token: world.tokens["deployer"],
                    headers: [("If-Match", current.header("ETag") ?? "")])
                #expect(current.status == 200)
                #expect(current.json["weight"] == .number(expected))
            }
            #expect(current.json["state"] == "completed")
            resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            #expect(resolved.json["stable"]?["version"] == .number(2))
            #expect(resolved.json["candidate"] == .null)
            #expect(resolved.json["rolloutId"] == .null)

            let history = try await registry.send(
                .GET, "/v1/models/demo/stages/production/history", token: world.tokens["reader"])
            guard case .array(let entries)? = history.json["items"] else { throw TestFailure("no history") }
            #expect(
                entries.map { Self.string($0["action"]) } == [
                    "promote", "rollout-start", "rollout-step", "rollout-step", "rollout-step", "promote",
                ])
            let events = try await registry.send(.GET, "/v1/events?after=0&limit=200", token: world.tokens["admin"])
            guard case .array(let items)? = events.json["items"] else { throw TestFailure("no events") }
            let types = items.compactMap { Self.string($0["type"]) }
            #expect(types.contains("rollout.started"))
            #expect(types.filter { $0 == "rollout.advanced" }.count == 3)
            #expect(types.contains("rollout.completed"))
            let verify = try await registry.send(.GET, "/v1/audit/verify", token: world.tokens["admin"])
            #expect(verify.json["ok"] == .bool(true))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func abortReturnsAllTrafficAndAWatchHearsItAtOnce(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let started = try await Self.start(world, ["minInstances": 0, "bakeSeconds": 3600])
            #expect(started.json["state"] == "progressing", "no warm-up needed without instances to wait for")
            #expect(started.json["weight"] == .number(5))
            let id = try #require(Self.string(started.json["id"]))
            let before = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            let etag = try #require(before.header("ETag"))

            // A watcher waits on the current answer; the abort wakes it long before its 60 s wait runs out.
            // (How fast is measured by ServingBenchmark: a test only tells a wake-up from a timeout.)
            async let watched = registry.send(
                .GET, "/v1/resolve/demo/production?wait=60", token: world.tokens["reader"],
                headers: [("If-None-Match", etag)])
            try await registry.waitForMetric("registry_resolve_watches_open") { $0 == 1 }
            let abortedAt = ContinuousClock.now
            let aborted = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts/\(id)/abort", token: world.tokens["deployer"],
                json: ["reason": "p99 latency"], headers: [("If-Match", started.header("ETag") ?? "")])
            #expect(aborted.status == 200)
            #expect(aborted.json["state"] == "aborted")
            #expect(aborted.json["weight"] == .number(0))
            let answer = try await watched
            let delay = ContinuousClock.now - abortedAt
            #expect(answer.status == 200)
            #expect(answer.json["candidate"] == .null)
            #expect(answer.json["stable"]?["version"] == .number(1))
            #expect(delay < .seconds(30), "the watch answered \(delay) after the abort, so the abort woke it")

            // With nothing changing, the watch ends with 304 when its wait runs out (asked with the ETag of the
            // answer as it is now: the woken watch may have seen the abort before the last write of its request).
            let settled = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            let quiet = try await registry.send(
                .GET, "/v1/resolve/demo/production?wait=1", token: world.tokens["reader"],
                headers: [("If-None-Match", settled.header("ETag") ?? "")])
            #expect(quiet.status == 304)
            let again = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts/\(id)/abort", token: world.tokens["deployer"],
                headers: [("If-Match", aborted.header("ETag") ?? "")])
            #expect(again.status == 409)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aCandidateFailingMoreThanTheStableVersionIsAbortedAutomatically(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let started = try await Self.start(
                world, ["minInstances": 0, "minRequests": 50, "maxErrorRateIncrease": 0.05, "bakeSeconds": 3600])
            let id = try #require(Self.string(started.json["id"]))
            let path = "/v1/models/demo/stages/production/rollouts/\(id)/reports"
            let healthy = try await registry.send(
                .POST, path, token: world.tokens["serving"],
                json: [
                    "instance": "a", "state": "serving", "requests": 100, "errors": 2, "stableRequests": 1000,
                    "stableErrors": 10,
                ])
            #expect(healthy.json["state"] == "progressing")
            let failing = try await registry.send(
                .POST, path, token: world.tokens["serving"],
                json: [
                    "instance": "a", "state": "serving", "requests": 200, "errors": 40, "stableRequests": 2000,
                    "stableErrors": 20,
                ])
            #expect(failing.json["state"] == "aborted")
            #expect(Self.string(failing.json["reason"])?.contains("error rate") == true)
            let resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            #expect(resolved.json["candidate"] == .null)
            let bad = try await registry.send(
                .POST, path, token: world.tokens["serving"], json: ["instance": "a", "state": "melting"])
            #expect(bad.status == 400)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func bakedStepsAdvanceOnTheirOwn(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(
            backend, configuration: ServerConfiguration(port: 0, rolloutCheckInterval: .milliseconds(100))
        ) { registry in
            let world = try await World.make(registry)
            let started = try await Self.start(world, ["minInstances": 0, "bakeSeconds": 1, "steps": [10, 100]])
            #expect(started.json["weight"] == .number(10))
            let id = try #require(Self.string(started.json["id"]))
            var state = ""
            let deadline = ContinuousClock.now + .seconds(10)
            while state != "completed", ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                let current = try await registry.send(
                    .GET, "/v1/models/demo/stages/production/rollouts/\(id)", token: world.tokens["reader"])
                state = Self.string(current.json["state"]) ?? ""
            }
            #expect(state == "completed")
            let stage = try await registry.send(
                .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
            #expect(stage.json["version"] == .number(2))
            let audit = try await registry.send(.GET, "/v1/audit?model=demo&limit=500", token: world.tokens["admin"])
            guard case .array(let entries)? = audit.json["items"] else { throw TestFailure("no audit") }
            #expect(entries.contains { Self.string($0["actor"]) == "registry:rollouts" })
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aRolloutIsOnlyFoundUnderItsOwnStage(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let started = try await Self.start(world)
            let id = try #require(Self.string(started.json["id"]))
            let elsewhere = try await registry.send(
                .GET, "/v1/models/demo/stages/staging/rollouts/\(id)", token: world.tokens["reader"])
            #expect(elsewhere.status == 404)
            #expect(elsewhere.errorCode == "ROLLOUT_NOT_FOUND")
            let badSteps = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts", token: world.tokens["deployer"],
                json: ["version": 1, "steps": [50, 20, 100]], headers: [("If-Match", "\"1\"")])
            #expect(badSteps.status == 400)
        }
    }
}
