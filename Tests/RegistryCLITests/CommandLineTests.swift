import Foundation
import RegistryTesting
import Testing

/// Drives the real `registry` binary: a server process and client commands against it.
@Suite(.timeLimit(.minutes(10))) struct CommandLineTests {
    @Test(.timeLimit(.minutes(5)))
    func serveCreatePushAndPullThroughTheBinary() async throws {
        let binary = try #require(Self.registryBinary(), "the registry executable is built next to the tests")
        let secret = "mr_cli-test-admin-0123456789abcdef"
        try await RegistryProcess.with(adminToken: secret) { server, directory in
            let url = server.baseURL
            let environment = ["REGISTRY_URL": url, "REGISTRY_TOKEN": secret]
            let created = try await Self.run(binary, ["model", "create", "demo", "--description", "cli"], environment)
            #expect(created.status == 0)
            #expect(created.output.contains("model demo"))

            let source = URL(fileURLWithPath: directory + "/source")
            try FileManager.default.createDirectory(
                at: source.appendingPathComponent("nested"), withIntermediateDirectories: true)
            let weights = BlobStoreConformance.pattern(1_500_000, seed: 5)
            try Data(weights).write(to: source.appendingPathComponent("weights.bin"))
            try Data("hello".utf8).write(to: source.appendingPathComponent("nested/readme.txt"))
            let pushed = try await Self.run(
                binary, ["push", "demo", source.path, "--chunk-size", "1", "--tag", "run=7"], environment)
            #expect(pushed.status == 0, "\(pushed.error)")
            #expect(pushed.output.contains("version 1"))

            let target = directory + "/pulled"
            let pulled = try await Self.run(binary, ["pull", "demo:1", target], environment)
            #expect(pulled.status == 0, "\(pulled.error)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: target + "/weights.bin")) == Data(weights))
            #expect(try String(contentsOfFile: target + "/nested/readme.txt", encoding: .utf8) == "hello")

            // Creating models is a global permission a token is issued with.
            let ordinary = try await Self.run(binary, ["token", "create", "dana", "--json"], environment)
            let creator = try await Self.run(
                binary, ["token", "create", "erin", "--can-create-models", "--expires", "1h", "--json"], environment)
            #expect(ordinary.status == 0 && creator.status == 0, "\(ordinary.error) \(creator.error)")
            func issued(_ output: String) throws -> String {
                let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
                return try #require(object?["token"] as? String)
            }
            let refused = try await Self.run(
                binary, ["model", "create", "danas"],
                ["REGISTRY_URL": url, "REGISTRY_TOKEN": try issued(ordinary.output)])
            #expect(refused.status == 1)
            #expect(refused.error.contains("PERMISSION_DENIED"))
            let allowed = try await Self.run(
                binary, ["model", "create", "erins"],
                ["REGISTRY_URL": url, "REGISTRY_TOKEN": try issued(creator.output)])
            #expect(allowed.status == 0, "\(allowed.error)")
            let badExpiry = try await Self.run(binary, ["token", "create", "x", "--expires", "soon"], environment)
            #expect(badExpiry.status != 0)
            #expect(badExpiry.error.contains("--expires"))

            let missing = try await Self.run(binary, ["model", "get", "nope"], environment)
            #expect(missing.status == 1)
            #expect(missing.error.hasPrefix("error: MODEL_NOT_FOUND: "))

            let usage = try await Self.run(binary, ["pull", "no-reference-here", target], environment)
            #expect(usage.status == 64 || usage.status == 2, "usage errors exit with ArgumentParser's validation code")

            server.signalTerminate()
            #expect(await server.waitForExit() == 0)
        }
    }

    /// The `registry` executable beside the test bundle (`.build/<triple>/debug/registry`).
    static func registryBinary() -> URL? {
        let starts = [CommandLine.arguments.first, Bundle.main.executablePath, Bundle.main.bundlePath].compactMap { $0 }
        for start in starts {
            var directory = URL(fileURLWithPath: start).deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = directory.appendingPathComponent("registry")
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory),
                    !isDirectory.boolValue, FileManager.default.isExecutableFile(atPath: candidate.path)
                {
                    return candidate
                }
                directory.deleteLastPathComponent()
            }
        }
        return nil
    }

    typealias Outcome = RegistryCommand.Outcome

    /// Runs the binary to completion with extra environment variables.
    static func run(_ binary: URL, _ arguments: [String], _ environment: [String: String]) async throws -> Outcome {
        try await RegistryCommand.run(binary, arguments, environment)
    }
}
