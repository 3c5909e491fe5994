import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct ModelRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func creatingAModelReturnsItWithRevisionAndETag(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let token = try await registry.token(for: "alice", canCreateModels: true)
            let response = try await registry.send(
                .POST, "/v1/models", token: token, json: ["name": "fraud", "tags": ["team": "risk"]])
            #expect(response.status == 201)
            #expect(response.header("ETag") == "\"1\"")
            #expect(response.header("Location") == "/v1/models/fraud")
            #expect(response.json["name"] == "fraud")
            #expect(response.int("revision") == 1)
            #expect(response.json["createdBy"] == "alice")
            #expect(response.header("X-Request-Id")?.isEmpty == false)

            let again = try await registry.send(.POST, "/v1/models", token: token, json: ["name": "fraud"])
            #expect(again.status == 409)
            #expect(again.errorCode == "MODEL_EXISTS")

            let acl = try await registry.send(.GET, "/v1/models/fraud/acl", token: token)
            #expect(acl.status == 200)
            #expect(acl.json["grants"] == .array([["subject": "alice", "role": "owner"]]))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func invalidModelNamesAreRejected(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let response = try await registry.send(
                .POST, "/v1/models", token: registry.adminToken, json: ["name": "Not Valid"])
            #expect(response.status == 400)
            #expect(response.errorCode == "INVALID_NAME")
            let get = try await registry.send(.GET, "/v1/models/UPPER", token: registry.adminToken)
            #expect(get.errorCode == "INVALID_NAME")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func bodiesMustBeJSONOfBoundedSize(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend, configuration: .init(maxJSONBodyBytes: 64)) { registry in
            let plain = try await registry.send(
                .POST, "/v1/models", token: registry.adminToken, body: Array(#"{"name":"a"}"#.utf8),
                headers: [("Content-Type", "text/plain")])
            #expect(plain.status == 415)
            #expect(plain.errorCode == "UNSUPPORTED_MEDIA_TYPE")
            let malformed = try await registry.send(
                .POST, "/v1/models", token: registry.adminToken, body: Array(#"{"name":"#.utf8),
                headers: [("Content-Type", "application/json")])
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "MALFORMED_JSON")
            let missing = try await registry.send(
                .POST, "/v1/models", token: registry.adminToken, json: ["description": "no name"])
            #expect(missing.status == 400)
            #expect(missing.errorCode == "INVALID_ARGUMENT")
            let large = try await registry.send(
                .POST, "/v1/models", token: registry.adminToken,
                json: ["name": "big", "description": .string(String(repeating: "x", count: 200))])
            #expect(large.status == 413)
            #expect(large.errorCode == "PAYLOAD_TOO_LARGE")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func patchNeedsIfMatchAndRejectsStaleRevisions(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let token = registry.adminToken
            _ = try await registry.send(.POST, "/v1/models", token: token, json: ["name": "m"])
            let noPrecondition = try await registry.send(
                .PATCH, "/v1/models/m", token: token, json: ["description": "new"])
            #expect(noPrecondition.status == 428)
            #expect(noPrecondition.errorCode == "PRECONDITION_REQUIRED")
            let updated = try await registry.send(
                .PATCH, "/v1/models/m", token: token, json: ["description": "new"], headers: [("If-Match", "\"1\"")])
            #expect(updated.status == 200)
            #expect(updated.header("ETag") == "\"2\"")
            #expect(updated.json["description"] == "new")
            let stale = try await registry.send(
                .PATCH, "/v1/models/m", token: token, json: ["description": "newer"], headers: [("If-Match", "\"1\"")])
            #expect(stale.status == 412)
            #expect(stale.errorCode == "REVISION_MISMATCH")
            #expect(stale.json["error"]?["details"]?["current"]?["revision"] == .number(2))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func listingShowsOnlyModelsWithAGrantForTheCaller(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let alice = try await registry.token(for: "alice", canCreateModels: true)
            let bob = try await registry.token(for: "bob", canCreateModels: true)
            for name in ["a1", "a2"] {
                _ = try await registry.send(.POST, "/v1/models", token: alice, json: ["name": .string(name)])
            }
            _ = try await registry.send(.POST, "/v1/models", token: bob, json: ["name": "b1"])
            let aliceList = try await registry.send(.GET, "/v1/models", token: alice)
            #expect(aliceList.json["items"].map(names) == ["a1", "a2"])
            #expect(aliceList.json["nextPageToken"] == .null)
            let adminList = try await registry.send(.GET, "/v1/models?limit=2", token: registry.adminToken)
            #expect(adminList.json["items"].map(names) == ["a1", "a2"])
            guard case .string(let next)? = adminList.json["nextPageToken"] else {
                Issue.record("expected a next page")
                return
            }
            let second = try await registry.send(
                .GET, "/v1/models?limit=2&pageToken=\(next)", token: registry.adminToken)
            #expect(second.json["items"].map(names) == ["b1"])
            let prefixed = try await registry.send(.GET, "/v1/models?prefix=b", token: registry.adminToken)
            #expect(prefixed.json["items"].map(names) == ["b1"])
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func unknownRoutesAndMethodsUseTheErrorBody(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let unknown = try await registry.send(.GET, "/v1/nothing-here", token: registry.adminToken)
            #expect(unknown.status == 404)
            #expect(unknown.errorCode == "NOT_FOUND")
            let method = try await registry.send(.DELETE, "/v1/models", token: registry.adminToken)
            #expect(method.status == 405)
            #expect(method.errorCode == "METHOD_NOT_ALLOWED")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func requestIdsAreHonouredWhenSane(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let sane = try await registry.send(.GET, "/healthz", token: nil, headers: [("X-Request-Id", "req-123")])
            #expect(sane.header("X-Request-Id") == "req-123")
            let insane = try await registry.send(.GET, "/healthz", token: nil, headers: [("X-Request-Id", "a b\"c")])
            #expect(insane.header("X-Request-Id") != "a b\"c")
            #expect(insane.header("X-Request-Id")?.isEmpty == false)
        }
    }
}

func names(_ items: JSONValue) -> [String] {
    guard case .array(let array) = items else { return [] }
    return array.compactMap { if case .string(let name)? = $0["name"] { name } else { nil } }
}
