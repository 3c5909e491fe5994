import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct OperationsAndTokenRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func healthReadinessMetricsAndOpenAPIArePublic(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let health = try await registry.send(.GET, "/healthz", token: nil)
            #expect(health.status == 200)
            #expect(health.json["status"] == "ok")
            let ready = try await registry.send(.GET, "/readyz", token: nil)
            #expect(ready.status == 200)
            _ = try await registry.send(.GET, "/v1/models", token: registry.adminToken)
            let metrics = try await registry.send(.GET, "/metrics", token: nil)
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("registry_http_requests_total"))
            #expect(metrics.text.contains(#"route="/v1/models""#))
            #expect(metrics.text.contains("registry_http_request_duration_seconds_bucket"))
            let openapi = try await registry.send(.GET, "/openapi.json", token: nil)
            #expect(openapi.status == 200)
            #expect(openapi.json["openapi"] == "3.1.0")
            guard case .object(let paths)? = openapi.json["paths"] else {
                Issue.record("no paths")
                return
            }
            for path in [
                "/v1/models", "/v1/models/{model}", "/v1/models/{model}/acl", "/v1/models/{model}/versions",
                "/v1/models/{model}/versions/{version}", "/v1/models/{model}/versions/{version}/approvals",
                "/v1/models/{model}/stages", "/v1/models/{model}/stages/{stage}",
                "/v1/models/{model}/stages/{stage}/history", "/v1/models/{model}/stages/{stage}/rollback",
                "/v1/models/{model}/stages/{stage}/rollouts", "/v1/models/{model}/stages/{stage}/rollouts/{rollout}",
                "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/advance",
                "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/pause",
                "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/resume",
                "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/abort",
                "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/reports", "/v1/admin/gc",
                "/v1/resolve/{model}/{stage}", "/v1/blobs/check", "/v1/blobs/{digest}", "/v1/manifests",
                "/v1/manifests/{digest}", "/v1/events", "/v1/audit", "/v1/audit/verify", "/v1/tokens",
                "/v1/tokens/{id}", "/healthz", "/readyz", "/metrics", "/openapi.json",
            ] {
                #expect(paths[path] != nil, "openapi lacks \(path)")
            }
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func tokensAreCreatedListedAndRevoked(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let created = try await registry.send(
                .POST, "/v1/tokens", token: registry.adminToken, json: ["subject": "ci-bot"])
            #expect(created.status == 201)
            #expect(created.json["subject"] == "ci-bot")
            #expect(created.json["admin"] == .bool(false))
            guard case .string(let secret)? = created.json["token"], case .string(let id)? = created.json["id"] else {
                Issue.record("unexpected body \(created.text)")
                return
            }
            #expect(try await registry.send(.GET, "/v1/models", token: secret).status == 200)
            let list = try await registry.send(.GET, "/v1/tokens", token: registry.adminToken)
            #expect(list.status == 200)
            #expect(!list.text.contains(TokenSecret.hash(secret)))
            #expect(list.text.contains(id))
            let invalid = try await registry.send(
                .POST, "/v1/tokens", token: registry.adminToken, json: ["subject": "has space"])
            #expect(invalid.status == 400)
            let revoked = try await registry.send(.DELETE, "/v1/tokens/\(id)", token: registry.adminToken)
            #expect(revoked.status == 204)
            let after = try await registry.send(.GET, "/v1/models", token: secret)
            #expect(after.status == 401)
            let again = try await registry.send(.DELETE, "/v1/tokens/\(id)", token: registry.adminToken)
            #expect(again.status == 404)
        }
    }
}
