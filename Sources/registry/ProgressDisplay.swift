import Foundation
import RegistryClient
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Shows transfer progress on stderr: a redrawn bar (bytes, rate, ETA) on a terminal, a plain line every few
/// seconds otherwise (logs, CI).
final class ProgressDisplay: Sendable {
    private struct State {
        var lastDraw: ContinuousClock.Instant?
        var done: Int64 = 0
        var total: Int64 = 0
        var drawn = false
    }

    private let verb: String
    private let terminal: Bool
    private let start = ContinuousClock.now
    private let state = Mutex(State())

    init(verb: String, terminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.verb = verb
        self.terminal = terminal
    }

    /// The callback to hand to `push`/`pull`.
    var callback: TransferProgress {
        { [self] done, total in self.update(done, total) }
    }

    private func update(_ done: Int64, _ total: Int64) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            state.done = max(state.done, done)
            state.total = total
            let interval: Duration = terminal ? .milliseconds(100) : .seconds(2)
            if let last = state.lastDraw, now - last < interval { return nil }
            state.lastDraw = now
            state.drawn = true
            return render(state.done, total, elapsed: now - start)
        }
        if let line { write(line) }
    }

    /// Draws the final state and ends the line.
    func finish() {
        let (done, total, drawn) = state.withLock { ($0.done, $0.total, $0.drawn) }
        guard drawn || terminal else { return }
        write(render(done, total, elapsed: ContinuousClock.now - start))
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func write(_ line: String) {
        FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    private func render(_ done: Int64, _ total: Int64, elapsed: Duration) -> String {
        let seconds = max(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 1e-3)
        let rate = Double(done) / seconds
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let eta = rate > 0 && total > done ? Self.duration(Double(total - done) / rate) : "0s"
        let figures =
            "\(Self.bytes(Double(done))) / \(Self.bytes(Double(total)))  \(Self.bytes(rate))/s  ETA \(eta)"
        guard terminal else {
            return "\(verb): \(String(format: "%3.0f%%", fraction * 100)) \(figures)"
        }
        let width = 30
        let filled = Int(fraction * Double(width))
        return "\(verb) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            + "] " + String(format: "%3.0f%% ", fraction * 100) + figures
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = value
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        if whole >= 3600 { return "\(whole / 3600)h\(whole % 3600 / 60)m" }
        if whole >= 60 { return "\(whole / 60)m\(whole % 60)s" }
        return "\(whole)s"
    }
}
