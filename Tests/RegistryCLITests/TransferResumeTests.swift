import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Interrupts real `registry push` and `registry pull` processes with signal 9 and runs them again against a real
/// `registry serve` process, counting on the server what travelled.
@Suite(.serialized, .timeLimit(.minutes(10))) struct TransferResumeTests {
    static let secret = "mr_resume-test-admin-0123456789abcdef"

    /// 1 MiB chunks with no content-defined cuts: the resume tests count chunks, they do not test chunking.
    static let fixedChunks = ContentDefinedChunker.Parameters(
        minimumSize: 1 << 20, averageSize: 1 << 20, maximumSize: 1 << 20)

    @Test func aKilledPullResumesWithoutFetchingAnyFinishedChunkAgain() async throws {
        let binary = try #require(CommandLineTests.registryBinary())
        try await Self.withServer { server, directory in
            let admin = RegistryClient(baseURL: server.baseURL, token: Self.secret)
            _ = try await admin.createModel("big")
            let source = URL(fileURLWithPath: directory + "/source")
            let contents = try Self.writeRandomFiles(["shard-1.bin": 128 << 20, "shard-2.bin": 72 << 20], in: source)
            let files = contents.keys.sorted().map { PushFile(path: $0, url: source.appendingPathComponent($0)) }
            let pushed = try await admin.push(model: "big", files: files, chunking: Self.fixedChunks, concurrency: 4)
            #expect(pushed.chunkCount == 200)

            let target = directory + "/pulled/model"
            // The staging directory's name ends in a random UUID: find it by its prefix.
            let prefix = ".model.partial-\(pushed.manifestDigest.hex.prefix(16))-"
            var journal: String {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/pulled")) ?? []
                return names.first { $0.hasPrefix(prefix) }.map { directory + "/pulled/" + $0 + "/journal" } ?? ""
            }
            let environment = ["REGISTRY_URL": server.baseURL, "REGISTRY_TOKEN": Self.secret]
            let arguments = ["pull", "big:1", target, "--concurrency", "1", "--json"]
            let first = try Self.start(binary, arguments, environment)
            var waited = 0
            while Self.journalEntries(journal) < 40 && first.isRunning && waited < 12_000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(first.isRunning, "the pull was still running when it was killed")
            kill(first.processIdentifier, SIGKILL)
            _ = await first.exited()
            let journaled = Self.journalEntries(journal)
            #expect(journaled >= 40 && journaled < pushed.chunkCount)
            #expect(!FileManager.default.fileExists(atPath: target))
            let fetchedByFirst = try await Self.requests(server, method: "GET", route: "/v1/blobs/{digest}")
            // With one download at a time, at most one chunk was in flight (fetched but not recorded) at the kill.
            #expect(fetchedByFirst >= journaled && fetchedByFirst <= journaled + 1)

            let second = try await CommandLineTests.run(binary, arguments, environment)
            #expect(second.status == 0, "\(second.error)")
            let result = try JSONCoding.decode(PullResult.self, from: Array(second.output.utf8))
            #expect(result.resumedChunks == journaled)
            #expect(result.fetchedChunks == pushed.chunkCount - journaled)
            let fetchedInAll = try await Self.requests(server, method: "GET", route: "/v1/blobs/{digest}")
            #expect(fetchedInAll - fetchedByFirst == result.fetchedChunks)
            for (path, bytes) in contents {
                #expect(FileManager.default.contents(atPath: target + "/" + path) == bytes, "\(path) is byte-exact")
            }
            #expect(try ArtifactTransferTests.leftovers(in: directory + "/pulled").isEmpty)
        }
    }

    @Test func aKilledPushSendsOnlyTheMissingChunksWhenRunAgain() async throws {
        let binary = try #require(CommandLineTests.registryBinary())
        try await Self.withServer { server, directory in
            let admin = RegistryClient(baseURL: server.baseURL, token: Self.secret)
            _ = try await admin.createModel("big")
            let source = URL(fileURLWithPath: directory + "/source")
            let contents = try Self.writeRandomFiles(["weights.bin": 96 << 20], in: source)
            let environment = ["REGISTRY_URL": server.baseURL, "REGISTRY_TOKEN": Self.secret]
            let first = try Self.start(
                binary, ["push", "big", source.path, "--concurrency", "1", "--chunk-size", "1"], environment)
            var stored = 0
            var waited = 0
            while stored < 10 && first.isRunning && waited < 6_000 {
                try await Task.sleep(for: .milliseconds(20))
                stored = try await Self.requests(server, method: "PUT", route: "/v1/blobs/{digest}", status: "201")
                waited += 1
            }
            #expect(first.isRunning, "the push was still running when it was killed")
            kill(first.processIdentifier, SIGKILL)
            _ = await first.exited()
            // An upload whose body was complete when the client died may still be committed: wait until the
            // server's count settles.
            var settled = -1
            while settled != stored {
                settled = stored
                try await Task.sleep(for: .milliseconds(300))
                stored = try await Self.requests(server, method: "PUT", route: "/v1/blobs/{digest}", status: "201")
            }
            #expect(stored >= 10)
            #expect(try await admin.versions(model: "big").items.isEmpty)

            let files = contents.keys.sorted().map { PushFile(path: $0, url: source.appendingPathComponent($0)) }
            let second = try await admin.push(model: "big", files: files)
            #expect(second.uploadedChunks == second.chunkCount - stored)
            #expect(second.uploadedChunks < second.chunkCount)
            let storedInAll = try await Self.requests(server, method: "PUT", route: "/v1/blobs/{digest}", status: "201")
            #expect(storedInAll == stored + second.uploadedChunks, "no chunk was stored twice")
            #expect(second.version.version == 1)
        }
    }

    // MARK: Helpers

    /// Runs `body` against a `registry serve` child process in a fresh directory, then stops it.
    static func withServer(_ body: (RegistryProcess, String) async throws -> Void) async throws {
        try await RegistryProcess.with(adminToken: secret, body)
    }

    /// Writes files of random bytes and returns their contents.
    static func writeRandomFiles(_ sizes: [String: Int], in directory: URL) throws -> [String: Data] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? random.close() }
        var contents: [String: Data] = [:]
        for (name, size) in sizes {
            let data = try #require(try random.read(upToCount: size))
            try data.write(to: directory.appendingPathComponent(name))
            contents[name] = data
        }
        return contents
    }

    static func start(_ binary: URL, _ arguments: [String], _ environment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Complete lines in a pull journal (0 when it does not exist yet).
    static func journalEntries(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.split(separator: UInt8(ascii: "\n")).filter { $0.count == 64 }.count
    }

    /// The server's count of `method route` requests (with `status`, or any), from its Prometheus metrics.
    static func requests(
        _ server: RegistryProcess, method: String, route: String, status: String? = nil
    ) async throws -> Int {
        let client = RegistryClient(baseURL: server.baseURL, token: secret)
        let text = try await client.metricsText()
        var total = 0
        for line in text.split(separator: "\n") where line.hasPrefix("registry_http_requests_total{") {
            guard line.contains("method=\"\(method)\""), line.contains("route=\"\(route)\""),
                status.map({ line.contains("status=\"\($0)\"") }) ?? true,
                let value = line.split(separator: " ").last.flatMap({ Double($0) })
            else { continue }
            total += Int(value)
        }
        return total
    }
}
