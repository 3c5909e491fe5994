import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

import struct Crypto.SHA256

/// Measures the data plane end to end with the real binaries: `registry serve --data-port` in one process,
/// `registry push` / `registry pull` in others (under `/usr/bin/time -v` for their peak RSS), and a metadata reader
/// in this process hitting the main port while a pull runs at full speed.
@main
struct TransferBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-benchmark", abstract: "Data-plane throughput, dedup, RSS and metadata latency.")

    @Option(help: "Model sizes in GiB, comma separated.") var sizes = "1,5"
    @Option(help: "Working directory (needs about 3.5× the largest size free); a temporary one by default.")
    var workDir: String?
    @Option(help: "The registry executable (default: next to this one).") var registry: String?
    @Option(help: "Transfer concurrency passed to push and pull.") var concurrency = 8
    @Option(
        parsing: .unconditionalSingleValue,
        help: "One more argument for `registry serve` (repeat it), e.g. --serve-arg --s3-bucket --serve-arg models.")
    var serveArg: [String] = []

    func run() async throws {
        let binary =
            registry
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("registry").path
        let directory = workDir ?? NSTemporaryDirectory() + "transfer-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gigabytes = sizes.split(separator: ",").compactMap { Int($0) }

        let server = try await ServerProcess(binary: binary, dataDirectory: directory + "/data", extra: serveArg)
        defer { server.stop() }
        let bench = Bench(
            binary: binary, directory: directory, server: server, concurrency: concurrency,
            admin: RegistryClient(baseURL: server.baseURL, token: ServerProcess.adminToken))
        print(Machine.describe())
        print(try Calibration.run(directory: directory))
        print(
            "registry serve --data-port \(serveArg.joined(separator: " ")): main \(server.baseURL), data \(server.dataURL)\n"
        )
        print("| measurement | size | seconds | GB/s | peak RSS MiB | notes |")
        print("|---|---:|---:|---:|---:|---|")
        for size in gigabytes {
            try await bench.measure(gibibytes: size)
        }
        try await bench.dedup()
    }
}

/// The machine's own limits, measured in the same run as the transfers so that their ratios mean something on a
/// shared, noisy machine: SHA-256 on one core (every pulled byte is hashed twice, every pushed byte three times),
/// and writing 1 GiB into the page cache, first into memory the kernel has not used lately, then again into the
/// pages just freed (on a VM that hands free memory back to its host, the first costs far more).
enum Calibration {
    static func run(directory: String) throws -> String {
        let block = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
        var start = ContinuousClock.now
        var hasher = SHA256()
        for _ in 0..<1024 { block.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
        let sink = hasher.finalize().withUnsafeBytes { $0[0] }
        let sha = Double(1 << 30) / (ContinuousClock.now - start).seconds / 1e9
        let path = directory + "/calibration.bin"
        /// Writes 1 GiB into a new file at `path`, then deletes it; returns GB/s.
        func write() throws -> Double {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw ValidationError("cannot create \(path)") }
            defer {
                try? handle.close()
                try? FileManager.default.removeItem(atPath: path)
            }
            let data = Data(block)
            start = ContinuousClock.now
            for _ in 0..<1024 { try handle.write(contentsOf: data) }
            return Double(1 << 30) / (ContinuousClock.now - start).seconds / 1e9
        }
        sync()
        let fresh = try write()
        let recycled = try write()
        sync()
        return String(
            format: "calibration: SHA-256 %.2f GB/s on one core (%d); 1 GiB written into the page cache %.2f GB/s, "
                + "again into the pages just freed %.2f GB/s", sha, Int(sink) & 1, fresh, recycled)
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}

/// One benchmark session against a running server.
struct Bench {
    let binary: String
    let directory: String
    let server: ServerProcess
    let concurrency: Int
    let admin: RegistryClient

    /// A model of `gibibytes` GiB as 8 MiB "tensors" of random bytes in 1 GiB shards.
    func measure(gibibytes: Int) async throws {
        let name = "bench-\(gibibytes)g"
        let source = directory + "/\(name)-source"
        let tensors = gibibytes * 128
        try Checkpoint.write(to: source, tensors: tensors, changed: [])
        let bytes = Double(tensors) * Double(Checkpoint.tensorSize)
        _ = try await admin.createModel(name)

        let push = try Timed.run(binary, ["push", name, source, "--concurrency", "\(concurrency)"], server)
        row("push", gibibytes, push, bytes, notes: push.lastLine)
        try await publish(name, version: 1)

        let target = directory + "/\(name)-pulled"
        let pull = try Timed.run(
            binary, ["pull", "\(name)@production", target, "--concurrency", "\(concurrency)"], server)
        row("pull (page cache)", gibibytes, pull, bytes, notes: "verified chunk + file digests")
        try FileManager.default.removeItem(atPath: target)

        let durable = try Timed.run(
            binary, ["pull", "\(name)@production", target, "--concurrency", "\(concurrency)", "--durable"], server)
        row("pull --durable (fsync)", gibibytes, durable, bytes, notes: "")
        try FileManager.default.removeItem(atPath: target)

        // Metadata reads on the main port while the data port streams the model at full speed.
        let reader = Task { try await MetadataReader.run(admin, model: name) }
        let loaded = try Timed.run(
            binary, ["pull", "\(name)@production", target, "--concurrency", "\(concurrency)"], server)
        reader.cancel()
        let latencies = try await reader.value
        row(
            "pull during metadata reads", gibibytes, loaded, bytes,
            notes: String(
                format: "metadata GET p50 %.2f ms, p95 %.2f ms, p99 %.2f ms (%d reads)", latencies.percentile(0.5),
                latencies.percentile(0.95), latencies.percentile(0.99), latencies.count))
        try FileManager.default.removeItem(atPath: target)
        try FileManager.default.removeItem(atPath: source)
    }

    /// A second 1 GiB version in which 10 % of the tensors changed: how much of it travels.
    func dedup() async throws {
        let name = "bench-dedup"
        let source = directory + "/\(name)-source"
        _ = try await admin.createModel(name)
        try Checkpoint.write(to: source, tensors: 128, changed: [])
        _ = try Timed.run(binary, ["push", name, source, "--concurrency", "\(concurrency)"], server)
        let changed = Set((0..<128).filter { $0 % 10 == 3 })
        try Checkpoint.write(to: source, tensors: 128, changed: changed)
        let second = try Timed.run(binary, ["push", name, source, "--concurrency", "\(concurrency)"], server)
        let bytes = Double(128 * Checkpoint.tensorSize)
        row(
            "push of a fine-tune (\(changed.count) of 128 tensors changed)", 1, second, bytes,
            notes: second.lastLine)
        try FileManager.default.removeItem(atPath: source)
    }

    /// Approves version `version` as a second subject and points `production` at it.
    func publish(_ model: String, version: Int) async throws {
        let reviewer = try await admin.createToken(subject: "reviewer-\(model)")
        let acl = try await admin.accessList(model: model)
        _ = try await admin.setAccessList(
            model: model, grants: acl.grants + [Grant(subject: "reviewer-\(model)", role: .approver)],
            revision: acl.revision)
        let created = try await admin.version(model: model, number: version)
        _ = try await RegistryClient(baseURL: admin.baseURL, token: reviewer.token).decide(
            model: model, number: version, decision: .approve, comment: nil, revision: created.revision)
        _ = try await admin.promote(model: model, stage: "production", version: version, revision: nil)
    }

    func row(_ what: String, _ gibibytes: Int, _ run: Timed, _ bytes: Double, notes: String) {
        print(
            "| \(what) | \(gibibytes) GiB | "
                + String(
                    format: "%.2f | %.2f | %.0f | ", run.seconds, bytes / run.seconds / 1e9, run.peakRSSMebibytes)
                + notes + " |")
    }
}

/// Model files: `tensors` tensors of 8 MiB of pseudo-random bytes, 128 per 1 GiB shard; tensors in `changed` get
/// other bytes (a fine-tune that keeps the layout).
enum Checkpoint {
    static let tensorSize = 8 << 20

    static func write(to directory: String, tensors: Int, changed: Set<Int>) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(#"{"architecture": "bench", "dtype": "bf16"}"#.utf8).write(
            to: URL(fileURLWithPath: directory + "/config.json"))
        var words = [UInt64](repeating: 0, count: tensorSize / 8)
        var handle: FileHandle?
        for index in 0..<tensors {
            if index % 128 == 0 {
                try handle?.close()
                let path = directory + "/model-\(String(format: "%05d", index / 128 + 1)).safetensors"
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            }
            var state = UInt64(index + 1) &* 0x9e37_79b9_7f4a_7c15 &+ (changed.contains(index) ? 0xfeed : 0)
            for position in words.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                words[position] = state
            }
            try words.withUnsafeBytes { try handle?.write(contentsOf: $0) }
        }
        try handle?.close()
    }
}

/// Sequential metadata reads (`GET /v1/models/{model}/versions/1`) until cancelled.
enum MetadataReader {
    static func run(_ client: RegistryClient, model: String) async throws -> Latencies {
        var latencies = Latencies()
        while !Task.isCancelled {
            let start = ContinuousClock.now
            do {
                _ = try await client.version(model: model, number: 1)
            } catch {
                // Cancelled mid-request when the pull ends: that read is not a sample, and not a failure.
                if Task.isCancelled { break }
                throw error
            }
            latencies.add(ContinuousClock.now - start)
            try? await Task.sleep(for: .milliseconds(5))
        }
        return latencies
    }
}

struct Latencies {
    private var milliseconds: [Double] = []

    var count: Int { milliseconds.count }

    mutating func add(_ duration: Duration) {
        milliseconds.append(duration.seconds * 1000)
    }

    func percentile(_ fraction: Double) -> Double {
        guard !milliseconds.isEmpty else { return .nan }
        let sorted = milliseconds.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
    }
}

/// A child process run to completion under `/usr/bin/time -v`.
struct Timed {
    var seconds: Double
    var peakRSSMebibytes: Double
    var output: String

    /// The `uploaded … chunks, … bytes` part of push's output, or its last line.
    var lastLine: String {
        let lines = output.split(separator: "\n").filter { !$0.isEmpty }
        let line = lines.first { $0.contains("uploaded") }.flatMap { $0.split(separator: ";").last } ?? lines.last
        return line.map(String.init)?.replacingOccurrences(of: "|", with: "/") ?? ""
    }

    static func run(_ binary: String, _ arguments: [String], _ server: ServerProcess) throws -> Timed {
        // Each step starts with no dirty pages left from the one before (a push leaves a gigabyte or more to be
        // written back), so the kernel's writeback does not run on the cores this step is measured on.
        sync()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/time")
        process.arguments = ["-v", binary] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REGISTRY_URL"] = server.baseURL
        environment["REGISTRY_TOKEN"] = ServerProcess.adminToken
        process.environment = environment
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let start = ContinuousClock.now
        try process.run()
        let errors = error.fileHandleForReading.readDataToEndOfFile()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        let text = String(decoding: errors, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ValidationError("\(arguments.joined(separator: " ")) failed:\n\(text)")
        }
        let rss =
            text.split(separator: "\n").first { $0.contains("Maximum resident set size") }?
            .split(separator: ":").last.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } ?? .nan
        return Timed(
            seconds: elapsed.seconds, peakRSSMebibytes: rss / 1024,
            output: String(decoding: out, as: UTF8.self))
    }
}

/// `registry serve --data-port` as a child process.
final class ServerProcess: @unchecked Sendable {  // Process is not Sendable; used from the benchmark's task only.
    static let adminToken = "mr_transfer-bench-admin-0123456789abcdef"
    let baseURL: String
    let dataURL: String
    private let process: Process

    init(binary: String, dataDirectory: String, extra: [String]) async throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "serve", "--data-dir", dataDirectory, "--host", "127.0.0.1", "--port", "0", "--data-port", "0",
                "--log-level", "error",
            ] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["REGISTRY_ADMIN_TOKEN"] = Self.adminToken
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var text = ""
        var main: String?
        var data: String?
        while main == nil || data == nil {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw ValidationError("registry serve exited:\n\(text)") }
            text += String(decoding: chunk, as: UTF8.self)
            for line in text.split(separator: "\n") {
                if line.hasPrefix("listening on ") { main = String(line.dropFirst("listening on ".count)) }
                if line.hasPrefix("data plane on ") { data = String(line.dropFirst("data plane on ".count)) }
            }
        }
        baseURL = main!
        dataURL = data!
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

enum Machine {
    static func describe() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), "
            + "\(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    }
}
