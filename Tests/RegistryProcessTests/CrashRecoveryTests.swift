import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

/// `kill -9` of a real `registry serve` during a stream of writes, then a restart on the same data directory.
@Suite(.serialized)
struct CrashRecoveryTests {
    @Test func everyAcknowledgedWriteSurvivesKillNineAndNumberingContinues() async throws {
        let directory = NSTemporaryDirectory() + "registry-crash-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let admin = "crash-admin-\(UUID().uuidString)"
        let first = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        let http = TestHTTP(baseURL: first.baseURL, token: admin)

        try await http.expect(201, .POST, "/v1/models", json: ["name": "crashy"])
        let chunk = Array("weights that survive a crash".utf8)
        let chunkDigest = Digest(of: chunk).description
        try await http.expect([200, 201], .PUT, "/v1/blobs/\(chunkDigest)", bytes: chunk)
        let manifest: [String: Any] = [
            "schemaVersion": 1,
            "files": [
                [
                    "path": "model.bin", "size": chunk.count, "digest": chunkDigest,
                    "chunks": [["digest": chunkDigest, "size": chunk.count]],
                ]
            ],
        ]
        let manifestDigest = try await http.expect([201], .PUT, "/v1/manifests", json: manifest).json()["digest"]
            as? String
        let digest = try #require(manifestDigest)

        // Eight writers create versions until the process dies under them.
        let acknowledged = Acknowledged()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    while true {
                        guard
                            let response = try? await http.send(
                                .POST, "/v1/models/crashy/versions", json: ["manifestDigest": digest])
                        else { return }  // the connection died with the process
                        guard response.status == 201 else { return }
                        if let number = try response.json()["version"] as? Int {
                            acknowledged.withLock { $0.append(number) }
                        }
                    }
                }
            }
            group.addTask {
                while acknowledged.withLock({ $0.count }) < 150 {
                    try await Task.sleep(for: .milliseconds(5))
                }
                first.kill()
            }
            try await group.waitForAll()
        }
        try await http.shutdown()
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= 150)
        #expect(Set(acked).count == acked.count, "no number was handed out twice")

        let second = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        defer { second.terminate() }
        let again = TestHTTP(baseURL: second.baseURL, token: admin)
        defer { Task { try? await again.shutdown() } }

        // Every acknowledged version is there, and the numbers run 1…n without gaps or duplicates.
        var numbers: [Int] = []
        var pageToken: String? = nil
        repeat {
            let query = pageToken.map { "&pageToken=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""
            let page = try await again.expect(200, .GET, "/v1/models/crashy/versions?limit=1000\(query)").json()
            let items = page["items"] as? [[String: Any]] ?? []
            numbers += items.compactMap { $0["version"] as? Int }
            pageToken = page["nextPageToken"] as? String
        } while pageToken != nil
        #expect(Set(acked).isSubset(of: Set(numbers)), "acknowledged versions missing after restart")
        #expect(numbers.sorted() == Array(1...numbers.count), "version numbers have gaps or duplicates")

        // The audit chain still verifies and holds one entry per version.
        let verify = try await again.expect(200, .GET, "/v1/audit/verify").json()
        #expect(verify["ok"] as? Bool == true, "audit chain broken after crash: \(verify)")

        // Events: exactly one version.created per version that exists.
        var created = 0
        var cursor = "0"
        while true {
            let page = try await again.expect(200, .GET, "/v1/events?after=\(cursor)&limit=1000").json()
            let items = page["items"] as? [[String: Any]] ?? []
            if items.isEmpty { break }
            created += items.filter { $0["type"] as? String == "version.created" }.count
            cursor = page["nextCursor"] as? String ?? cursor
        }
        #expect(created == numbers.count)

        // Numbering continues after the highest surviving version.
        let next = try await again.expect(201, .POST, "/v1/models/crashy/versions", json: ["manifestDigest": digest])
            .json()["version"] as? Int
        #expect(next == numbers.count + 1)
    }
}

/// Version numbers the server acknowledged, shared by the writer tasks.
final class Acknowledged: Sendable {
    private let numbers = Mutex<[Int]>([])

    func withLock<T>(_ body: (inout [Int]) -> T) -> T { numbers.withLock { body(&$0) } }
}

/// A thin JSON client over AsyncHTTPClient for process-level tests.
struct TestHTTP: Sendable {
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let baseURL: String
    let token: String

    struct Response: Sendable {
        var status: Int
        var body: ByteBuffer

        func json() throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        }
    }

    func send(_ method: HTTPMethod, _ path: String, json: Any? = nil, bytes: [UInt8]? = nil) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        } else if let bytes {
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        return Response(status: Int(response.status.code), body: try await response.body.collect(upTo: 16 << 20))
    }

    @discardableResult
    func expect(_ status: Int, _ method: HTTPMethod, _ path: String, json: Any? = nil, bytes: [UInt8]? = nil)
        async throws -> Response
    {
        try await expect([status], method, path, json: json, bytes: bytes)
    }

    @discardableResult
    func expect(_ statuses: Set<Int>, _ method: HTTPMethod, _ path: String, json: Any? = nil, bytes: [UInt8]? = nil)
        async throws -> Response
    {
        let response = try await send(method, path, json: json, bytes: bytes)
        guard statuses.contains(response.status) else {
            throw RegistryProcessError(
                "\(method) \(path) answered \(response.status): \(String(buffer: response.body).prefix(400))")
        }
        return response
    }

    func shutdown() async throws { try await client.shutdown() }
}
