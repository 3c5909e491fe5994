import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A real `registry serve` interrupted where it hurts: an upload cut mid-chunk by the client or by `kill -9`, a
/// long-poll open at SIGTERM, a second server on the same data directory.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct InterruptionTests {
    /// A chunk of 8 MiB (several segments of the blob format), of which the interrupted upload sends half.
    static let chunk = BlobStoreConformance.pattern(8 << 20, seed: 23)

    @Test func anUploadCutByTheClientMidChunkLeavesNothingAndALaterUploadSucceeds() async throws {
        try await RegistryProcess.with { server, _ in
            let digest = Digest(of: Self.chunk)
            let upload = try await PartialUpload.start(Self.chunk, to: server)
            try await upload.waitUntilPartlyOnDisk(under: server.dataDirectory)
            upload.disconnect()

            // The server drops the half-written upload: its temporary file goes, nothing is committed under the
            // digest, and nothing is served for it.
            try await waitUntil("the interrupted upload's file is removed") {
                PartialUpload.filesInFlight(under: server.dataDirectory).isEmpty
            }
            try await Self.expectNothingVisible(digest, on: server)
            try await Self.expectAFullUploadSucceeds(on: server)
        }
    }

    @Test func anUploadCutByKillNineMidChunkLeavesNothingAfterRestart() async throws {
        let directory = NSTemporaryDirectory() + "registry-kill-upload-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let admin = "mr_kill-upload-admin-\(UUID().uuidString)"
        let digest = Digest(of: Self.chunk)
        let first = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        let upload = try await PartialUpload.start(Self.chunk, to: first)
        try await upload.waitUntilPartlyOnDisk(under: directory)
        await first.kill()
        upload.disconnect()

        let second = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        try await second.serving {
            try await Self.expectNothingVisible(digest, on: second)
            try await Self.expectAFullUploadSucceeds(on: second)
        }
    }

    @Test func aLongPollInFlightEndsPromptlyAtGracefulShutdown() async throws {
        let directory = NSTemporaryDirectory() + "registry-poll-shutdown-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let admin = "mr_poll-shutdown-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        try await server.serving {
            let head = try await server.send(.GET, "/v1/events?limit=1000", token: admin)
            let cursor = try #require(
                head.json["nextCursor"].flatMap { value -> String? in
                    if case .string(let text) = value { return text }
                    return nil
                })
            let poll = Task {
                // The longest wait the server grants (60 s): three times the bound below, so only the shutdown can
                // end this poll in time.
                let response = try await server.send(.GET, "/v1/events?after=\(cursor)&wait=60", token: admin)
                return (response, ContinuousClock.now)
            }
            try await server.waitForMetric("registry_event_long_polls_open") { $0 == 1 }

            let signalled = ContinuousClock.now
            server.signalTerminate()
            let (response, answered) = try await poll.value
            #expect(response.status == 200, "\(response.text)")
            #expect(response.json["items"] == .array([]))
            #expect(response.json["nextCursor"] == .string(cursor))
            #expect(answered - signalled < .seconds(20), "the poll ends with the shutdown, not after its 60 s")
            let status = await server.waitForExit()
            #expect(status == 0)
            #expect(ContinuousClock.now - signalled < .seconds(40), "the open poll did not hold the shutdown up")
        }
    }

    @Test func aSecondServerOnTheSameDataDirectoryIsRefusedAndTheFirstKeepsServing() async throws {
        try await RegistryProcess.with { first, _ in
            do {
                let second = try await RegistryProcess(
                    dataDirectory: first.dataDirectory, adminToken: first.adminToken)
                await second.terminate()
                Issue.record("a second registry serve started on \(first.dataDirectory)")
            } catch let error as RegistryProcessError {
                #expect(error.description.contains("exited before it listened"), "\(error)")
                #expect(
                    error.description.contains(
                        "Another registry process is using the data directory \(first.dataDirectory)"),
                    "the refusal says why: \(error)")
            }
            // The first one never noticed: it answers and still writes.
            #expect(await first.isHealthy())
            let created = try await first.send(
                .POST, "/v1/models", token: first.adminToken, json: ["name": "still-here"])
            #expect(created.status == 201, "\(created.text)")
        }
    }

    // MARK: Helpers

    /// Nothing of `digest` can be read, and no file in the data directory is named after it.
    static func expectNothingVisible(
        _ digest: Digest, on server: RegistryProcess, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let head = try await server.send(.HEAD, "/v1/blobs/\(digest)", token: server.adminToken)
        #expect(head.status == 404, "no blob under the digest", sourceLocation: sourceLocation)
        let get = try await server.send(.GET, "/v1/blobs/\(digest)", token: server.adminToken)
        #expect(get.status == 404, "no partial blob is served", sourceLocation: sourceLocation)
        let check = try await server.send(
            .POST, "/v1/blobs/check", token: server.adminToken, json: ["digests": [.string(digest.description)]])
        #expect(check.json["missing"] == .array([.string(digest.description)]), sourceLocation: sourceLocation)
        let hex = String(digest.description.dropFirst("sha256:".count))
        let named =
            FileManager.default.enumerator(atPath: server.dataDirectory)?
            .compactMap { $0 as? String }.filter { $0.contains(hex) } ?? []
        #expect(named.isEmpty, "files named after the digest: \(named)", sourceLocation: sourceLocation)
    }

    /// The whole chunk uploads afterwards and reads back byte for byte.
    static func expectAFullUploadSucceeds(
        on server: RegistryProcess, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let digest = Digest(of: chunk)
        let put = try await server.send(.PUT, "/v1/blobs/\(digest)", token: server.adminToken, body: chunk)
        #expect(put.status == 201, "\(put.text)", sourceLocation: sourceLocation)
        let get = try await server.send(.GET, "/v1/blobs/\(digest)", token: server.adminToken)
        #expect(get.status == 200, sourceLocation: sourceLocation)
        #expect(get.body == chunk, "the blob reads back byte for byte", sourceLocation: sourceLocation)
    }
}

/// A `PUT /v1/blobs/{digest}` over a plain socket that declares the whole chunk and sends only its first half.
final class PartialUpload: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    static func start(_ bytes: [UInt8], to server: RegistryProcess) async throws -> PartialUpload {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw RegistryProcessError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(server.port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            close(descriptor)
            throw RegistryProcessError("connect() to port \(server.port) failed: errno \(errno)")
        }
        let upload = PartialUpload(descriptor: descriptor)
        let head =
            "PUT /v1/blobs/\(Digest(of: bytes)) HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"
            + "Authorization: Bearer \(server.adminToken)\r\nContent-Type: application/octet-stream\r\n"
            + "Content-Length: \(bytes.count)\r\n\r\n"
        try upload.send(Array(head.utf8))
        try upload.send(Array(bytes.prefix(bytes.count / 2)))
        return upload
    }

    private func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw RegistryProcessError("send() failed: errno \(errno)") }
            sent += written
        }
    }

    /// Waits until the server has written more than a segment of the upload to its upload area: the cut that
    /// follows lands in the middle of a chunk being stored, not before the server started.
    func waitUntilPartlyOnDisk(under dataDirectory: String) async throws {
        try await waitUntil("part of the upload is on disk") {
            Self.filesInFlight(under: dataDirectory).contains { $0.size > 2 << 20 }
        }
    }

    /// Closes the connection with the chunk half sent.
    func disconnect() {
        close(descriptor)
    }

    /// The files of uploads in flight (the blob store's `uploads/` directory) and their sizes.
    static func filesInFlight(under dataDirectory: String) -> [(path: String, size: Int)] {
        let manager = FileManager.default
        let paths = manager.enumerator(atPath: dataDirectory)?.compactMap { $0 as? String } ?? []
        return paths.filter { $0.contains("uploads/") }.compactMap { path in
            let full = dataDirectory + "/" + path
            guard let attributes = try? manager.attributesOfItem(atPath: full),
                attributes[.type] as? FileAttributeType == .typeRegular
            else { return nil }
            return (full, (attributes[.size] as? Int) ?? 0)
        }
    }
}
