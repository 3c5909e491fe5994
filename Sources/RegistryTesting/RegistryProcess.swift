import AsyncHTTPClient
import Foundation
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// A `registry serve` child process, for tests where the process is the point (crash, restart, signals, the CLI
/// against a server, TLS from the command line).
///
/// The server binds port 0 (and `--data-port 0` when asked) and the ports come from the lines it prints
/// (`listening on URL`, `data plane on URL`), so no test ever guesses a free port; it is ready once `/healthz`
/// answers. A restart on the same data directory is a new `RegistryProcess` and reads its own, possibly new, port.
// Process is not Sendable; all access is from the test.
public final class RegistryProcess: RegistryEndpoint, @unchecked Sendable {
    public let port: Int
    /// The bound data-plane port, nil without `--data-port`.
    public let dataPort: Int?
    public let dataDirectory: String
    public let adminToken: String
    public let baseURL: String
    public let dataBaseURL: String
    private let process: Process
    /// Where the process's standard output and error go; appended to by every process on the same data directory.
    public let outputPath: String

    /// Starts `registry serve` on `dataDirectory` and returns once it reports its port and `/healthz` answers (or
    /// throws after 60 s).
    ///
    /// The server always picks its port: a test whose client cannot be told a new address after a restart puts a
    /// `TCPRelay` in front of it.
    public init(
        dataDirectory: String, adminToken: String, arguments extra: [String] = [],
        environment added: [String: String] = [:], removingEnvironment removed: [String] = []
    ) async throws {
        self.dataDirectory = dataDirectory
        self.adminToken = adminToken
        let binary = try Self.binary(named: "registry")
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            ["serve", "--data-dir", dataDirectory, "--host", "127.0.0.1", "--port", "0"] + extra
        var environment = ProcessInfo.processInfo.environment.merging(added) { $1 }
        for name in removed { environment.removeValue(forKey: name) }
        environment["REGISTRY_ADMIN_TOKEN"] = adminToken
        process.environment = environment
        outputPath = dataDirectory + ".log"
        if !FileManager.default.fileExists(atPath: outputPath) {
            _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        // Earlier runs on this directory wrote their own ports above this point: read only what this one prints.
        let start = log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        let wantsDataPort = extra.contains("--data-port")
        do {
            let urls = try await Self.reportedURLs(
                of: process, in: outputPath, from: start, dataPlane: wantsDataPort)
            baseURL = urls.main
            dataBaseURL = urls.data ?? urls.main
            self.port = try Self.port(of: urls.main)
            dataPort = try urls.data.map(Self.port(of:))
            try await waitUntilHealthy()
        } catch {
            if process.isRunning {
                Glibc.kill(process.processIdentifier, SIGKILL)
                _ = await process.exited()
            }
            throw error
        }
    }

    /// Runs `body` against a server on a fresh temporary data directory, then stops it and removes the directory.
    public static func with<T>(
        adminToken: String = "mr_test-admin-" + UUID().uuidString, arguments: [String] = [],
        environment: [String: String] = [:], removingEnvironment removed: [String] = [],
        _ body: (RegistryProcess, _ directory: String) async throws -> T
    ) async throws -> T {
        let directory = NSTemporaryDirectory() + "registry-process-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await RegistryProcess(
            dataDirectory: directory + "/data", adminToken: adminToken, arguments: arguments,
            environment: environment, removingEnvironment: removed)
        defer { try? FileManager.default.removeItem(atPath: server.outputPath) }
        return try await server.serving { try await body(server, directory) }
    }

    /// Runs `body`, then stops the server with SIGTERM and waits for it, also when `body` throws (a `defer` cannot
    /// wait without blocking a thread of the cooperative pool).
    public func serving<T>(_ body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            await terminate()
            throw error
        }
        await terminate()
        return result
    }

    /// Sends signal 9 and waits for the process to end: no graceful shutdown, no flushing.
    public func kill() async {
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = await process.exited()
    }

    /// Sends SIGTERM and waits for the process to exit.
    public func terminate() async {
        guard process.isRunning else { return }
        signalTerminate()
        _ = await waitForExit()
    }

    /// Sends SIGTERM without waiting: the server drains in-flight requests, then exits.
    public func signalTerminate() {
        Glibc.kill(process.processIdentifier, SIGTERM)
    }

    /// Waits for the process to exit and returns its exit status.
    public func waitForExit() async -> Int32 {
        await process.exited()
    }

    public var isRunning: Bool { process.isRunning }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Whether `/healthz` answers 200 now. Certificates are not checked: this asks whether the server is up, the
    /// TLS tests check trust themselves.
    public func isHealthy() async -> Bool {
        var request = HTTPClientRequest(url: baseURL + "/healthz")
        request.method = .GET
        guard let response = try? await Self.probe.execute(request, timeout: .seconds(30)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw RegistryProcessError("registry serve exited early:\n\(output)")
            }
            if await isHealthy() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RegistryProcessError("registry serve at \(baseURL) did not answer /healthz within 60 s:\n\(output)")
    }

    /// The URLs in the `listening on URL` (and, with `dataPlane`, `data plane on URL`) lines the process writes
    /// after `offset` of `path`, waiting up to 60 s for them.
    private static func reportedURLs(
        of process: Process, in path: String, from offset: UInt64, dataPlane: Bool
    ) async throws -> (main: String, data: String?) {
        let deadline = ContinuousClock.now + .seconds(60)
        var text = ""
        while ContinuousClock.now < deadline {
            text = newOutput(of: path, from: offset)
            let main = url(after: "listening on ", in: text)
            let data = url(after: "data plane on ", in: text)
            if let main, !dataPlane || data != nil { return (main, data) }
            guard process.isRunning else {
                throw RegistryProcessError("registry serve exited before it listened:\n\(text)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RegistryProcessError("registry serve did not report its port within 60 s:\n\(text)")
    }

    private static func newOutput(of path: String, from offset: UInt64) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    /// The URL that ends a complete line starting with `prefix`.
    private static func url(after prefix: String, in text: String) -> String? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()  // the last may be partial
        return lines.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    private static func port(of url: String) throws -> Int {
        guard let port = URLComponents(string: url)?.port else {
            throw RegistryProcessError("registry serve reported \(url), which has no port")
        }
        return port
    }

    /// The client of readiness probes: it accepts any certificate, see `isHealthy`.
    private static let probe = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(certificateVerification: .none))

    /// Whether something accepts TCP connections on `port` of 127.0.0.1 (for helpers that must hand a third-party
    /// server its ports, like SeaweedFS; the registry itself always binds port 0).
    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// The path of an executable product built beside the running test bundle (`.build/<config>/NAME`).
    public static func binary(named name: String) throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/" + name
        if FileManager.default.isExecutableFile(atPath: fallback) { return fallback }
        throw RegistryProcessError(
            "cannot find the '\(name)' executable near \(CommandLine.arguments[0]); run `swift build` first")
    }
}

public struct RegistryProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
