import RegistryCore
import RegistryTesting
import Testing

/// Trust policies on models and their enforcement at version creation, signature updates, promotion and rollback.
@Suite(.timeLimit(.minutes(10))) struct SigningRoutesTests {
    let trusted = SigningKey.generate(.ed25519)
    let other = SigningKey.generate(.p256)

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func trustPolicyRoundTripsThroughPatchWithManagePermission(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let policy: JSONValue = [
                "requireSignature": .bool(true),
                "trustedKeys": .array([
                    .string(trusted.publicKey.description), .string(other.publicKey.description),
                    .string(trusted.publicKey.description),
                ]),
            ]
            let fresh = try await registry.send(.GET, "/v1/models/demo", token: world.tokens["reader"])
            #expect(fresh.json["trustPolicy"] == ["requireSignature": .bool(false), "trustedKeys": .array([])])
            let unconditional = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["owner"], json: ["trustPolicy": policy])
            #expect(unconditional.status == 428)
            let writer = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["writer"], json: ["trustPolicy": policy],
                headers: [("If-Match", "\"2\"")])
            #expect(writer.status == 403)
            let updated = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["owner"], json: ["trustPolicy": policy],
                headers: [("If-Match", "\"2\"")])
            #expect(updated.status == 200)
            let expected: JSONValue = [
                "requireSignature": .bool(true),
                "trustedKeys": .array([.string(trusted.publicKey.description), .string(other.publicKey.description)]),
            ]
            #expect(updated.json["trustPolicy"] == expected)
            let read = try await registry.send(.GET, "/v1/models/demo", token: world.tokens["reader"])
            #expect(read.json["trustPolicy"] == expected)
            #expect(read.header("ETag") == "\"3\"")
            let audit = try await registry.send(.GET, "/v1/audit?model=demo", token: registry.adminToken)
            guard case .array(let entries)? = audit.json["items"] else {
                throw TestFailure("audit: \(audit.text)")
            }
            #expect(entries.last?["action"] == "model.update")
            #expect(entries.last?["after"]?["trustPolicy"] == expected)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aPolicyThatRequiresSignaturesWithoutKeysOrWithAMalformedKeyIsRefused(_ backend: TestRegistry.Backend)
        async throws
    {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let keyless = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["owner"],
                json: ["trustPolicy": ["requireSignature": .bool(true)]], headers: [("If-Match", "\"2\"")])
            #expect(keyless.status == 400)
            #expect(keyless.errorCode == "INVALID_ARGUMENT")
            let malformed = try await registry.send(
                .PATCH, "/v1/models/demo", token: world.tokens["owner"],
                json: ["trustPolicy": ["trustedKeys": .array(["ed25519:AAAA"])]], headers: [("If-Match", "\"2\"")])
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "INVALID_ARGUMENT")
            let created = try await registry.send(
                .POST, "/v1/models", token: world.tokens["owner"],
                json: [
                    "name": "signed-from-birth",
                    "trustPolicy": [
                        "requireSignature": .bool(true),
                        "trustedKeys": .array([.string(trusted.publicKey.description)]),
                    ],
                ])
            #expect(created.status == 201)
            #expect(created.json["trustPolicy"]?["requireSignature"] == .bool(true))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aVersionSignedByATrustedKeyIsAcceptedAndOneSignedByAnotherIsRefused(_ backend: TestRegistry.Backend)
        async throws
    {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            try await trust([trusted], requireSignature: false, world, revision: 2)
            let digest = try await registry.upload(["model.bin": Array("signed weights".utf8)], token: writer(world))
            let foreign = try await sign(registry, digest, with: other)
            let refused = try await createVersion(world, digest, signature: foreign)
            #expect(refused.status == 400)
            #expect(refused.errorCode == "SIGNATURE_INVALID")
            let otherDigest = try await registry.upload(["model.bin": Array("other".utf8)], token: writer(world))
            let elsewhere = try await sign(registry, otherDigest, with: trusted)
            let misplaced = try await createVersion(world, digest, signature: elsewhere)
            #expect(misplaced.status == 400)
            #expect(misplaced.errorCode == "SIGNATURE_INVALID")
            let garbage = try await createVersion(world, digest, signature: "not an envelope")
            #expect(garbage.errorCode == "SIGNATURE_INVALID")
            let signature = try await sign(registry, digest, with: trusted)
            let accepted = try await createVersion(world, digest, signature: signature)
            #expect(accepted.status == 201)
            #expect(accepted.int("version") == 2)
            #expect(accepted.json["signature"] == .string(signature))
            // Without "signature required" an unsigned version is still welcome.
            let unsigned = try await createVersion(world, otherDigest, signature: nil)
            #expect(unsigned.status == 201)
            #expect(unsigned.int("version") == 3)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aSignatureOnAModelWithoutTrustedKeysIsStoredAsIs(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let digest = try await registry.upload(["model.bin": Array("weights".utf8)], token: writer(world))
            let signature = try await sign(registry, digest, with: other)
            let created = try await createVersion(world, digest, signature: signature)
            #expect(created.status == 201)
            #expect(created.json["signature"] == .string(signature))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func anUnsignedVersionIsRefusedWhenTheModelRequiresSignatures(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            try await trust([trusted], requireSignature: true, world, revision: 2)
            let digest = try await registry.upload(["model.bin": Array("unsigned".utf8)], token: writer(world))
            let refused = try await createVersion(world, digest, signature: nil)
            #expect(refused.status == 422)
            #expect(refused.errorCode == "SIGNATURE_REQUIRED")
            let list = try await registry.send(.GET, "/v1/models/demo/versions", token: world.tokens["reader"])
            #expect(list.json["items"]?.isArrayOfCount(1) == true)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func promotionUnderARequiredSignatureChecksTheCurrentTrustedKeys(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            try await trust([trusted], requireSignature: true, world, revision: 2)
            // Version 1 predates the policy and is unsigned.
            let unsigned = try await promote(world, "staging", version: 1)
            #expect(unsigned.status == 409)
            #expect(unsigned.errorCode == "SIGNATURE_REQUIRED")
            let digest = try await registry.upload(["model.bin": Array("v2".utf8)], token: writer(world))
            let v2Signature = try await sign(registry, digest, with: trusted)
            let created = try await createVersion(world, digest, signature: v2Signature)
            #expect(created.status == 201)
            try await approve(world, version: 2)
            #expect(try await promote(world, "staging", version: 2).status == 200)
            // The key is revoked: the signature no longer verifies against the current policy.
            try await trust([other], requireSignature: true, world, revision: 3)
            let revoked = try await promote(world, "canary", version: 2)
            #expect(revoked.status == 409)
            #expect(revoked.errorCode == "SIGNATURE_INVALID")
            #expect(revoked.json["error"]?["details"]?["version"] == .number(2))
            let stage = try await registry.send(.GET, "/v1/models/demo/stages/canary", token: world.tokens["reader"])
            #expect(stage.status == 404)
            // Re-signing with the new key makes it promotable again.
            let resigned = try await registry.send(
                .PATCH, "/v1/models/demo/versions/2", token: writer(world),
                json: ["signature": .string(try await sign(registry, digest, with: other))],
                headers: [("If-Match", "\"2\"")])
            #expect(resigned.status == 200)
            #expect(try await promote(world, "canary", version: 2).status == 200)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aRolloutIsNotCompletedOnceItsCandidateIsNoLongerTrusted(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            try await trust([trusted], requireSignature: true, world, revision: 2)
            let digest = try await registry.upload(["model.bin": Array("v2".utf8)], token: writer(world))
            #expect(
                try await createVersion(world, digest, signature: try await sign(registry, digest, with: trusted))
                    .status == 201)
            try await approve(world, version: 2)

            // Advanced by hand: the key is revoked at 50 %, so the step to 100 % (which promotes) is refused.
            let manual = try await startRollout(world, ["steps": [50, 100], "autoAdvance": false, "minInstances": 0])
            #expect(manual.status == 201)
            #expect(manual.json["weight"] == .number(50))
            let manualPath = try rolloutPath(manual)
            try await trust([other], requireSignature: true, world, revision: 3)
            let refused = try await registry.send(
                .POST, manualPath + "/advance", token: world.tokens["deployer"],
                headers: [("If-Match", manual.header("ETag") ?? "")])
            #expect(refused.status == 409)
            #expect(refused.errorCode == "SIGNATURE_INVALID")
            let unchanged = try await registry.send(.GET, manualPath, token: world.tokens["reader"])
            #expect(unchanged.json["state"] == "progressing")
            #expect(unchanged.json["weight"] == .number(50))
            #expect(try await stageVersion(world) == 1)
            let aborted = try await registry.send(
                .POST, manualPath + "/abort", token: world.tokens["deployer"],
                headers: [("If-Match", unchanged.header("ETag") ?? "")])
            #expect(aborted.status == 200, "aborting never depends on the trust policy")

            // Advancing on its own: when the bake ends the registry aborts it instead of completing it.
            try await trust([trusted], requireSignature: true, world, revision: 4)
            let automatic = try await startRollout(world, ["steps": [50, 100], "bakeSeconds": 10, "minInstances": 0])
            #expect(automatic.status == 201)
            #expect(automatic.json["weight"] == .number(50))
            let automaticPath = try rolloutPath(automatic)
            try await trust([other], requireSignature: true, world, revision: 5)
            var ended = try await registry.send(.GET, automaticPath, token: world.tokens["reader"])
            let deadline = ContinuousClock.now + .seconds(90)
            while ended.json["state"] == "progressing" && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                ended = try await registry.send(.GET, automaticPath, token: world.tokens["reader"])
            }
            #expect(ended.json["state"] == "aborted")
            if case .string(let reason)? = ended.json["reason"] {
                #expect(reason.contains("not completed") && reason.contains("Version 2"), "\(reason)")
            } else {
                Issue.record("no abort reason: \(ended.text)")
            }
            #expect(try await stageVersion(world) == 1)
            let resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: world.tokens["reader"])
            #expect(resolved.json["candidate"] == .null)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func rollbackToAnUnsignedVersionIsRefusedWhenSignaturesAreRequired(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let digest = try await registry.upload(["model.bin": Array("v2".utf8)], token: writer(world))
            let signature = try await sign(registry, digest, with: trusted)
            #expect(try await createVersion(world, digest, signature: signature).status == 201)
            try await approve(world, version: 2)
            let moved = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"],
                json: ["version": .number(2)], headers: [("If-Match", "\"1\"")])
            #expect(moved.status == 200)
            try await trust([trusted], requireSignature: true, world, revision: 2)
            let rollback = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollback", token: world.tokens["deployer"],
                headers: [("If-Match", "\"2\"")])
            #expect(rollback.status == 409)
            #expect(rollback.errorCode == "SIGNATURE_REQUIRED")
            let stage = try await registry.send(
                .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
            #expect(stage.int("version") == 2)
            // A stale revision is still reported as such.
            let stale = try await registry.send(
                .POST, "/v1/models/demo/stages/production/rollback", token: world.tokens["deployer"],
                headers: [("If-Match", "\"1\"")])
            #expect(stale.status == 412)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func patchingASignatureIsVerifiedNeedsWriteAndIfMatchAndIsAudited(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            try await trust([trusted], requireSignature: false, world, revision: 2)
            let good = try await sign(registry, world.manifest, with: trusted)
            let bad = try await sign(registry, world.manifest, with: other)
            let path = "/v1/models/demo/versions/1"
            let reader = try await registry.send(
                .PATCH, path, token: world.tokens["reader"], json: ["signature": .string(good)],
                headers: [("If-Match", "\"2\"")])
            #expect(reader.status == 403)
            let unconditional = try await registry.send(
                .PATCH, path, token: writer(world), json: ["signature": .string(good)])
            #expect(unconditional.status == 428)
            let wrongKey = try await registry.send(
                .PATCH, path, token: writer(world), json: ["signature": .string(bad)], headers: [("If-Match", "\"2\"")])
            #expect(wrongKey.status == 400)
            #expect(wrongKey.errorCode == "SIGNATURE_INVALID")
            let stale = try await registry.send(
                .PATCH, path, token: writer(world), json: ["signature": .string(good)],
                headers: [("If-Match", "\"1\"")])
            #expect(stale.status == 412)
            let signed = try await registry.send(
                .PATCH, path, token: writer(world), json: ["signature": .string(good)],
                headers: [("If-Match", "\"2\"")])
            #expect(signed.status == 200)
            #expect(signed.json["signature"] == .string(good))
            #expect(signed.int("revision") == 3)
            let read = try await registry.send(.GET, path, token: world.tokens["reader"])
            #expect(read.json["signature"] == .string(good))
            let audit = try await registry.send(.GET, "/v1/audit?model=demo", token: registry.adminToken)
            guard case .array(let entries)? = audit.json["items"] else { throw TestFailure("audit: \(audit.text)") }
            #expect(entries.last?["action"] == "version.update")
            #expect(entries.last?["after"]?["signature"] == .string(good))
        }
    }

    // MARK: Steps

    private func writer(_ world: World) -> String { world.tokens["writer"]! }

    /// Sets the model's trust policy as its owner.
    private func trust(_ keys: [SigningKey], requireSignature: Bool, _ world: World, revision: Int) async throws {
        let response = try await world.registry.send(
            .PATCH, "/v1/models/demo", token: world.tokens["owner"],
            json: [
                "trustPolicy": [
                    "requireSignature": .bool(requireSignature),
                    "trustedKeys": .array(keys.map { .string($0.publicKey.description) }),
                ]
            ],
            headers: [("If-Match", "\"\(revision)\"")])
        guard response.status == 200 else { throw TestFailure("policy: \(response.status) \(response.text)") }
    }

    /// A DSSE envelope over the stored manifest `digest`, signed by `key`.
    private func sign(_ registry: TestRegistry, _ digest: Digest, with key: SigningKey) async throws -> String {
        let response = try await registry.send(.GET, "/v1/manifests/\(digest)", token: registry.adminToken)
        return try ArtifactSigning.sign(manifest: try Manifest.parse(response.body), manifestDigest: digest, with: key)
    }

    private func createVersion(_ world: World, _ digest: Digest, signature: String?) async throws -> TestResponse {
        var body: [String: JSONValue] = ["manifestDigest": .string(digest.description)]
        if let signature { body["signature"] = .string(signature) }
        return try await world.registry.send(
            .POST, "/v1/models/demo/versions", token: writer(world), json: .object(body))
    }

    private func approve(_ world: World, version: Int) async throws {
        let approval = try await world.registry.send(
            .POST, "/v1/models/demo/versions/\(version)/approvals", token: world.tokens["approver"],
            json: ["decision": "approve"], headers: [("If-Match", "\"1\"")])
        guard approval.status == 200 else { throw TestFailure("approval: \(approval.status) \(approval.text)") }
    }

    /// Starts a rollout of version 2 on `production` with `options`.
    private func startRollout(_ world: World, _ options: [String: JSONValue]) async throws -> TestResponse {
        let stage = try await world.registry.send(
            .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
        var body = options
        body["version"] = 2
        return try await world.registry.send(
            .POST, "/v1/models/demo/stages/production/rollouts", token: world.tokens["deployer"], json: .object(body),
            headers: [("If-Match", stage.header("ETag") ?? "")])
    }

    private func rolloutPath(_ started: TestResponse) throws -> String {
        guard case .string(let id)? = started.json["id"] else { throw TestFailure("rollout: \(started.text)") }
        return "/v1/models/demo/stages/production/rollouts/\(id)"
    }

    private func stageVersion(_ world: World) async throws -> Double? {
        let stage = try await world.registry.send(
            .GET, "/v1/models/demo/stages/production", token: world.tokens["reader"])
        if case .number(let version)? = stage.json["version"] { return version }
        return nil
    }

    /// Creates `stage` at `version`.
    private func promote(_ world: World, _ stage: String, version: Int) async throws -> TestResponse {
        try await world.registry.send(
            .PUT, "/v1/models/demo/stages/\(stage)", token: world.tokens["deployer"],
            json: ["version": .number(Double(version))], headers: [("If-None-Match", "*")])
    }
}
