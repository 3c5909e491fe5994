import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

/// The command-line side of issue 9, item 6: `serve --public-url/--public-data-url` are checked and advertised, and
/// `pull` by stage follows an artifacts URL on another host only with `--allow-artifact-host`.
@Suite(.timeLimit(.minutes(10))) struct TransportFlagsTests {
    @Test func serveRefusesAMalformedPublicURL() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-flags-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (flag, value) in [
            ("--public-url", "registry.example.com"), ("--public-data-url", "https://x.example/?a=1"),
        ] {
            let outcome = try await CommandLineTests.run(
                binary, ["serve", "--data-dir", directory, "--port", "0", flag, value], [:])
            #expect(outcome.status != 0)
            #expect(outcome.error.contains(flag) && outcome.error.contains("http"), "\(outcome.error)")
        }
    }

    @Test func pullFollowsAnotherHostOnlyWithAllowArtifactHost() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-flags-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = "mr_flags-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: directory + "/data", adminToken: secret,
            arguments: ["--public-data-url", "http://data.registry.invalid:9/"])
        try await server.serving {
            let admin = RegistryClient(baseURL: server.baseURL, token: secret)
            _ = try await admin.createModel("flags")
            try Data("weights".utf8).write(to: URL(fileURLWithPath: directory + "/model.txt"))
            let pushed = try await admin.push(
                model: "flags",
                files: [PushFile(path: "model.txt", url: URL(fileURLWithPath: directory + "/model.txt"))])
            let reviewer = try await admin.createToken(subject: "reviewer", admin: true)
            _ = try await RegistryClient(baseURL: server.baseURL, token: reviewer.token).decide(
                model: "flags", number: 1, decision: .approve, comment: nil, revision: pushed.version.revision)
            _ = try await admin.promote(model: "flags", stage: "production", version: 1, revision: nil)
            let resolved = try #require(try await admin.resolve(model: "flags", stage: "production"))
            #expect(resolved.artifactsURL == "http://data.registry.invalid:9")

            let environment = [
                "REGISTRY_URL": server.baseURL, "REGISTRY_TOKEN": secret, "REGISTRY_ALLOW_ARTIFACT_HOSTS": "",
            ]
            let pull = ["pull", "flags@production", directory + "/pulled"]
            let refused = try await CommandLineTests.run(binary, pull, environment)
            #expect(refused.status != 0)
            #expect(refused.error.contains("UNTRUSTED_ARTIFACT_URL"), "\(refused.error)")
            #expect(refused.error.contains("--allow-artifact-host data.registry.invalid"), "\(refused.error)")
            // Allowed, the pull goes there (and finds no such host): the refusal is lifted, nothing else.
            for (arguments, added) in [
                (pull + ["--allow-artifact-host", "data.registry.invalid"], [:]),
                (pull, ["REGISTRY_ALLOW_ARTIFACT_HOSTS": "other.example, data.registry.invalid"]),
            ] {
                let allowed = try await CommandLineTests.run(binary, arguments, environment.merging(added) { $1 })
                #expect(allowed.status != 0)
                #expect(!allowed.error.contains("UNTRUSTED_ARTIFACT_URL"), "\(allowed.error)")
                #expect(allowed.error.contains("UNAVAILABLE"), "\(allowed.error)")
            }
        }
    }
}
