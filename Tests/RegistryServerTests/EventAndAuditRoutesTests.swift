import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct EventAndAuditRoutesTests {
    @Test func eventsArePagedByCursorAndFilteredByReadAccess() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let all = try await registry.send(.GET, "/v1/events?limit=1000", token: registry.adminToken)
            #expect(all.status == 200)
            guard case .array(let items)? = all.json["items"], case .string(let cursor)? = all.json["nextCursor"] else {
                Issue.record("unexpected body \(all.text)")
                return
            }
            #expect(items.contains { $0["type"] == "token.created" })
            #expect(items.contains { $0["type"] == "stage.promoted" && $0["model"] == "demo" })
            #expect(items.last?["id"] == .string(cursor))

            let reader = try await registry.send(.GET, "/v1/events?limit=1000", token: world.tokens["reader"])
            guard case .array(let visible)? = reader.json["items"] else {
                Issue.record("unexpected body \(reader.text)")
                return
            }
            #expect(!visible.isEmpty)
            #expect(visible.allSatisfy { $0["model"] == "demo" })

            let stranger = try await registry.send(.GET, "/v1/events?limit=1000", token: world.tokens["stranger"])
            #expect(stranger.json["items"] == .array([]))
            #expect(stranger.json["nextCursor"] == .string(cursor))

            let caughtUp = try await registry.send(.GET, "/v1/events?after=\(cursor)", token: registry.adminToken)
            #expect(caughtUp.json["items"] == .array([]))
            #expect(caughtUp.json["nextCursor"] == .string(cursor))

            let bad = try await registry.send(.GET, "/v1/events?after=abc", token: registry.adminToken)
            #expect(bad.status == 400)
        }
    }

    @Test func longPollReturnsWhenAnEventCommits() async throws {
        // Correctness, not speed: a poll that waits 300 s must answer well before that once the event commits, so
        // a missed wake-up (a poll that runs to its timeout and then finds the event) fails, while a loaded machine
        // running every suite at once on two cores has room.
        try await TestRegistry.with(configuration: .init(maxEventWaitSeconds: 300)) { registry in
            let world = try await World.make(registry)
            let head = try await registry.send(.GET, "/v1/events?limit=1000", token: registry.adminToken)
            guard case .string(let cursor)? = head.json["nextCursor"] else {
                Issue.record("no cursor")
                return
            }
            let polled = Task {
                let response = try await registry.send(
                    .GET, "/v1/events?after=\(cursor)&wait=300", token: world.tokens["reader"])
                return (response, ContinuousClock.now)
            }
            // The poll holds its slot before it first reads the log: from then on a commit either lands before
            // that read (and is returned at once) or wakes the wait.
            try await registry.waitForMetric("registry_event_long_polls_open") { $0 == 1 }
            let committing = ContinuousClock.now
            let patch = try await registry.send(
                .PATCH, "/v1/models/demo/versions/1", token: world.tokens["writer"], json: ["tags": ["k": "v"]],
                headers: [("If-Match", "\"2\"")])
            #expect(patch.status == 200)
            let (response, answered) = try await polled.value
            #expect(answered - committing < .seconds(90), "the poll answers once the event commits, not at its wait")
            #expect(response.status == 200)
            guard case .array(let items)? = response.json["items"] else {
                Issue.record("unexpected body \(response.text)")
                return
            }
            #expect(items.first?["type"] == "version.updated")
        }
    }

    @Test func auditRecordsChangesAndDenialsAndVerifies() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let denied = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: world.tokens["reader"], json: ["version": .number(1)],
                headers: [("If-Match", "\"1\""), ("X-Request-Id", "deny-me")])
            #expect(denied.status == 403)
            let audit = try await registry.send(.GET, "/v1/audit?model=demo&limit=1000", token: world.tokens["owner"])
            #expect(audit.status == 200)
            guard case .array(let entries)? = audit.json["items"] else {
                Issue.record("unexpected body \(audit.text)")
                return
            }
            #expect(entries.contains { $0["action"] == "stage.promote" && $0["actor"] == "deployer" })
            let denial = entries.first { $0["action"] == "access.denied" }
            #expect(denial?["actor"] == "reader")
            #expect(denial?["requestId"] == "deny-me")
            #expect(denial?["after"]?["permission"] == "deploy")

            let notOwner = try await registry.send(.GET, "/v1/audit?model=demo", token: world.tokens["writer"])
            #expect(notOwner.status == 403)
            let notAdmin = try await registry.send(.GET, "/v1/audit", token: world.tokens["owner"])
            #expect(notAdmin.status == 403)
            let everything = try await registry.send(.GET, "/v1/audit", token: registry.adminToken)
            #expect(everything.status == 200)

            let verify = try await registry.send(.GET, "/v1/audit/verify", token: registry.adminToken)
            #expect(verify.status == 200)
            #expect(verify.json["ok"] == .bool(true))
            #expect((verify.int("entries") ?? 0) > 5)
            #expect(verify.json["headHash"]?.isString == true)
        }
    }
}

extension JSONValue {
    var isString: Bool {
        if case .string = self { return true }
        return false
    }
}
