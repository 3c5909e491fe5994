import Foundation
import NIOHTTP1
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

/// Every route of `/openapi.json` against every kind of caller, on the SQLite and file-system stores, on the main
/// and the data-plane port, with the exact status each must get.
///
/// An allowed caller really does the thing where that leaves the world usable for the next caller (reads, uploads,
/// a new version, a model or token of its own, pausing and resuming a real rollout, a dry-run garbage collection);
/// mutations that would change what later rows rely on carry a stale `If-Match`, so an allowed caller gets exactly
/// 412 (authorization is checked before the precondition) against a resource that exists.
@Suite(.timeLimit(.minutes(10))) struct AuthorizationMatrixTests {
    /// Who may call a route.
    enum Rule: Sendable {
        /// Anyone, with or without a token, even a bad one.
        case everyone
        case anyAuthenticated
        case admin
        case permission(Permission)
        /// Write on at least one model.
        case upload
        /// Read on a model that references the blob; anyone else is told it does not exist (404).
        case download
        /// The global permission to create models (admins, and tokens issued with `canCreateModels`).
        case createModels
    }

    struct Route: Sendable, CustomStringConvertible {
        let method: HTTPMethod
        /// The `/openapi.json` path this row exercises.
        let template: String
        /// The concrete path; `{caller}` becomes the caller's name.
        let path: String
        var json: JSONValue?
        var body: [UInt8]?
        /// `{rollout-etag}` becomes the rollout's current ETag when the request is sent.
        var headers: [(String, String)] = []
        let rule: Rule
        /// The exact status an allowed caller gets.
        let allowed: Int
        /// Whether the data-plane port serves it (everything else is 404 there, for every caller).
        var onDataPort = false

        var description: String { "\(method) \(path)" }
    }

    static let stale = [("If-Match", "\"999\"")]
    static let callers =
        ["admin"] + World.roles + ["stranger", "no-token", "bad-token", "expired-token"]

    /// `manifestBytes` are those of `manifest`, whose one file is the chunk `chunk`.
    static func routes(manifest: Digest, manifestBytes: [UInt8], chunk: Digest, rollout: String) -> [Route] {
        let rollouts = "/v1/models/demo/stages/production/rollouts"
        let rolloutTemplate = "/v1/models/{model}/stages/{stage}/rollouts/{rollout}"
        let current = [("If-Match", "{rollout-etag}")]
        return [
            Route(
                method: .GET, template: "/healthz", path: "/healthz", rule: .everyone, allowed: 200, onDataPort: true),
            Route(method: .GET, template: "/readyz", path: "/readyz", rule: .everyone, allowed: 200),
            Route(method: .GET, template: "/metrics", path: "/metrics", rule: .everyone, allowed: 200),
            Route(method: .GET, template: "/openapi.json", path: "/openapi.json", rule: .everyone, allowed: 200),
            Route(method: .GET, template: "/v1/models", path: "/v1/models", rule: .anyAuthenticated, allowed: 200),
            Route(
                method: .POST, template: "/v1/models", path: "/v1/models", json: ["name": "made-by-{caller}"],
                rule: .createModels, allowed: 201),
            Route(
                method: .GET, template: "/v1/models/{model}", path: "/v1/models/demo", rule: .permission(.read),
                allowed: 200),
            Route(
                method: .PATCH, template: "/v1/models/{model}", path: "/v1/models/demo", json: ["description": "d"],
                headers: stale, rule: .permission(.manage), allowed: 412),
            Route(
                method: .GET, template: "/v1/models/{model}/acl", path: "/v1/models/demo/acl",
                rule: .permission(.manage), allowed: 200),
            Route(
                method: .PUT, template: "/v1/models/{model}/acl", path: "/v1/models/demo/acl",
                json: ["grants": .array([])], headers: stale, rule: .permission(.manage), allowed: 412),
            Route(
                method: .POST, template: "/v1/models/{model}/versions", path: "/v1/models/demo/versions",
                json: ["manifestDigest": .string(manifest.description)], rule: .permission(.write), allowed: 201),
            Route(
                method: .GET, template: "/v1/models/{model}/versions", path: "/v1/models/demo/versions",
                rule: .permission(.read), allowed: 200),
            Route(
                method: .GET, template: "/v1/models/{model}/versions/{version}", path: "/v1/models/demo/versions/1",
                rule: .permission(.read), allowed: 200),
            Route(
                method: .PATCH, template: "/v1/models/{model}/versions/{version}", path: "/v1/models/demo/versions/1",
                json: ["tags": ["a": "b"]], headers: stale, rule: .permission(.write), allowed: 412),
            Route(
                method: .PATCH, template: "/v1/models/{model}/versions/{version}", path: "/v1/models/demo/versions/1",
                json: ["status": "archived"], headers: stale, rule: .permission(.manage), allowed: 412),
            Route(
                method: .POST, template: "/v1/models/{model}/versions/{version}/approvals",
                path: "/v1/models/demo/versions/1/approvals", json: ["decision": "approve"], headers: stale,
                rule: .permission(.approve), allowed: 412),
            Route(
                method: .GET, template: "/v1/models/{model}/stages", path: "/v1/models/demo/stages",
                rule: .permission(.read), allowed: 200),
            Route(
                method: .GET, template: "/v1/models/{model}/stages/{stage}", path: "/v1/models/demo/stages/production",
                rule: .permission(.read), allowed: 200),
            Route(
                method: .PUT, template: "/v1/models/{model}/stages/{stage}", path: "/v1/models/demo/stages/production",
                json: ["version": 1], headers: stale, rule: .permission(.deploy), allowed: 412),
            Route(
                method: .GET, template: "/v1/models/{model}/stages/{stage}/history",
                path: "/v1/models/demo/stages/production/history", rule: .permission(.read), allowed: 200),
            Route(
                method: .POST, template: "/v1/models/{model}/stages/{stage}/rollback",
                path: "/v1/models/demo/stages/production/rollback", json: [:], headers: stale,
                rule: .permission(.deploy), allowed: 412),
            Route(
                method: .POST, template: "/v1/models/{model}/stages/{stage}/rollouts", path: rollouts,
                json: ["version": 1], headers: stale, rule: .permission(.deploy), allowed: 412),
            Route(
                method: .GET, template: rolloutTemplate, path: "\(rollouts)/\(rollout)", rule: .permission(.read),
                allowed: 200),
            Route(
                method: .POST, template: rolloutTemplate + "/advance", path: "\(rollouts)/\(rollout)/advance",
                headers: stale, rule: .permission(.deploy), allowed: 412),
            // Real: each allowed caller pauses the running rollout and resumes it.
            Route(
                method: .POST, template: rolloutTemplate + "/pause", path: "\(rollouts)/\(rollout)/pause",
                headers: current, rule: .permission(.deploy), allowed: 200),
            Route(
                method: .POST, template: rolloutTemplate + "/resume", path: "\(rollouts)/\(rollout)/resume",
                headers: current, rule: .permission(.deploy), allowed: 200),
            Route(
                method: .POST, template: rolloutTemplate + "/abort", path: "\(rollouts)/\(rollout)/abort",
                headers: stale, rule: .permission(.deploy), allowed: 412),
            Route(
                method: .POST, template: rolloutTemplate + "/reports", path: "\(rollouts)/\(rollout)/reports",
                json: ["instance": "{caller}", "state": "loaded"], rule: .permission(.report), allowed: 200),
            Route(
                method: .POST, template: "/v1/admin/gc", path: "/v1/admin/gc", json: ["dryRun": true], rule: .admin,
                allowed: 200),
            Route(
                method: .GET, template: "/v1/resolve/{model}/{stage}", path: "/v1/resolve/demo/production",
                rule: .permission(.read), allowed: 200),
            Route(
                method: .POST, template: "/v1/blobs/check", path: "/v1/blobs/check", json: ["digests": .array([])],
                rule: .upload, allowed: 200, onDataPort: true),
            Route(
                method: .PUT, template: "/v1/blobs/{digest}", path: "/v1/blobs/\(chunk)",
                body: Array("weights of the demo model".utf8), rule: .upload, allowed: 200, onDataPort: true),
            Route(
                method: .GET, template: "/v1/blobs/{digest}", path: "/v1/blobs/\(chunk)", rule: .download,
                allowed: 200, onDataPort: true),
            Route(
                method: .HEAD, template: "/v1/blobs/{digest}", path: "/v1/blobs/\(chunk)", rule: .download,
                allowed: 200, onDataPort: true),
            Route(
                method: .PUT, template: "/v1/manifests", path: "/v1/manifests",
                body: manifestBytes, headers: [("Content-Type", "application/json")], rule: .upload, allowed: 201,
                onDataPort: true),
            Route(
                method: .GET, template: "/v1/manifests/{digest}", path: "/v1/manifests/\(manifest)", rule: .download,
                allowed: 200, onDataPort: true),
            Route(method: .GET, template: "/v1/events", path: "/v1/events", rule: .anyAuthenticated, allowed: 200),
            Route(
                method: .GET, template: "/v1/audit", path: "/v1/audit?model=demo", rule: .permission(.manage),
                allowed: 200),
            Route(method: .GET, template: "/v1/audit", path: "/v1/audit", rule: .admin, allowed: 200),
            Route(method: .GET, template: "/v1/audit/verify", path: "/v1/audit/verify", rule: .admin, allowed: 200),
            Route(method: .GET, template: "/v1/tokens", path: "/v1/tokens", rule: .admin, allowed: 200),
            Route(
                method: .POST, template: "/v1/tokens", path: "/v1/tokens", json: ["subject": "made-by-{caller}"],
                rule: .admin, allowed: 201),
            Route(
                method: .DELETE, template: "/v1/tokens/{id}", path: "/v1/tokens/doesnotexist", rule: .admin,
                allowed: 404),
        ]
    }

    /// Which roles carry each permission, written out from API.md's role list rather than read from `Role`, so that
    /// a change to the server's table is caught here instead of being mirrored.
    static let holders: [Permission: Set<String>] = [
        .read: ["owner", "writer", "approver", "deployer", "reader", "serving"],
        .write: ["owner", "writer"],
        .approve: ["owner", "approver"],
        .deploy: ["owner", "deployer"],
        .report: ["owner", "serving"],
        .manage: ["owner"],
    ]

    static func allowed(_ rule: Rule, caller: String) -> Bool {
        if case .everyone = rule { return true }
        if ["no-token", "bad-token", "expired-token"].contains(caller) { return false }
        if caller == "admin" { return true }
        switch rule {
        case .everyone, .anyAuthenticated: return true
        case .admin: return false
        case .permission(let permission): return holders[permission, default: []].contains(caller)
        case .upload: return holders[.write, default: []].contains(caller)
        case .download: return holders[.read, default: []].contains(caller)
        case .createModels: return caller == "owner"
        }
    }

    /// The exact status and error code `caller` must get from `route` on the main port.
    static func expected(_ route: Route, caller: String) -> (status: Int, code: String?) {
        switch caller {
        case _ where Self.allowed(route.rule, caller: caller): (route.allowed, nil)
        case "no-token", "bad-token": (401, "UNAUTHENTICATED")
        case "expired-token": (401, "TOKEN_EXPIRED")
        default:
            if case .download = route.rule {
                // Content the caller cannot read does not exist for it: the same answer as an absent blob.
                (404, route.path.hasPrefix("/v1/manifests") ? "MANIFEST_NOT_FOUND" : "BLOB_NOT_FOUND")
            } else {
                (403, "PERMISSION_DENIED")
            }
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func everyRouteGivesEveryCallerExactlyItsStatusOnBothPortsAndAuditsDenials() async throws {
        // Bad and expired tokens are part of the matrix: the per-address throttle would answer them with 429.
        var configuration = ServerConfiguration(dataPort: 0)
        configuration.maxAuthFailuresPerMinute = 0
        try await TestRegistry.with(.sqlite, configuration: configuration) { registry in
            let world = try await World.make(registry)
            let rollout = try await world.manualRollout(of: try await world.approvedVersion("candidate"))
            var tokens = world.tokens
            tokens["bad-token"] = "mr_not-a-real-token"
            let (expired, expiredSecret) = AdminBootstrap.newToken(
                subject: "expired", admin: true, expiresAt: Date().addingTimeInterval(-1), createdBy: "admin",
                time: Timestamp.now())
            try await registry.metadata.createToken(expired, context: MutationContext(actor: "admin", requestId: "t"))
            tokens["expired-token"] = expiredSecret

            let chunk = Digest(of: world.chunk)
            let manifest = Manifest(
                files: [
                    .init(
                        path: "model.bin", size: Int64(world.chunk.count), digest: chunk,
                        chunks: [.init(digest: chunk, size: Int64(world.chunk.count))])
                ])
            let manifestBytes = try JSONCoding.encode(manifest)
            #expect(Digest(of: manifestBytes) == world.manifest, "the world's manifest, sent again")
            let routes = Self.routes(
                manifest: world.manifest, manifestBytes: manifestBytes, chunk: chunk, rollout: rollout)
            #expect(Set(Self.holders.keys) == Set(Permission.allCases), "a permission without a row in `holders`")
            try await Self.requireEveryOperationHasARow(routes, registry)
            let deniedBefore = try await deniedCount(registry)
            var denials = 0
            for (port, base) in [("main", registry.baseURL), ("data", registry.dataBaseURL)] {
                #expect(base != registry.baseURL || port == "main", "the data port is its own port")
                for caller in Self.callers {
                    for route in routes {
                        let cell = "\(route) as \(caller) on the \(port) port"
                        let response = try await send(
                            route, as: caller, tokens: tokens, rollout: rollout, to: registry, base: base)
                        var (status, code) = Self.expected(route, caller: caller)
                        if port == "data", !route.onDataPort { (status, code) = (404, "NOT_FOUND") }
                        #expect(response.status == status, "\(cell): \(response.text)")
                        if route.method != .HEAD, status >= 400, let code {
                            #expect(response.errorCode == code, "\(cell): \(response.text)")
                        }
                        if status == 401 {
                            #expect(response.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "\(cell)")
                        }
                        // Every 403, and every 404 that hides content, is a denial the audit log must show.
                        if !Self.allowed(route.rule, caller: caller), [403, 404].contains(status), code != "NOT_FOUND" {
                            denials += 1
                        }
                        if route.path.hasSuffix("/pause"), status == 200 {
                            #expect(response.json["state"] == "paused", "\(cell): \(response.text)")
                        }
                        if route.path.hasSuffix("/resume"), status == 200 {
                            #expect(response.json["state"] != "paused", "\(cell): \(response.text)")
                        }
                    }
                }
            }
            #expect(denials > 100)
            // Denials are audited in batches: wait (bounded) until the last batch is written.
            let deadline = ContinuousClock.now + .seconds(60)
            var audited = 0
            repeat {
                audited = try await deniedCount(registry) - deniedBefore
                if audited >= denials { break }
                try await Task.sleep(for: .milliseconds(100))
            } while ContinuousClock.now < deadline
            #expect(audited == denials)
        }
    }

    /// Fails the test for an operation of `/openapi.json` without a row (a new route must join the matrix) and for
    /// a row whose operation the document does not list.
    static func requireEveryOperationHasARow(_ routes: [Route], _ registry: TestRegistry) async throws {
        let document = try await registry.send(.GET, "/openapi.json", token: nil)
        guard case .object(let paths)? = document.json["paths"] else {
            throw TestFailure("no paths in /openapi.json: \(document.text.prefix(200))")
        }
        var operations = Set<String>()
        for (path, item) in paths {
            guard case .object(let methods) = item else { continue }
            for method in methods.keys { operations.insert("\(method.uppercased()) \(path)") }
        }
        let rows = Set(routes.map { "\($0.method.rawValue) \($0.template)" })
        // HEAD is answered by the server wherever GET is; the document need not list it.
        let documentedRows = rows.filter { !$0.hasPrefix("HEAD ") || operations.contains($0) }
        #expect(operations.subtracting(rows).sorted() == [], "operations without a matrix row")
        #expect(documentedRows.subtracting(operations).sorted() == [], "matrix rows for undocumented operations")
        #expect(rows.contains("HEAD /v1/blobs/{digest}"))
    }

    private func send(
        _ route: Route, as caller: String, tokens: [String: String], rollout: String, to registry: TestRegistry,
        base: String
    ) async throws -> TestResponse {
        var headers = route.headers
        if headers.contains(where: { $0.1 == "{rollout-etag}" }) {
            let current = try await registry.send(
                .GET, "/v1/models/demo/stages/production/rollouts/\(rollout)", token: tokens["admin"])
            headers = headers.map { ($0.0, $0.1 == "{rollout-etag}" ? current.header("ETag") ?? "" : $0.1) }
        }
        var json = route.json
        if let value = json {
            let text = String(decoding: try JSONCoding.encode(value), as: UTF8.self)
            json = try JSONCoding.decode(
                JSONValue.self, from: Array(text.replacingOccurrences(of: "{caller}", with: caller).utf8))
        }
        return try await registry.send(
            route.method, route.path, token: caller == "no-token" ? nil : tokens[caller], json: json,
            body: route.body, headers: headers, base: base)
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
