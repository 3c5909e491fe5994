import Foundation
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Drives the real `registry` binary: a server process and client commands against it.
@Suite struct CommandLineTests {
    @Test func serveCreatePushAndPullThroughTheBinary() async throws {
        let binary = try #require(Self.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-cli-process-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = "mr_cli-test-admin-0123456789abcdef"

        let server = Process()
        server.executableURL = binary
        server.arguments = ["serve", "--data-dir", directory + "/data", "--host", "127.0.0.1", "--port", "0"]
        server.environment = ProcessInfo.processInfo.environment.merging(["REGISTRY_ADMIN_TOKEN": secret]) { $1 }
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning {
                kill(server.processIdentifier, SIGKILL)
                server.waitUntilExit()
            }
        }
        let url = try #require(try await Self.listeningURL(from: output), "the server prints its URL")

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
            binary, ["model", "create", "danas"], ["REGISTRY_URL": url, "REGISTRY_TOKEN": try issued(ordinary.output)])
        #expect(refused.status == 1)
        #expect(refused.error.contains("PERMISSION_DENIED"))
        let allowed = try await Self.run(
            binary, ["model", "create", "erins"], ["REGISTRY_URL": url, "REGISTRY_TOKEN": try issued(creator.output)])
        #expect(allowed.status == 0, "\(allowed.error)")
        let badExpiry = try await Self.run(binary, ["token", "create", "x", "--expires", "soon"], environment)
        #expect(badExpiry.status != 0)
        #expect(badExpiry.error.contains("--expires"))

        let missing = try await Self.run(binary, ["model", "get", "nope"], environment)
        #expect(missing.status == 1)
        #expect(missing.error.hasPrefix("error: MODEL_NOT_FOUND: "))

        let usage = try await Self.run(binary, ["pull", "no-reference-here", target], environment)
        #expect(usage.status == 64 || usage.status == 2, "usage errors exit with ArgumentParser's validation code")

        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
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

    /// Reads the server's stdout until it prints `listening on URL`; nil if it exits first.
    static func listeningURL(from pipe: Pipe) async throws -> String? {
        let handle = pipe.fileHandleForReading
        return await Task.detached {
            var text = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { return nil }
                text += String(decoding: data, as: UTF8.self)
                for line in text.split(separator: "\n") where line.hasPrefix("listening on ") {
                    return String(line.dropFirst("listening on ".count))
                }
            }
        }.value
    }

    typealias Outcome = RegistryCommand.Outcome

    /// Runs the binary to completion with extra environment variables.
    static func run(_ binary: URL, _ arguments: [String], _ environment: [String: String]) async throws -> Outcome {
        try await RegistryCommand.run(binary, arguments, environment)
    }
}
