import Foundation

/// What one rollout report costs as the fleet reporting to the rollout grows: a report should cost the same with 10
/// or 10 000 instances (reports are kept one row per instance, decided from an aggregate).
struct ReportBenchmark {
    let baseURL: String
    let token: String
    let seed: Seed

    /// Starts a rollout that stays warming (it needs more instances than the benchmark brings), grows its fleet to
    /// each of `fleetSizes`, and measures `samples` reports from instances already known at each size.
    func run(fleetSizes: [Int], samples: Int, http: BenchmarkHTTP) async throws {
        let model = seed.modelNames[0]
        let stage = try await http.expect([200], .GET, "/v1/models/\(model)/stages/production")
        let started = try await http.expect(
            [201], .POST, "/v1/models/\(model)/stages/production/rollouts",
            json: [
                "version": seed.versionsPerModel - 1, "minInstances": 100_000, "bakeSeconds": 86_400,
                "instanceWindowSeconds": 86_400,
            ], headers: [("If-Match", "\"\(stage.etagRevision ?? 0)\"")])
        guard let id = try started.json()["id"] as? String else { throw BenchmarkFailure("no rollout id") }
        let path = "/v1/models/\(model)/stages/production/rollouts/\(id)/reports"
        let (baseURL, token) = (self.baseURL, self.token)
        let body: @Sendable (Int, Int) -> [UInt8] = { instance, requests in
            Array(
                #"{"instance":"pod-\#(instance)","region":"eu-west","state":"loaded","requests":\#(requests),"errors":0,"stableRequests":\#(requests),"stableErrors":0}"#
                    .utf8)
        }
        print("| instances reporting | reports measured | p50 ms | p95 ms | p99 ms |")
        print("|---:|---:|---:|---:|---:|")
        var fleet = 0
        for size in fleetSizes.sorted() {
            // Grow the fleet to `size` with 8 connections (unmeasured).
            let from = fleet
            _ = try await onThreads(8) { worker -> Void in
                let connection = try RawHTTPConnection(baseURL: baseURL)
                for instance in stride(from: from + worker, to: size, by: 8) {
                    let response = try connection.send("POST", path, token: token, json: body(instance, 1))
                    guard response.status == 200 else {
                        throw BenchmarkFailure(
                            "report answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
                    }
                }
            }
            fleet = size
            // Measured: reports of known instances (or of one new instance when the fleet is empty), one at a time.
            let known = max(fleet, 1)
            let recorders = try await onThreads(1) { _ -> LatencyRecorder in
                let connection = try RawHTTPConnection(baseURL: baseURL)
                var recorder = LatencyRecorder()
                for sample in 0..<samples {
                    let began = ContinuousClock.now
                    let response = try connection.send(
                        "POST", path, token: token, json: body(sample % known, sample + 2))
                    guard response.status == 200 else { throw BenchmarkFailure("report answered \(response.status)") }
                    recorder.record(ContinuousClock.now - began)
                }
                return recorder
            }
            fleet = max(fleet, 1)
            let latencies = recorders[0]
            print(
                "| \(size) | \(samples) | "
                    + String(
                        format: "%.2f | %.2f | %.2f |", latencies.percentile(0.5), latencies.percentile(0.95),
                        latencies.percentile(0.99)))
        }
    }
}
