import AsyncHTTPClient
import Foundation
import NIOCore
import RegistryCore
import RegistryTesting
import Testing

/// SIGTERM to a real `registry serve` while a download is in flight: the download finishes, the process exits 0
/// and logs no error.
@Suite(.serialized)
struct GracefulShutdownTests {
    @Test func aDownloadInFlightFinishesAfterSIGTERM() async throws {
        let directory = NSTemporaryDirectory() + "registry-sigterm-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let admin = "sigterm-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        defer { server.terminate() }
        let bytes = BlobStoreConformance.pattern(32 << 20, seed: 7)
        let digest = Digest(of: bytes)
        var put = HTTPClientRequest(url: server.baseURL + "/v1/blobs/\(digest)")
        put.method = .PUT
        put.headers.add(name: "Authorization", value: "Bearer \(admin)")
        put.body = .bytes(ByteBuffer(bytes: bytes))
        let stored = try await HTTPClient.shared.execute(put, timeout: .seconds(60))
        #expect(stored.status == .created)

        var get = HTTPClientRequest(url: server.baseURL + "/v1/blobs/\(digest)")
        get.headers.add(name: "Authorization", value: "Bearer \(admin)")
        let response = try await HTTPClient.shared.execute(get, timeout: .seconds(60))
        #expect(response.status == .ok)
        var received: [UInt8] = []
        var signalled = false
        for try await piece in response.body {
            received += piece.readableBytesView
            if !signalled {
                // The first bytes are here and most of the blob is still to come: stop the server now.
                server.signalTerminate()
                signalled = true
            }
            // A slow reader, so the server is still writing when the shutdown begins.
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(received.count == bytes.count)
        #expect(Digest(of: received) == digest)
        let status = await Task.detached { server.waitForExit() }.value
        #expect(status == 0)
        let errors = server.output.split(separator: "\n").filter { $0.contains(" error ") || $0.contains(" critical ") }
        #expect(errors.isEmpty, "a graceful shutdown logged: \(errors)")
    }
}
