import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A `registry serve` child process on a free loopback port, for tests that need a real process (crash, restart).
public final class RegistryProcess: @unchecked Sendable {  // Process is not Sendable; all access is from the test.
    public let port: Int
    public let dataDirectory: String
    public let adminToken: String
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    private let process: Process
    public let outputPath: String

    /// Starts `registry serve` on `dataDirectory` and returns once `/healthz` answers (or throws after 60 s).
    public init(
        dataDirectory: String, adminToken: String, port: Int? = nil, arguments extra: [String] = [],
        environment added: [String: String] = [:]
    ) async throws {
        self.dataDirectory = dataDirectory
        self.adminToken = adminToken
        self.port = try port ?? Self.freePort()
        let binary = try Self.binary(named: "registry")
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            ["serve", "--data-dir", dataDirectory, "--host", "127.0.0.1", "--port", String(self.port)] + extra
        var environment = ProcessInfo.processInfo.environment.merging(added) { $1 }
        environment["REGISTRY_ADMIN_TOKEN"] = adminToken
        process.environment = environment
        outputPath = dataDirectory + ".log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try await waitUntilHealthy()
    }

    /// Sends signal 9: no graceful shutdown, no flushing.
    public func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends SIGTERM and waits for the process to exit.
    public func terminate() {
        guard process.isRunning else { return }
        signalTerminate()
        _ = waitForExit()
    }

    /// Sends SIGTERM without waiting: the server drains in-flight requests, then exits.
    public func signalTerminate() {
        Glibc.kill(process.processIdentifier, SIGTERM)
    }

    /// Waits for the process to exit and returns its exit status.
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    public var isRunning: Bool { process.isRunning }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw RegistryProcessError("registry serve exited early:\n\(output)")
            }
            if Self.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        terminate()
        throw RegistryProcessError("registry serve did not listen on \(port) within 60 s:\n\(output)")
    }

    /// A port on 127.0.0.1 that nothing listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RegistryProcessError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw RegistryProcessError("bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

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
        throw RegistryProcessError("cannot find the '\(name)' executable near \(CommandLine.arguments[0]); run `swift build` first")
    }
}

public struct RegistryProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
