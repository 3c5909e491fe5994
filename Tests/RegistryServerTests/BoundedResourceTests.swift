import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore
import RegistryTesting
import Testing

@testable import RegistryServer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one client, or many idle sockets, can hold of the server: connections, waiting requests, cache memory and
/// audit writes are all bounded.
@Suite(.timeLimit(.minutes(10))) struct BoundedResourceTests {
    @Test func idleSocketsBeyondTheCapDoNotStopTheDataPort() async throws {
        var configuration = ServerConfiguration(port: 0, dataPort: 0, maxDataConnections: 4)
        configuration.idleTimeout = .milliseconds(500)
        try await TestRegistry.with(configuration: configuration) { registry in
            // No world built over HTTP: with a 500 ms idle timeout on the main port too, a pooled client connection
            // that waits longer than that between requests on a loaded machine is closed under it.
            let chunk = Array("weights of the demo model".utf8)
            _ = try await registry.blobs.put(bytes: chunk)
            let dataPort = try #require(registry.server.dataPort)
            // Three times the cap of silent, unauthenticated sockets: before the idle timeout, these held every
            // connection slot of the data port forever and nothing else was ever accepted.
            let idle = try (0..<12).map { _ in try RawSocket(port: dataPort) }
            defer { idle.forEach { $0.close() } }
            let started = ContinuousClock.now
            let download = try await Self.get(
                registry.server.dataBaseURL + "/v1/blobs/\(Digest(of: chunk))", token: registry.adminToken,
                timeout: .seconds(120))
            #expect(download.status == 200)
            #expect(download.body == chunk)
            // The silent sockets were accepted in turn and each closed after the idle timeout.
            #expect(ContinuousClock.now - started >= .milliseconds(500))
            #expect(idle[0].waitForClose(timeout: .seconds(5)))
        }
    }

    @Test func aClientThatStopsReadingItsDownloadDoesNotHoldTheDataPort() async throws {
        var configuration = ServerConfiguration(port: 0, dataPort: 0, maxDataConnections: 1)
        configuration.idleTimeout = .milliseconds(500)
        try await TestRegistry.with(configuration: configuration) { registry in
            let chunk = Array("weights of the demo model".utf8)
            _ = try await registry.blobs.put(bytes: chunk)
            // Far more than the socket buffers of both ends hold, so that the server's writes stall.
            let large = BlobStoreConformance.pattern(16 << 20, seed: 31)
            let digest = Digest(of: large)
            // Stored directly: an upload over HTTP could itself stall past a 500 ms idle timeout on a loaded machine.
            #expect(try await registry.blobs.put(bytes: large) == digest)
            let dataPort = try #require(registry.server.dataPort)
            // It asks for the blob and then never reads: the one data connection stays busy writing.
            let stalled = try RawSocket(port: dataPort, receiveBuffer: 4096)
            defer { stalled.close() }
            try stalled.send(
                "GET /v1/blobs/\(digest) HTTP/1.1\r\nHost: registry\r\nAuthorization: Bearer \(registry.adminToken)\r\n\r\n"
            )
            try await Task.sleep(for: .milliseconds(200))
            let download = try await Self.get(
                registry.server.dataBaseURL + "/v1/blobs/\(Digest(of: chunk))", token: registry.adminToken,
                timeout: .seconds(120))
            #expect(download.status == 200)
            #expect(download.body == chunk)
        }
    }

    @Test func aDownloadThatTakesLongerThanTheIdleTimeoutIsNotCut() async throws {
        var configuration = ServerConfiguration(port: 0, dataPort: 0)
        // Two seconds: a reader starved of CPU for a moment on a loaded machine is still a reader making progress.
        configuration.idleTimeout = .seconds(2)
        try await TestRegistry.with(configuration: configuration) { registry in
            let large = BlobStoreConformance.pattern(16 << 20, seed: 7)
            let digest = Digest(of: large)
            // Stored directly: an upload over HTTP could itself stall past a 500 ms idle timeout on a loaded machine.
            #expect(try await registry.blobs.put(bytes: large) == digest)
            let reader = try RawSocket(port: try #require(registry.server.dataPort), receiveBuffer: 65536)
            defer { reader.close() }
            try reader.send(
                "GET /v1/blobs/\(digest) HTTP/1.1\r\nHost: registry\r\nAuthorization: Bearer \(registry.adminToken)\r\nConnection: close\r\n\r\n"
            )
            // About 3 MB/s with a pause after every read: several seconds, more than twice the idle timeout. The
            // reader has a thread of its own, so that a busy test run cannot starve it of the CPU for seconds (a
            // reader that stops reading for the whole timeout is cut, and rightly so).
            let started = ContinuousClock.now
            let received = await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                Thread {
                    var received = 0
                    while true {
                        let count = reader.receive(upTo: 64 << 10)
                        if count <= 0 { break }
                        received += count
                        usleep(20_000)
                    }
                    done.resume(returning: received)
                }.start()
            }
            #expect(received > large.count)
            #expect(ContinuousClock.now - started > .seconds(4), "the download lasted twice the idle timeout")
        }
    }

    @Test func theIdleTimeoutNeverCutsALongPoll() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.idleTimeout = .seconds(2)
        try await TestRegistry.with(configuration: configuration) { registry in
            // In full runs this poll went unanswered for 90 s: not the idle timeout, but tests making their data with
            // `map` in a debug build, holding both threads of the cooperative pool for 10-30 s at a time (see
            // `BlobStoreConformance.pattern`); a probe measured those stalls, and thread dumps showed who held them.
            let started = ContinuousClock.now
            let poll = try await registry.send(.GET, "/v1/events?after=999999&wait=6", token: registry.adminToken)
            #expect(poll.status == 200)
            #expect(ContinuousClock.now - started >= .seconds(6))
        }
    }

    @Test func theMainPortHasAConnectionCap() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.maxConnections = 3
        try await TestRegistry.with(configuration: configuration) { registry in
            let idle = try (0..<3).map { _ in try RawSocket(port: registry.server.port) }
            defer { idle.forEach { $0.close() } }
            // Let the server accept them first (it accepts a few per wake-up and checks the cap in between).
            try await Task.sleep(for: .seconds(1))
            // The three silent sockets hold every slot (the idle timeout is a minute): a fourth connection waits.
            await #expect(throws: (any Error).self) {
                _ = try await Self.get(registry.server.baseURL + "/healthz", token: nil, timeout: .seconds(1))
            }
            idle[0].close()
            let health = try await Self.get(registry.server.baseURL + "/healthz", token: nil, timeout: .seconds(15))
            #expect(health.status == 200)
        }
    }

    @Test func oneCallerCannotHoldMoreThanItsWatchesAndLongPolls() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.maxWatchesPerCaller = 2
        configuration.maxLongPollsPerCaller = 2
        try await TestRegistry.with(configuration: configuration) { registry in
            let world = try await World.make(registry)
            let reader = world.tokens["reader"]
            let first = try await registry.send(.GET, "/v1/resolve/demo/production", token: reader)
            let etag = try #require(first.header("ETag"))
            // 30 s: long enough that the held ones are still waiting when the refused ones arrive on a loaded machine.
            let watch = "/v1/resolve/demo/production?wait=30"
            let poll = "/v1/events?after=999999&wait=30"
            // Two of each that wait (nothing changes), held in the background.
            let held = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            try await registry.send(.GET, watch, token: reader, headers: [("If-None-Match", etag)])
                                .status
                        }
                        group.addTask { try await registry.send(.GET, poll, token: reader).status }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            try await registry.waitForMetric("registry_resolve_watches_open") { $0 == 2 }
            let refusedWatch = try await registry.send(
                .GET, "/v1/resolve/demo/production?wait=1", token: reader, headers: [("If-None-Match", etag)])
            #expect(refusedWatch.status == 429)
            #expect(refusedWatch.errorCode == "TOO_MANY_REQUESTS")
            #expect(refusedWatch.header("Retry-After") != nil)
            try await registry.waitForMetric("registry_event_long_polls_open") { $0 == 2 }
            let refusedPoll = try await registry.send(.GET, "/v1/events?after=999999&wait=1", token: reader)
            #expect(refusedPoll.status == 429)
            #expect(refusedPoll.errorCode == "TOO_MANY_REQUESTS")
            #expect(refusedPoll.header("Retry-After") != nil)
            // Another caller is not affected, and the same caller may still ask without waiting.
            let otherWatch = try await registry.send(
                .GET, "/v1/resolve/demo/production?wait=1", token: world.tokens["deployer"],
                headers: [("If-None-Match", etag)])
            #expect(otherWatch.status == 304)
            let otherPoll = try await registry.send(
                .GET, "/v1/events?after=999999&wait=1", token: world.tokens["owner"])
            #expect(otherPoll.status == 200)
            let plain = try await registry.send(.GET, "/v1/events?after=999999", token: reader)
            #expect(plain.status == 200)
            #expect(try await held.value.sorted() == [200, 200, 304, 304])
            // The slots come back when the requests end.
            let again = try await registry.send(
                .GET, "/v1/resolve/demo/production?wait=1", token: reader, headers: [("If-None-Match", etag)])
            #expect(again.status == 304)
        }
    }

    @Test func aFloodOfDenialsIsAuditedInFewWrites() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let reader = try #require(world.tokens["reader"])
            let before = try await Self.deniedCount(registry.metadata)
            let client = HTTPClient(
                eventLoopGroupProvider: .singleton,
                configuration: .init(
                    connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)))
            let denials = 500
            let statuses: [UInt]
            do {
                statuses = try await withThrowingTaskGroup(of: [UInt].self) { group in
                    for worker in 0..<32 {
                        group.addTask {
                            var statuses: [UInt] = []
                            for _ in stride(from: worker, to: denials, by: 32) {
                                statuses.append(
                                    try await Self.get(
                                        registry.server.baseURL + "/v1/audit", token: reader, timeout: .seconds(60),
                                        client: client
                                    ).status)
                            }
                            return statuses
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
            #expect(statuses.count == denials)
            #expect(statuses.allSatisfy { $0 == 403 })
            // Every denial is in the audit log by the time it is answered…
            #expect(try await Self.deniedCount(registry.metadata) - before == denials)
            // …and they took far fewer store calls than denials.
            let metrics = try await registry.send(.GET, "/metrics", token: nil).text
            let audited = try #require(
                PrometheusText.value(of: "registry_audit_denials_total", in: metrics).map(Int.init))
            let writes = try #require(
                PrometheusText.value(of: "registry_audit_denial_writes_total", in: metrics).map(Int.init))
            #expect(audited >= denials)
            #expect(writes >= 1)
            #expect(writes <= denials / 5, "\(writes) audit writes for \(denials) denials")
        }
    }

    // MARK: Helpers

    struct Fetched {
        var status: UInt
        var body: [UInt8]
    }

    /// A GET with a deadline, on a client of its own choosing.
    static func get(
        _ url: String, token: String?, timeout: TimeAmount, client: HTTPClient = .shared
    ) async throws -> Fetched {
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await client.execute(request, timeout: timeout)
        var body = try await response.body.collect(upTo: 1 << 20)
        return Fetched(status: response.status.code, body: body.readBytes(length: body.readableBytes) ?? [])
    }

    static func deniedCount(_ metadata: some AuditStore) async throws -> Int {
        var count = 0
        var after: Int64 = 0
        while true {
            let page = try await metadata.auditEntries(AuditQuery(after: after, limit: 1000))
            count += page.items.filter { $0.action == "access.denied" }.count
            guard let last = page.items.last, page.nextPageToken != nil else { return count }
            after = last.sequence
        }
    }

    /// The value of an unlabelled metric in a Prometheus text exposition.
}

/// A TCP connection that never sends a byte, as an attacker's idle socket would.
final class RawSocket: Sendable {
    let descriptor: Int32

    /// A connection to `port` on loopback; `receiveBuffer` shrinks the socket's receive buffer (before the
    /// handshake, so that the advertised window is small too).
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        #if canImport(Glibc)
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw TestFailure("socket() failed: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // On failure deinit closes the descriptor (the object is fully initialised).
        guard connected == 0 else { throw TestFailure("connect() failed: \(errno)") }
    }

    /// Whether the server closes the connection (a read sees its end) within `timeout`.
    func waitForClose(timeout: Duration) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000)
        guard poll(&entry, 1, milliseconds) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) <= 0
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw TestFailure("send() failed: \(errno)") }
    }

    /// Reads what has arrived (blocking until something has, or the end); returns the byte count, 0 at the end.
    func receive(upTo count: Int) -> Int {
        var buffer = [UInt8](repeating: 0, count: count)
        return buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, count, 0) }
    }

    func close() {
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    deinit {
        Self.release(descriptor)
    }

    private static func release(_ descriptor: Int32) {
        #if canImport(Glibc)
            _ = Glibc.close(descriptor)
        #else
            _ = Darwin.close(descriptor)
        #endif
    }
}
