/// Collects request latencies and reports percentiles and throughput.
struct LatencyRecorder: Sendable {
    private(set) var samples: [Duration] = []

    mutating func record(_ duration: Duration) { samples.append(duration) }

    mutating func reserve(_ count: Int) { samples.reserveCapacity(count) }

    mutating func merge(_ other: LatencyRecorder) { samples.append(contentsOf: other.samples) }

    /// The latency below which `fraction` of the samples fall, in milliseconds.
    func percentile(_ fraction: Double) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
        return sorted[max(0, index)].milliseconds
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
