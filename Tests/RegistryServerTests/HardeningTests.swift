import Foundation
import NIOHTTP1
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

/// Inputs an attacker holding an ordinary token controls: every integer is range-checked before arithmetic, so
/// none of these can trap the process (each of them did before).
@Suite(.timeLimit(.minutes(10))) struct OverflowTests {
    @Test func aRangeEndingAtInt64MaxIsTheRestOfTheBlob() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            for method in [HTTPMethod.GET, .HEAD] {
                let response = try await registry.send(
                    method, "/v1/blobs/\(Digest(of: world.chunk))", token: world.tokens["reader"],
                    headers: [("Range", "bytes=0-9223372036854775807")])
                #expect(response.status == 206)
                #expect(response.header("Content-Range") == "bytes 0-\(world.chunk.count - 1)/\(world.chunk.count)")
                if method == .GET { #expect(response.body == world.chunk) }
            }
            let tail = try await registry.send(
                .GET, "/v1/blobs/\(Digest(of: world.chunk))", token: world.tokens["reader"],
                headers: [("Range", "bytes=3-9223372036854775806")])
            #expect(tail.status == 206)
            #expect(tail.body == Array(world.chunk.dropFirst(3)))
        }
    }

    @Test func aManifestWhoseChunkSizesOverflowIsInvalid() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let a = Digest(of: Array("a".utf8))
            let b = Digest(of: Array("b".utf8))
            let manifest = Manifest(files: [
                .init(
                    path: "huge.bin", size: 1, digest: a,
                    chunks: [.init(digest: a, size: Int64.max), .init(digest: b, size: Int64.max)])
            ])
            let response = try await registry.send(
                .PUT, "/v1/manifests", token: world.tokens["writer"], body: try JSONCoding.encode(manifest),
                headers: [("Content-Type", "application/json")])
            #expect(response.status == 400)
            #expect(response.errorCode == "MANIFEST_INVALID")
            // Files that each fit but add up past the limit are refused the same way.
            let big = Manifest.maxTotalSize
            let files = (0..<3).map { index in
                Manifest.File(path: "f\(index)", size: big, digest: a, chunks: [.init(digest: a, size: big)])
            }
            #expect(throws: RegistryError.self) { try Manifest(files: files).validate() }
        }
    }

    @Test func reportsWithHugeCountsAreRefusedAndCannotOverflowTheSums() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let serving = try await registry.token(for: "fleet")
            try await world.grant("fleet", role: "serving")
            let rollout = try await world.startRollout()
            for requests in [1 << 62, -1] {
                let response = try await registry.send(
                    .POST, "/v1/models/demo/stages/production/rollouts/\(rollout)/reports", token: serving,
                    json: ["instance": "i-1", "state": "loaded", "requests": .number(Double(requests))])
                #expect(response.status == 400)
                #expect(response.errorCode == "INVALID_ARGUMENT")
            }
            let moreErrorsThanRequests = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollouts/\(rollout)/reports", token: serving,
                json: ["instance": "i-1", "state": "loaded", "requests": 1, "errors": 2])
            #expect(moreErrorsThanRequests.status == 400)
            // The largest accepted counts from many instances add up without trapping.
            for index in 0..<20 {
                let response = try await registry.send(
                    .POST, "/v1/models/demo/stages/production/rollouts/\(rollout)/reports", token: serving,
                    json: [
                        "instance": .string("i-\(index)"), "state": "serving",
                        "requests": .number(Double(InstanceReport.maxCount)), "errors": 0,
                        "stableRequests": .number(Double(InstanceReport.maxCount)), "stableErrors": 0,
                    ])
                #expect(response.status == 200 || response.errorCode == "INVALID_TRANSITION")
            }
            let health = try await registry.send(.GET, "/healthz", token: nil)
            #expect(health.status == 200)
        }
    }
}

/// Who may do what beyond one model's access list.
@Suite(.timeLimit(.minutes(10))) struct LeastPrivilegeTests {
    @Test func creatingAModelNeedsTheGlobalPermission() async throws {
        try await TestRegistry.with { registry in
            let ordinary = try await registry.token(for: "mallory")
            let denied = try await registry.send(.POST, "/v1/models", token: ordinary, json: ["name": "mine"])
            #expect(denied.status == 403)
            #expect(denied.errorCode == "PERMISSION_DENIED")
            let creator = try await registry.token(for: "ci", canCreateModels: true)
            let created = try await registry.send(.POST, "/v1/models", token: creator, json: ["name": "mine"])
            #expect(created.status == 201)
            let audit = try await registry.metadata.auditEntries(AuditQuery(after: 0, limit: 1000)).items
            #expect(audit.contains { $0.action == "access.denied" && $0.actor == "mallory" })
        }
    }

    @Test func anotherModelsContentIsInvisibleToAWriter() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            // Mallory owns a model of her own, so she may upload, but cannot read `demo`.
            let mallory = try await registry.token(for: "mallory", canCreateModels: true)
            let own = try await registry.send(.POST, "/v1/models", token: mallory, json: ["name": "mallorys"])
            #expect(own.status == 201)
            let secret = Digest(of: world.chunk)
            for method in [HTTPMethod.GET, .HEAD] {
                let read = try await registry.send(method, "/v1/blobs/\(secret)", token: mallory)
                #expect(read.status == 404)
            }
            let manifest = try await registry.send(.GET, "/v1/manifests/\(world.manifest)", token: mallory)
            #expect(manifest.status == 404)
            #expect(manifest.errorCode == "MANIFEST_NOT_FOUND")
            let check = try await registry.send(
                .POST, "/v1/blobs/check", token: mallory, json: ["digests": .array([.string(secret.description)])])
            #expect(check.json["missing"] == .array([.string(secret.description)]))
            let probe = Manifest(files: [
                .init(
                    path: "x", size: Int64(world.chunk.count), digest: secret,
                    chunks: [.init(digest: secret, size: Int64(world.chunk.count))])
            ])
            let put = try await registry.send(
                .PUT, "/v1/manifests", token: mallory, body: try JSONCoding.encode(probe),
                headers: [("Content-Type", "application/json")])
            #expect(put.status == 422)
            let version = try await registry.send(
                .POST, "/v1/models/mallorys/versions", token: mallory,
                json: ["manifestDigest": .string(world.manifest.description)])
            #expect(version.status == 422)
            // Uploading the same bytes herself (deduplicated by the store) makes them hers to use.
            let upload = try await registry.send(.PUT, "/v1/blobs/\(secret)", token: mallory, body: world.chunk)
            #expect(upload.status == 200)
            let again = try await registry.send(.GET, "/v1/blobs/\(secret)", token: mallory)
            #expect(again.status == 200)
            #expect(again.body == world.chunk)
            // Readers of `demo` keep seeing it; the denials were audited.
            let reader = try await registry.send(.GET, "/v1/blobs/\(secret)", token: world.tokens["reader"])
            #expect(reader.status == 200)
            // No wait: a denial is answered only once its audit entry is written.
            let audit = try await registry.metadata.auditEntries(AuditQuery(after: 0, limit: 1000)).items
            #expect(audit.filter { $0.action == "access.denied" && $0.actor == "mallory" }.count >= 3)
        }
    }

    @Test func reportsComeFromServingInstancesNotReaders() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.maxInstancesPerRollout = 2
        try await TestRegistry.with(configuration: configuration) { registry in
            let world = try await World.make(registry)
            let fleet = try await registry.token(for: "fleet")
            try await world.grant("fleet", role: "serving")
            let rollout = try await world.startRollout()
            let path = "/v1/models/demo/stages/production/rollouts/\(rollout)/reports"
            let byReader = try await registry.send(
                .POST, path, token: world.tokens["reader"], json: ["instance": "i-1", "state": "loaded"])
            #expect(byReader.status == 403)
            for instance in ["i-1", "i-2"] {
                let report = try await registry.send(
                    .POST, path, token: fleet, json: ["instance": .string(instance), "state": "loaded"])
                #expect(report.status == 200)
            }
            let third = try await registry.send(
                .POST, path, token: fleet, json: ["instance": "i-3", "state": "loaded"])
            #expect(third.status == 409)
            #expect(third.errorCode == "TOO_MANY_INSTANCES")
            let again = try await registry.send(
                .POST, path, token: fleet, json: ["instance": "i-1", "state": "loaded"])
            #expect(again.status == 200)
            // The serving role may read and resolve, and nothing else.
            let resolve = try await registry.send(.GET, "/v1/resolve/demo/production", token: fleet)
            #expect(resolve.status == 200)
            let promote = try await registry.send(
                .PUT, "/v1/models/demo/stages/staging", token: fleet, json: ["version": 1],
                headers: [("If-None-Match", "*")])
            #expect(promote.status == 403)
        }
    }
}

/// Tokens: expiry, revocation, brute force.
@Suite(.timeLimit(.minutes(10))) struct TokenHardeningTests {
    @Test func anExpiredTokenNoLongerAuthenticates() async throws {
        try await TestRegistry.with { registry in
            // Issued through the API with an expiry: it works until then.
            let later = Timestamp.format(Date().addingTimeInterval(3600))
            let created = try await registry.send(
                .POST, "/v1/tokens", token: registry.adminToken, json: ["subject": "temp", "expiresAt": .string(later)])
            #expect(created.status == 201)
            #expect(created.json["expiresAt"] == .string(later))
            guard case .string(let secret)? = created.json["token"] else { throw TestFailure("no token") }
            #expect(try await registry.send(.GET, "/v1/models", token: secret).status == 200)
            // One whose expiry has passed (stored directly, so that no clock has to run out during the test).
            let (expired, expiredSecret) = AdminBootstrap.newToken(
                subject: "old", admin: true, expiresAt: Date().addingTimeInterval(-1), createdBy: "admin",
                time: Timestamp.now())
            try await registry.metadata.createToken(expired, context: MutationContext(actor: "admin", requestId: "t"))
            let refused = try await registry.send(.GET, "/v1/models", token: expiredSecret)
            #expect(refused.status == 401)
            #expect(refused.errorCode == "TOKEN_EXPIRED")
            let past = try await registry.send(
                .POST, "/v1/tokens", token: registry.adminToken,
                json: ["subject": "temp", "expiresAt": "2001-01-01T00:00:00Z"])
            #expect(past.status == 400)
        }
    }

    @Test func repeatedFailuresFromOneAddressAreSlowedDown() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.maxAuthFailuresPerMinute = 5
        // An hour, not a minute: on a loaded machine these six requests have taken longer than a minute.
        configuration.authFailureWindow = .seconds(3600)
        try await TestRegistry.with(configuration: configuration) { registry in
            for _ in 0..<5 {
                let guess = try await registry.send(.GET, "/v1/models", token: TokenSecret.generate())
                #expect(guess.status == 401)
            }
            let limited = try await registry.send(.GET, "/v1/models", token: TokenSecret.generate())
            #expect(limited.status == 429)
            #expect(limited.errorCode == "TOO_MANY_REQUESTS")
            #expect(limited.header("Retry-After").flatMap(Int.init) ?? 0 >= 1)
            // Even the right token waits out the window from that address; requests without a token are not counted.
            let right = try await registry.send(.GET, "/v1/models", token: registry.adminToken)
            #expect(right.status == 429)
            #expect(try await registry.send(.GET, "/healthz", token: nil).status == 200)
        }
    }

    @Test func aShortBearerTokenIsRefusedWithoutALookup() async throws {
        try await TestRegistry.with { registry in
            let response = try await registry.send(.GET, "/v1/models", token: "short")
            #expect(response.status == 401)
            #expect(response.errorCode == "UNAUTHENTICATED")
        }
    }
}

/// Changes to an approved version.
@Suite(.timeLimit(.minutes(10))) struct ApprovedVersionTests {
    @Test func changingMetadataAfterApprovalRevokesItWhenThePolicySaysSo() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let number = try await world.approvedVersion("second")
            // Without the policy the change is only audited.
            let plain = try await registry.send(
                .PATCH, "/v1/models/demo/versions/\(number)", token: world.tokens["writer"],
                json: ["metadata": ["accuracy": 0.9]], headers: [("If-Match", "\"2\"")])
            #expect(plain.status == 200)
            #expect(plain.json["status"] == "approved")
            let model = try await registry.send(.GET, "/v1/models/demo", token: world.tokens["owner"])
            let revision = model.int("revision") ?? 0
            let policy = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["owner"],
                json: ["approvalPolicy": ["requiredApprovals": 1, "revokeApprovalOnMetadataChange": true]],
                headers: [("If-Match", "\"\(revision)\"")])
            #expect(policy.status == 200)
            let revoked = try await registry.send(
                .PATCH, "/v1/models/demo/versions/\(number)", token: world.tokens["writer"],
                json: ["metadata": ["accuracy": 0.99]], headers: [("If-Match", "\"3\"")])
            #expect(revoked.status == 200)
            #expect(revoked.json["status"] == "pending")
            #expect(revoked.json["approvals"] == .array([]))
            let promote = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"],
                json: ["version": .number(Double(number))], headers: [("If-Match", "\"1\"")])
            #expect(promote.status == 409)
            let audit = try await registry.metadata.auditEntries(AuditQuery(model: "demo", after: 0, limit: 1000)).items
            #expect(audit.contains { $0.action == "version.approval-revoke" })
        }
    }
}

extension World {
    /// Adds `subject` with `role` to `demo`'s access list.
    func grant(_ subject: String, role: String) async throws {
        let current = try await registry.send(.GET, "/v1/models/demo/acl", token: tokens["owner"])
        guard case .array(var grants)? = current.json["grants"], let revision = current.int("revision") else {
            throw TestFailure("acl: \(current.status) \(current.text)")
        }
        grants.append(["subject": .string(subject), "role": .string(role)])
        let response = try await registry.send(
            .PUT, "/v1/models/demo/acl", token: tokens["owner"], json: ["grants": .array(grants)],
            headers: [("If-Match", "\"\(revision)\"")])
        guard response.status == 200 else { throw TestFailure("acl: \(response.status) \(response.text)") }
    }

    /// Starts a rollout of a new approved version on `production`; returns its id.
    func startRollout() async throws -> String {
        let number = try await approvedVersion("candidate \(UUID())")
        let stage = try await registry.send(.GET, "/v1/models/demo/stages/production", token: tokens["deployer"])
        let revision = stage.int("revision") ?? 0
        let response = try await registry.send(
            .POST, "/v1/models/demo/stages/production/rollouts", token: tokens["deployer"],
            json: ["version": .number(Double(number)), "bakeSeconds": 3600],
            headers: [("If-Match", "\"\(revision)\"")])
        guard response.status == 201, case .string(let id)? = response.json["id"] else {
            throw TestFailure("rollout: \(response.status) \(response.text)")
        }
        return id
    }
}
