import Foundation
import Testing

/// Polls `condition`, an observable state (a gauge, a file, a count on the server), every `interval` until it holds;
/// throws after `timeout`. The way a test waits for something to have happened, instead of sleeping and assuming it.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(60), interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw TestFailure("timed out after \(timeout) waiting until \(what)")
        }
        try await Task.sleep(for: interval)
    }
}

/// Reading the Prometheus text exposition a registry serves on `/metrics`.
public enum PrometheusText {
    /// The value of the sample named exactly `name` (no labels), nil when there is none.
    public static func value(of name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

extension RegistryEndpoint {
    /// The current value of the unlabelled metric `name` on `/metrics`, nil when it is not there (yet).
    public func metric(_ name: String) async throws -> Double? {
        PrometheusText.value(of: name, in: try await send(.GET, "/metrics", token: nil).text)
    }

    /// Waits until the metric `name` satisfies `condition` (for example: the long-polls a test started are open).
    public func waitForMetric(
        _ name: String, timeout: Duration = .seconds(60), _ condition: @escaping (Double) -> Bool
    ) async throws {
        try await waitUntil("\(name) reaches the expected value", timeout: timeout) {
            try await metric(name).map(condition) ?? false
        }
    }
}
