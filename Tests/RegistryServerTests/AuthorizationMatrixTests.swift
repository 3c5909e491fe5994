import NIOHTTP1
import RegistryCore
import Testing

/// Every route against every kind of caller. Mutations carry a stale If-Match so that an allowed caller gets 412
/// (authorization is checked before the precondition) and the world stays unchanged.
@Suite struct AuthorizationMatrixTests {
    struct Route: Sendable, CustomStringConvertible {
        let method: HTTPMethod
        let path: String
        var json: JSONValue?
        var body: [UInt8]?
        var headers: [(String, String)] = []
        /// Which callers may do this: a permission on `demo`, or one of the special rules.
        let rule: Rule

        var description: String { "\(method) \(path)" }
    }

    enum Rule: Sendable {
        case permission(Permission)
        case anyAuthenticated
        case admin
        /// Write on at least one model.
        case upload
        /// Read on a model that references the blob; anyone else is told it does not exist (404).
        case download
        /// The global permission to create models (admins, and tokens issued with `canCreateModels`).
        case createModels
    }

    static let stale = [("If-Match", "\"999\"")]

    static func routes(manifest: Digest, chunk: Digest) -> [Route] {
        [
            Route(method: .GET, path: "/v1/models", rule: .anyAuthenticated),
            Route(method: .POST, path: "/v1/models", json: ["name": "x"], rule: .createModels),
            Route(method: .GET, path: "/v1/models/demo", rule: .permission(.read)),
            Route(
                method: .PATCH, path: "/v1/models/demo", json: ["description": "d"], headers: stale,
                rule: .permission(.manage)),
            Route(method: .GET, path: "/v1/models/demo/acl", rule: .permission(.manage)),
            Route(
                method: .PUT, path: "/v1/models/demo/acl", json: ["grants": .array([])], headers: stale,
                rule: .permission(.manage)),
            Route(
                method: .POST, path: "/v1/models/demo/versions",
                json: ["manifestDigest": .string(manifest.description)],
                rule: .permission(.write)),
            Route(method: .GET, path: "/v1/models/demo/versions", rule: .permission(.read)),
            Route(method: .GET, path: "/v1/models/demo/versions/1", rule: .permission(.read)),
            Route(
                method: .PATCH, path: "/v1/models/demo/versions/1", json: ["tags": ["a": "b"]], headers: stale,
                rule: .permission(.write)),
            Route(
                method: .PATCH, path: "/v1/models/demo/versions/1", json: ["status": "archived"], headers: stale,
                rule: .permission(.manage)),
            Route(
                method: .POST, path: "/v1/models/demo/versions/1/approvals", json: ["decision": "approve"],
                headers: stale, rule: .permission(.approve)),
            Route(method: .GET, path: "/v1/models/demo/stages", rule: .permission(.read)),
            Route(method: .GET, path: "/v1/models/demo/stages/production", rule: .permission(.read)),
            Route(
                method: .PUT, path: "/v1/models/demo/stages/production", json: ["version": .number(1)], headers: stale,
                rule: .permission(.deploy)),
            Route(method: .GET, path: "/v1/models/demo/stages/production/history", rule: .permission(.read)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollback", json: [:], headers: stale,
                rule: .permission(.deploy)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts", json: ["version": 1], headers: stale,
                rule: .permission(.deploy)),
            Route(method: .GET, path: "/v1/models/demo/stages/production/rollouts/ro_0", rule: .permission(.read)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts/ro_0/advance", headers: stale,
                rule: .permission(.deploy)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts/ro_0/pause", headers: stale,
                rule: .permission(.deploy)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts/ro_0/resume", headers: stale,
                rule: .permission(.deploy)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts/ro_0/abort", headers: stale,
                rule: .permission(.deploy)),
            Route(
                method: .POST, path: "/v1/models/demo/stages/production/rollouts/ro_0/reports",
                json: ["instance": "a", "state": "loaded"], rule: .permission(.report)),
            Route(method: .GET, path: "/v1/resolve/demo/production", rule: .permission(.read)),
            Route(method: .POST, path: "/v1/blobs/check", json: ["digests": .array([])], rule: .upload),
            Route(
                method: .PUT, path: "/v1/blobs/\(chunk)", body: Array("weights of the demo model".utf8), rule: .upload),
            Route(method: .GET, path: "/v1/blobs/\(chunk)", rule: .download),
            Route(method: .HEAD, path: "/v1/blobs/\(chunk)", rule: .download),
            Route(method: .GET, path: "/v1/manifests/\(manifest)", rule: .download),
            Route(method: .GET, path: "/v1/events", rule: .anyAuthenticated),
            Route(method: .GET, path: "/v1/audit?model=demo", rule: .permission(.manage)),
            Route(method: .GET, path: "/v1/audit", rule: .admin),
            Route(method: .GET, path: "/v1/audit/verify", rule: .admin),
            Route(method: .GET, path: "/v1/tokens", rule: .admin),
            Route(method: .POST, path: "/v1/tokens", json: ["subject": "extra"], rule: .admin),
            Route(method: .DELETE, path: "/v1/tokens/doesnotexist", rule: .admin),
        ]
    }

    static func allowed(_ rule: Rule, caller: String) -> Bool {
        if caller == "admin" { return true }
        let role = Role(rawValue: caller)
        switch rule {
        case .anyAuthenticated: return true
        case .admin: return false
        case .permission(let permission): return role?.permissions.contains(permission) ?? false
        case .upload: return role?.permissions.contains(.write) ?? false
        case .download: return role != nil
        case .createModels: return caller == "owner"
        }
    }

    @Test func everyRouteAllowsExactlyTheRightCallersAndAuditsDenials() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let routes = Self.routes(manifest: world.manifest, chunk: Digest(of: world.chunk))
            let deniedBefore = try await deniedCount(registry)
            var denials = 0
            for route in routes {
                for caller in ["admin"] + World.roles + ["stranger", "no-token", "bad-token"] {
                    let token: String? =
                        switch caller {
                        case "no-token": nil
                        case "bad-token": "mr_not-a-real-token"
                        default: world.tokens[caller]
                        }
                    let response = try await registry.send(
                        route.method, route.path, token: token, json: route.json, body: route.body,
                        headers: route.headers)
                    if token == nil || caller == "bad-token" {
                        #expect(response.status == 401, "\(route) as \(caller): \(response.text)")
                        if route.method != .HEAD {
                            #expect(response.errorCode == "UNAUTHENTICATED", "\(route) as \(caller)")
                        }
                        #expect(response.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
                    } else if Self.allowed(route.rule, caller: caller) {
                        #expect(![401, 403].contains(response.status), "\(route) as \(caller): \(response.text)")
                    } else if case .download = route.rule {
                        // Content the caller cannot read does not exist for it: the same answer as an absent blob.
                        #expect(response.status == 404, "\(route) as \(caller): \(response.text)")
                        if route.method != .HEAD {
                            let code = route.path.hasPrefix("/v1/manifests") ? "MANIFEST_NOT_FOUND" : "BLOB_NOT_FOUND"
                            #expect(response.errorCode == code, "\(route) as \(caller)")
                        }
                        denials += 1
                    } else {
                        #expect(response.status == 403, "\(route) as \(caller): \(response.text)")
                        if route.method != .HEAD {
                            #expect(response.errorCode == "PERMISSION_DENIED", "\(route) as \(caller)")
                        }
                        denials += 1
                    }
                }
            }
            #expect(denials > 50)
            // Denials are audited in batches: give the last one its moment to be written.
            try await Task.sleep(for: .seconds(1))
            #expect(try await deniedCount(registry) - deniedBefore == denials)
        }
    }

    private func deniedCount(_ registry: TestRegistry) async throws -> Int {
        var count = 0
        var after: Int64 = 0
        while true {
            let page = try await registry.metadata.auditEntries(AuditQuery(after: after, limit: 1000))
            count += page.items.filter { $0.action == "access.denied" }.count
            guard let last = page.items.last, page.nextPageToken != nil else { return count }
            after = last.sequence
        }
    }
}
