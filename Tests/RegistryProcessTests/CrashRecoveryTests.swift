import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

/// `kill -9` of a real `registry serve` during a stream of writes, then a restart on the same data directory.
@Suite(.serialized, .timeLimit(.minutes(8)))
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
        let manifestDigest =
            try await http.expect([201], .PUT, "/v1/manifests", json: manifest).json()["digest"]
            as? String
        let digest = try #require(manifestDigest)

        // Eight writers create versions until the process dies under them; each says why it stopped.
        let writers = WriterLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let stop = await Self.createVersions(http, digest: digest, into: writers)
                    writers.stopped("writer \(index): \(stop)")
                }
            }
            group.addTask {
                // Until enough writes were acknowledged, or every writer stopped without the kill (then there is
                // nothing to wait for), or a deadline on a machine that makes no progress.
                let deadline = ContinuousClock.now + .seconds(180)
                while writers.acknowledgedCount < 150, writers.running(of: 8), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                writers.killing()
                await first.kill()
            }
            try await group.waitForAll()
        }
        try await http.shutdown()
        let acked = writers.acknowledged
        #expect(
            writers.stoppedBeforeTheKill.isEmpty, "writers stopped before the kill: \(writers.stoppedBeforeTheKill)")
        #expect(acked.count >= 150, "\(acked.count) acknowledged; writers stopped: \(writers.stops)")
        #expect(Set(acked).count == acked.count, "no number was handed out twice")

        let second = try await RegistryProcess(dataDirectory: directory, adminToken: admin)
        try await second.serving {
            let again = TestHTTP(baseURL: second.baseURL, token: admin)
            defer { Task { try? await again.shutdown() } }

            // Every acknowledged version is there, and the numbers run 1…n without gaps or duplicates.
            var numbers: [Int] = []
            var pageToken: String? = nil
            repeat {
                let query =
                    pageToken.map {
                        "&pageToken=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)"
                    } ?? ""
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
            var audited: [[String: Any]] = []
            var auditPage: String? = nil
            repeat {
                let query =
                    auditPage.map {
                        "&pageToken=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)"
                    } ?? ""
                let page = try await again.expect(200, .GET, "/v1/audit?limit=1000\(query)").json()
                audited += page["items"] as? [[String: Any]] ?? []
                auditPage = page["nextPageToken"] as? String
            } while auditPage != nil
            #expect(verify["entries"] as? Int == audited.count, "the chain covers every entry listed")
            let versionEntries = audited.filter {
                $0["action"] as? String == "version.create" && $0["model"] as? String == "crashy"
            }
            #expect(versionEntries.count == numbers.count, "one version.create entry per surviving version")
            #expect(
                Set(versionEntries.compactMap { $0["target"] as? String })
                    == Set(numbers.map { "models/crashy/versions/\($0)" }),
                "the entries name exactly the surviving versions")

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
            let next =
                try await again.expect(201, .POST, "/v1/models/crashy/versions", json: ["manifestDigest": digest])
                .json()["version"] as? Int
            #expect(next == numbers.count + 1)
        }
    }
}

extension CrashRecoveryTests {
    /// Creates versions until one is not acknowledged; returns why it stopped.
    static func createVersions(_ http: TestHTTP, digest: String, into log: WriterLog) async -> String {
        while true {
            let response: TestHTTP.Response
            do {
                response = try await http.send(.POST, "/v1/models/crashy/versions", json: ["manifestDigest": digest])
            } catch {
                return "the request failed (the process died?): \(error)"
            }
            guard response.status == 201 else {
                return "answered \(response.status): \(String(buffer: response.body).prefix(300))"
            }
            guard let number = (try? response.json())?["version"] as? Int else {
                return "a 201 without a version number: \(String(buffer: response.body).prefix(300))"
            }
            log.acknowledge(number)
        }
    }
}

/// What the writer tasks saw: the version numbers acknowledged, and why and when each writer stopped.
final class WriterLog: Sendable {
    private struct State {
        var acknowledged: [Int] = []
        var stops: [(reason: String, beforeTheKill: Bool)] = []
        var killing = false
    }

    private let state = Mutex(State())

    func acknowledge(_ number: Int) { state.withLock { $0.acknowledged.append(number) } }

    func stopped(_ reason: String) {
        state.withLock { $0.stops.append((reason, !$0.killing)) }
    }

    /// Marks that the kill is being sent: writers that stop from now on stopped because of it.
    func killing() { state.withLock { $0.killing = true } }

    var acknowledged: [Int] { state.withLock { $0.acknowledged } }
    var acknowledgedCount: Int { state.withLock { $0.acknowledged.count } }
    var stops: [String] { state.withLock { $0.stops.map(\.reason) } }
    var stoppedBeforeTheKill: [String] { state.withLock { $0.stops.filter(\.beforeTheKill).map(\.reason) } }

    /// Whether any of `count` writers still runs.
    func running(of count: Int) -> Bool { state.withLock { $0.stops.count < count } }
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
