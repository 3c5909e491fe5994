import AsyncHTTPClient
import Foundation
import NIOCore
import RegistryCore
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM or SIGINT to a real `registry serve` while a download and an event long-poll are in flight: the download
/// finishes, the long-poll is answered at once instead of waiting out its minute, the process exits 0 and logs no
/// error.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct GracefulShutdownTests {
    /// The signals that stop a server gracefully.
    enum StopSignal: CaseIterable, Sendable {
        case terminate, interrupt
        var number: Int32 { self == .terminate ? SIGTERM : SIGINT }
    }

    @Test(.timeLimit(.minutes(5)), arguments: StopSignal.allCases)
    func aDownloadInFlightFinishesAndALongPollEndsEarly(signal: StopSignal) async throws {
        let directory = NSTemporaryDirectory() + "registry-signal-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = "signal-admin-\(UUID().uuidString)"
        let server = try await ServeProcess(dataDirectory: directory, adminToken: admin)
        defer { server.kill() }
        let bytes = BlobStoreConformance.pattern(32 << 20, seed: 7)
        let digest = Digest(of: bytes)
        var put = HTTPClientRequest(url: server.baseURL + "/v1/blobs/\(digest)")
        put.method = .PUT
        put.headers.add(name: "Authorization", value: "Bearer \(admin)")
        put.body = .bytes(ByteBuffer(bytes: bytes))
        let stored = try await HTTPClient.shared.execute(put, timeout: .seconds(60))
        #expect(stored.status == .created)

        // A long-poll past the last event: nothing will happen for its whole minute.
        var poll = HTTPClientRequest(url: server.baseURL + "/v1/events?after=1000000&wait=60")
        poll.headers.add(name: "Authorization", value: "Bearer \(admin)")
        let longPoll = Task { () -> (status: UInt, answered: ContinuousClock.Instant) in
            let response = try await HTTPClient.shared.execute(poll, timeout: .seconds(120))
            _ = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, ContinuousClock.now)
        }

        // The long-poll must be waiting in the server before the signal. Under full-suite load its task could start
        // only after the shutdown had begun; its request then met a closing connection and was reset ("Connection
        // reset by peer"), which is HTTP/1.1's keep-alive race and not a lost response.
        try await server.waitForMetric("registry_event_long_polls_open") { $0 == 1 }

        var get = HTTPClientRequest(url: server.baseURL + "/v1/blobs/\(digest)")
        get.headers.add(name: "Authorization", value: "Bearer \(admin)")
        var signalled: ContinuousClock.Instant?
        let response = try await HTTPClient.shared.execute(get, timeout: .seconds(60))
        #expect(response.status == .ok)
        var received: [UInt8] = []
        for try await piece in response.body {
            received += piece.readableBytesView
            if signalled == nil {
                // The first bytes are here and most of the blob is still to come: stop the server now.
                server.send(signal.number)
                signalled = ContinuousClock.now
            }
            // A slow reader, so the server is still writing when the shutdown begins.
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(received.count == bytes.count)
        #expect(Digest(of: received) == digest)
        if signalled == nil { server.send(signal.number) }

        let answered = try await longPoll.value
        #expect(answered.status == 200)
        #expect(
            answered.answered - (signalled ?? .now) < .seconds(45),
            "the long-poll ended with the shutdown instead of waiting out its 60 s")
        let status = await server.waitForExit()
        #expect(status == 0)
        let errors = server.output.split(separator: "\n").filter { $0.contains(" error ") || $0.contains(" critical ") }
        #expect(errors.isEmpty, "a graceful shutdown logged: \(errors)")
    }
}

/// `registry serve` on a free port, to which the test sends signals of its choosing. (`@unchecked`: Process is not
/// Sendable; all access is from the test.)
private final class ServeProcess: RegistryEndpoint, @unchecked Sendable {
    private let process: Process
    private let outputPath: String
    let baseURL: String
    let adminToken: String
    var dataBaseURL: String { baseURL }

    /// Starts the server and returns once it prints the address it listens on.
    init(dataDirectory: String, adminToken: String) async throws {
        let outputPath = dataDirectory + ".log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RegistryProcess.binary(named: "registry"))
        process.arguments = ["serve", "--data-dir", dataDirectory, "--host", "127.0.0.1", "--port", "0"]
        process.environment = ProcessInfo.processInfo.environment.merging(["REGISTRY_ADMIN_TOKEN": adminToken]) { $1 }
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        self.outputPath = outputPath
        let deadline = ContinuousClock.now + .seconds(60)
        var address: String?
        while address == nil, process.isRunning, ContinuousClock.now < deadline {
            address = Self.output(at: outputPath).split(separator: "\n").first { $0.hasPrefix("listening on ") }
                .map { String($0.dropFirst("listening on ".count)) }
            if address == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard let address else {
            if process.isRunning {
                Glibc.kill(process.processIdentifier, SIGKILL)
                _ = await process.exited()
            }
            throw RegistryProcessError("registry serve did not start:\n\(Self.output(at: outputPath))")
        }
        baseURL = address
        self.adminToken = adminToken
    }

    var output: String { Self.output(at: outputPath) }

    private static func output(at path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    func send(_ signal: Int32) { Glibc.kill(process.processIdentifier, signal) }

    func waitForExit() async -> Int32 {
        await process.exited()
    }

    /// Stops the process if a failed test left it running (briefly blocking: only a failed test gets here, and
    /// SIGKILL ends it at once), and removes its log.
    func kill() {
        if process.isRunning {
            send(SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}
