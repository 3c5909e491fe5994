import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

/// Signing end to end: the real `registry` binary (`model update`, `push --sign-key`, `sign`, `verify`,
/// `pull --verify-key`) against a real registry over loopback.
@Suite(.timeLimit(.minutes(10))) struct SigningTests {
    /// Key files as `registry keys generate` writes them: `NAME` (private) and `NAME.pub`.
    struct KeyPair {
        let key: SigningKey
        let path: String
        var publicPath: String { path + ".pub" }

        init(_ name: String, in directory: String, algorithm: PublicKey.Algorithm = .ed25519) throws {
            key = SigningKey.generate(algorithm)
            path = directory + "/" + name
            try Data((key.privateText + "\n").utf8).write(to: URL(fileURLWithPath: path))
            try Data((key.publicKey.description + "\n").utf8).write(to: URL(fileURLWithPath: publicPath))
        }
    }

    /// Runs the binary against `fixture` as `token` (the admin by default).
    ///
    /// The process is awaited on a thread of its own: the registry it talks to runs in this test process, and a
    /// blocking wait on the shared concurrency pool could starve the server of the threads it needs to answer.
    private func registry(
        _ fixture: TestRegistry, _ arguments: [String], token: String? = nil
    ) async throws -> CommandLineTests.Outcome {
        let binary = try #require(CommandLineTests.registryBinary(), "the registry executable is built")
        let environment = ProcessInfo.processInfo.environment.merging(
            ["REGISTRY_URL": fixture.baseURL, "REGISTRY_TOKEN": token ?? fixture.adminToken]) { $1 }
        let logs = fixture.directory + "/cli-" + UUID().uuidString
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    let manager = FileManager.default
                    for name in [".out", ".err"] { _ = manager.createFile(atPath: logs + name, contents: nil) }
                    defer { for name in [".out", ".err"] { try? manager.removeItem(atPath: logs + name) } }
                    let process = Process()
                    process.executableURL = binary
                    process.arguments = arguments
                    process.environment = environment
                    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logs + ".out"))
                    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logs + ".err"))
                    try process.run()
                    process.waitUntilExit()
                    continuation.resume(
                        returning: CommandLineTests.Outcome(
                            status: process.terminationStatus,
                            output: try String(contentsOfFile: logs + ".out", encoding: .utf8),
                            error: try String(contentsOfFile: logs + ".err", encoding: .utf8)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    @Test func pushSignedThenVerifyAndPullWithVerificationSucceed() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let trusted = try KeyPair("release", in: fixture.directory)
            let other = try KeyPair("other", in: fixture.directory, algorithm: .p256)
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            #expect(try await registry(fixture, ["model", "create", "signed"]).status == 0)
            let policy = try await registry(
                fixture, ["model", "update", "signed", "--require-signature", "--trusted-key", trusted.publicPath])
            #expect(policy.status == 0, "\(policy.error)")
            #expect(policy.output.contains("signature required: true"))
            #expect(policy.output.contains(trusted.key.publicKey.id))

            let unsigned = try await registry(fixture, ["push", "signed", sample.root.path])
            #expect(unsigned.status == 1)
            #expect(unsigned.error.contains("error: SIGNATURE_REQUIRED: "), "\(unsigned.error)")
            let wrong = try await registry(fixture, ["push", "signed", sample.root.path, "--sign-key", other.path])
            #expect(wrong.status == 1)
            #expect(wrong.error.contains("error: SIGNATURE_INVALID: "), "\(wrong.error)")
            let pushed = try await registry(fixture, ["push", "signed", sample.root.path, "--sign-key", trusted.path])
            #expect(pushed.status == 0, "\(pushed.error)")
            #expect(pushed.output.contains("version 1"))

            let verified = try await registry(fixture, ["verify", "signed:1"])
            #expect(verified.status == 0, "\(verified.error)")
            #expect(verified.output.contains("signed by key \(trusted.key.publicKey.id)"))
            let explicit = try await registry(fixture, ["verify", "signed:1", "--key", trusted.publicPath])
            #expect(explicit.status == 0, "\(explicit.error)")
            let untrusted = try await registry(fixture, ["verify", "signed:1", "--key", other.publicPath])
            #expect(untrusted.status == 1)
            #expect(untrusted.error.contains("error: SIGNATURE_INVALID: "), "\(untrusted.error)")

            let byVersion = URL(fileURLWithPath: fixture.directory + "/pulled/by-version")
            let pulled = try await registry(fixture, ["pull", "signed:1", byVersion.path])
            #expect(pulled.status == 0, "\(pulled.error)")
            #expect(try SampleModel.read(byVersion) == sample.contents)

            // Through a stage: approved by someone else, promoted, then verified and pulled by stage.
            let acl = try await fixture.admin.accessList(model: "signed")
            _ = try await fixture.admin.setAccessList(
                model: "signed", grants: acl.grants + [Grant(subject: "bob", role: .approver)],
                revision: acl.revision)
            let bob = try await fixture.client(for: "bob")
            let version = try await fixture.admin.version(model: "signed", number: 1)
            _ = try await bob.decide(model: "signed", number: 1, decision: .approve, revision: version.revision)
            _ = try await fixture.admin.promote(model: "signed", stage: "production", version: 1, revision: nil)
            let byStage = URL(fileURLWithPath: fixture.directory + "/pulled/by-stage")
            let stageVerified = try await registry(fixture, ["verify", "signed@production"])
            #expect(stageVerified.status == 0, "\(stageVerified.error)")
            let stagePulled = try await registry(
                fixture, ["pull", "signed@production", byStage.path, "--verify-key", trusted.publicPath])
            #expect(stagePulled.status == 0, "\(stagePulled.error)")
            #expect(try SampleModel.read(byStage) == sample.contents)
        }
    }

    @Test func signAttachesASignatureThatTheTrustPolicyAccepts() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let trusted = try KeyPair("release", in: fixture.directory, algorithm: .p256)
            let other = try KeyPair("other", in: fixture.directory)
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            _ = try await fixture.admin.createModel("late")
            let pushed = try await fixture.admin.push(
                model: "late", files: sample.files, chunking: SampleModel.chunking)
            #expect(pushed.version.signature == nil)
            let unsigned = try await registry(fixture, ["verify", "late:1", "--key", trusted.publicPath])
            #expect(unsigned.status == 1)
            #expect(unsigned.error.contains("error: SIGNATURE_REQUIRED: "), "\(unsigned.error)")
            #expect(
                try await registry(fixture, ["model", "update", "late", "--trusted-key", trusted.publicPath]).status
                    == 0)
            let refused = try await registry(fixture, ["sign", "late:1", "--key", other.path])
            #expect(refused.status == 1)
            #expect(refused.error.contains("error: SIGNATURE_INVALID: "), "\(refused.error)")
            let publicAsPrivate = try await registry(fixture, ["sign", "late:1", "--key", trusted.publicPath])
            #expect(publicAsPrivate.status != 0)
            #expect(publicAsPrivate.error.contains("public key"))
            let signed = try await registry(fixture, ["sign", "late:1", "--key", trusted.path])
            #expect(signed.status == 0, "\(signed.error)")
            let stored = try await fixture.admin.version(model: "late", number: 1)
            let signature = try #require(stored.signature)
            try ArtifactSigning.verify(
                envelope: signature, manifest: pushed.manifest, manifestDigest: pushed.manifestDigest,
                trustedKeys: [trusted.key.publicKey])
            #expect(try await registry(fixture, ["verify", "late:1"]).status == 0)
        }
    }

    @Test func aVersionSignedByAnUntrustedKeyFailsPullAndLeavesNothingAtTheDestination() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let trusted = try KeyPair("release", in: fixture.directory)
            let rogue = try KeyPair("rogue", in: fixture.directory)
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            // The model trusts no key yet, so the rogue signature is stored as-is.
            _ = try await fixture.admin.createModel("open")
            let pushed = try await registry(fixture, ["push", "open", sample.root.path, "--sign-key", rogue.path])
            #expect(pushed.status == 0, "\(pushed.error)")
            let parent = try fixture.makeDirectory("pulled")

            let explicit = try await registry(
                fixture, ["pull", "open:1", parent.path + "/explicit", "--verify-key", trusted.publicPath])
            #expect(explicit.status == 1)
            #expect(explicit.error.contains("error: SIGNATURE_INVALID: "), "\(explicit.error)")
            #expect(explicit.error.contains("Version 1"))

            // The policy now requires the release key: a plain pull checks it without being asked.
            let model = try await fixture.admin.model("open")
            _ = try await fixture.admin.updateModel(
                "open", revision: model.revision,
                trustPolicy: TrustPolicy(requireSignature: true, trustedKeys: [trusted.key.publicKey]))
            let required = try await registry(fixture, ["pull", "open:1", parent.path + "/required"])
            #expect(required.status == 1)
            #expect(required.error.contains("error: SIGNATURE_INVALID: "), "\(required.error)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)

            // The library hook refuses the same way and moves nothing.
            let destination = parent.appendingPathComponent("library")
            let verify = fixture.admin.signatureVerifier(
                model: "open", version: 1, trustedKeys: [trusted.key.publicKey])
            let error = await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.pull(model: "open", version: 1, to: destination, verify: verify)
            }
            #expect(error?.code == .signatureInvalid)
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)

            // With the rogue key trusted, the same version verifies and pulls.
            let rogueVerify = fixture.admin.signatureVerifier(
                model: "open", stage: nil, trustedKeys: [rogue.key.publicKey])
            _ = try await fixture.admin.pull(model: "open", version: 1, to: destination, verify: rogueVerify)
            #expect(try SampleModel.read(destination) == sample.contents)
        }
    }

    @Test func anUnsignedVersionFailsAPullThatAsksForASignature() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let trusted = try KeyPair("release", in: fixture.directory)
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            _ = try await fixture.admin.createModel("plain")
            _ = try await fixture.admin.push(model: "plain", files: sample.files, chunking: SampleModel.chunking)
            let parent = try fixture.makeDirectory("pulled")
            let refused = try await registry(
                fixture, ["pull", "plain:1", parent.path + "/out", "--verify-key", trusted.publicPath])
            #expect(refused.status == 1)
            #expect(refused.error.contains("error: SIGNATURE_REQUIRED: "), "\(refused.error)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
            // Without a key and without a policy that requires one, the pull goes ahead.
            let plain = try await registry(fixture, ["pull", "plain:1", parent.path + "/out"])
            #expect(plain.status == 0, "\(plain.error)")
        }
    }
}
