import ArgumentParser
import Foundation
import ModelServing
import Synchronization

/// Measures the serving runtime's request path: the cost of routing one request, and of a flip.
@main
struct ServingBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serving-benchmark", abstract: "Request-path routing cost and flip time of ModelServing.")

    @Option(help: "Routed calls per thread and key kind.") var calls = 2_000_000
    @Option(help: "Threads routing at once (the second pass).") var threads = 2
    @Option(help: "Runtimes holding watches for the abort measurement (0 skips the fleet measurements).")
    var runtimes = 50
    @Option(help: "Aborts to measure.") var aborts = 5
    @Option(help: "Size in GiB of the model for the first-exposure measurement (0 skips it).") var largeGib = 1

    func run() async throws {
        print(Machine.describe())
        let keys = (0..<65_536).map { "user-\($0 &* 2_654_435_761 % 10_000_000)" }
        let v1 = ServingSlot(version: 1, model: Weights(version: 1))
        let v2 = ServingSlot(version: 2, model: Weights(version: 2))
        let state = ServingState(
            stable: v1, candidate: v2, split: TrafficSplit(percent: 25, salt: TrafficSplit.salt(forRollout: "bench")),
            rolloutId: "bench")
        let router = ModelRouter(state)

        print("| measurement | threads | calls | p50 ns | p99 ns | p99.9 ns | mean ns/call |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for threadCount in [1, threads] {
            let stringKeys = Self.measure(threads: threadCount, calls: calls) { index in
                router.route(keys[index & 65_535]).version
            }
            print(stringKeys.row("route(String key), 25 % split", threads: threadCount, calls: calls))
            let integerKeys = Self.measure(threads: threadCount, calls: calls) { index in
                router.route(UInt64(index)).version
            }
            print(integerKeys.row("route(UInt64 key), 25 % split", threads: threadCount, calls: calls))
        }

        // Flip: how long publish takes, and how long until a reader on another thread sees the new state.
        var flips: [Double] = []
        for round in 0..<10_000 {
            let next = round % 2 == 0 ? ServingState(stable: v2) : state
            let start = ContinuousClock.now
            router.publish(next)
            flips.append(Double((ContinuousClock.now - start).components.attoseconds) / 1e9)
        }
        flips.sort()
        print(
            String(
                format: "| publish (atomic flip) | 1 | 10000 | %.0f | %.0f | %.0f | %.0f |", flips[5_000], flips[9_900],
                flips[9_990], flips.reduce(0, +) / Double(flips.count)))

        if runtimes > 0 {
            print("\nAgainst a real `registry serve` process (next to this executable):\n")
            try await FleetBenchmark(runtimes: runtimes, aborts: aborts, largeGiB: largeGib).run()
        }
    }

    struct Measured {
        var sorted: [Double]
        var meanPerCall: Double

        func row(_ name: String, threads: Int, calls: Int) -> String {
            func at(_ fraction: Double) -> Double {
                sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
            }
            return String(
                format: "| %@ | %d | %d | %.0f | %.0f | %.0f | %.1f |", name, threads, calls * threads, at(0.5),
                at(0.99),
                at(0.999), meanPerCall)
        }
    }

    /// Times every call individually (the clock read, about 20 ns, is included, so percentiles are upper bounds)
    /// and the whole loop (mean per call without the clock).
    static func measure(threads: Int, calls: Int, _ body: @escaping @Sendable (Int) -> Int) -> Measured {
        let results = Mutex<[[Double]]>([])
        let means = Mutex<[Double]>([])
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                var samples = [Double](repeating: 0, count: calls)
                var sink = 0
                for index in 0..<calls {
                    let start = ContinuousClock.now
                    sink &+= body(index)
                    samples[index] = Double((ContinuousClock.now - start).components.attoseconds) / 1e9
                }
                let loopStart = ContinuousClock.now
                for index in 0..<calls { sink &+= body(index) }
                let loop = ContinuousClock.now - loopStart
                let mean =
                    (Double(loop.components.seconds) * 1e9 + Double(loop.components.attoseconds) / 1e9)
                    / Double(calls)
                if sink == 42 { print("") }  // keeps the calls from being optimized away
                results.withLock { $0.append(samples) }
                means.withLock { $0.append(mean) }
                group.leave()
            }.start()
        }
        group.wait()
        let all = results.withLock { $0.flatMap { $0 } }.sorted()
        let mean = means.withLock { $0.reduce(0, +) / Double($0.count) }
        return Measured(sorted: all, meanPerCall: mean)
    }
}

/// A stand-in for loaded weights.
final class Weights: Sendable {
    let version: Int
    init(version: Int) { self.version = version }
}

enum Machine {
    static func describe() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)\n"
    }
}
