import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct StageRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func stageShowsVersionRevisionAndNullRollout(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let stage = try await registry.send(
                .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
            #expect(stage.status == 200)
            #expect(stage.int("version") == 1)
            #expect(stage.int("revision") == 1)
            #expect(stage.json["rollout"] == .null)
            #expect(stage.header("ETag") == "\"1\"")
            let list = try await registry.send(.GET, "/v1/models/demo/stages", token: world.tokens["reader"])
            #expect(list.json["items"]?.isArrayOfCount(1) == true)
            let missing = try await registry.send(.GET, "/v1/models/demo/stages/canary", token: world.tokens["reader"])
            #expect(missing.status == 404)
            #expect(missing.errorCode == "STAGE_NOT_FOUND")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func promotionRequiresAPreconditionAndAnApprovedVersion(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let deployer = world.tokens["deployer"]
            let none = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: deployer, json: ["version": .number(1)])
            #expect(none.status == 428)
            let exists = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: deployer, json: ["version": .number(1)],
                headers: [("If-None-Match", "*")])
            #expect(exists.status == 412)
            #expect(exists.json["error"]?["details"]?["current"]?["version"] == .number(1))
            let digest = try await registry.upload(["p.bin": [1]], token: world.tokens["writer"]!)
            _ = try await registry.send(
                .POST, "/v1/models/demo/versions", token: world.tokens["writer"],
                json: ["manifestDigest": .string(digest.description)])
            let pending = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: deployer, json: ["version": .number(2)],
                headers: [("If-Match", "\"1\"")])
            #expect(pending.status == 409)
            #expect(pending.errorCode == "VERSION_NOT_APPROVED")
            let unknownVersion = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: deployer, json: ["version": .number(42)],
                headers: [("If-Match", "\"1\"")])
            #expect(unknownVersion.status == 404)
            #expect(unknownVersion.errorCode == "VERSION_NOT_FOUND")
            let badName = try await registry.send(
                .PUT, "/v1/models/demo/stages/Prod", token: deployer, json: ["version": .number(1)],
                headers: [("If-None-Match", "*")])
            #expect(badName.errorCode == "INVALID_NAME")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func sixteenConcurrentPromotionsWithOneETagHaveOneWinner(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let v2 = try await world.approvedVersion("candidate")
            let deployer = world.tokens["deployer"]
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await registry.send(
                            .PUT, "/v1/models/demo/stages/production", token: deployer,
                            json: ["version": .number(Double(v2)), "reason": .string("racer \(index)")],
                            headers: [("If-Match", "\"1\"")]
                        ).status
                    }
                }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses.filter { $0 == 200 }.count == 1)
            #expect(statuses.filter { $0 == 412 }.count == 15)
            let history = try await registry.send(
                .GET, "/v1/models/demo/stages/production/history", token: world.tokens["reader"])
            // The initial promotion plus exactly one move by the racers.
            #expect(history.json["items"]?.isArrayOfCount(2) == true)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func rollbackReturnsToThePreviousVersionAndIsRecorded(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let deployer = world.tokens["deployer"]
            let noPrevious = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollback", token: deployer, headers: [("If-Match", "\"1\"")])
            #expect(noPrevious.status == 409)
            #expect(noPrevious.errorCode == "NO_PREVIOUS_VERSION")
            let v2 = try await world.approvedVersion("next")
            let promoted = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: deployer, json: ["version": .number(Double(v2))],
                headers: [("If-Match", "\"1\"")])
            #expect(promoted.status == 200)
            #expect(promoted.header("ETag") == "\"2\"")
            let withoutMatch = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollback", token: deployer)
            #expect(withoutMatch.status == 428)
            let rolledBack = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollback", token: deployer, json: ["reason": "bad metrics"],
                headers: [("If-Match", "\"2\"")])
            #expect(rolledBack.status == 200)
            #expect(rolledBack.int("version") == 1)
            #expect(rolledBack.int("revision") == 3)
            let history = try await registry.send(
                .GET, "/v1/models/demo/stages/production/history?limit=2", token: world.tokens["reader"])
            #expect(history.json["items"]?.isArrayOfCount(2) == true)
            guard case .string(let next)? = history.json["nextPageToken"] else {
                Issue.record("expected a second page")
                return
            }
            let rest = try await registry.send(
                .GET, "/v1/models/demo/stages/production/history?pageToken=\(next)", token: world.tokens["reader"])
            guard case .array(let items)? = rest.json["items"], let last = items.first else {
                Issue.record("expected the rollback entry")
                return
            }
            #expect(last["action"] == "rollback")
            #expect(last["fromVersion"] == .number(Double(v2)))
            #expect(last["toVersion"] == .number(1))
            #expect(last["reason"] == "bad metrics")
            #expect(last["actor"] == "deployer")
        }
    }
}

extension JSONValue {
    func isArrayOfCount(_ count: Int) -> Bool {
        if case .array(let array) = self { return array.count == count }
        return false
    }
}
