import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The time from a promotion answered by instance A to a resolve watch on instance B answering with it: how long a
/// change takes to reach a watcher connected to another instance (PostgreSQL's NOTIFY, then the wake-up).
enum Propagation {
    static func measure(
        samples: Int, from a: String, to b: String, token: String, seed: Seed, client: HTTPClient
    ) async throws -> LatencyRecorder {
        let model = seed.modelNames[0]
        let stage = "bench-propagation-\(UInt32.random(in: 0...UInt32.max))"
        let writer = BenchmarkHTTP(client: client, baseURL: a, token: token)
        let reader = BenchmarkHTTP(client: client, baseURL: b, token: token)
        var revision = try await writer.expect(
            [200, 201], .PUT, "/v1/models/\(model)/stages/\(stage)", json: ["version": seed.versionsPerModel],
            headers: [("If-None-Match", "*")]
        ).etagRevision
        var recorder = LatencyRecorder()
        for index in 0..<samples {
            let current = try await reader.expect([200], .GET, "/v1/resolve/\(model)/\(stage)")
            let etag = current.headers.first(name: "etag") ?? ""
            let answered = Task { () -> ContinuousClock.Instant in
                let response = try await reader.send(
                    .GET, "/v1/resolve/\(model)/\(stage)?wait=30", headers: [("If-None-Match", etag)])
                guard response.status == 200 else {
                    throw BenchmarkFailure("the watch answered \(response.status) instead of the promotion")
                }
                return ContinuousClock.now
            }
            // Let the watch reach the server and start waiting before the promotion.
            try await Task.sleep(for: .milliseconds(30))
            let target = index % 2 == 0 ? seed.versionsPerModel - 1 : seed.versionsPerModel
            let promoted = try await writer.expect(
                [200, 201], .PUT, "/v1/models/\(model)/stages/\(stage)",
                json: ["version": target, "reason": "propagation"],
                headers: [("If-Match", "\"\(revision ?? 0)\"")])
            let committed = ContinuousClock.now
            revision = promoted.etagRevision
            let seen = try await answered.value
            recorder.record(max(.zero, seen - committed))
        }
        return recorder
    }
}
