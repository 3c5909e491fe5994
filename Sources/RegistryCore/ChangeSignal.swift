import Synchronization

/// Wakes waiters when a monotonically increasing position (the last committed event id, the last settled write)
/// passes theirs. Stores that live in one process use it to answer `waitForEvents` without polling.
public final class ChangeSignal: Sendable {
    private struct Waiter {
        let after: Int64
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var position: Int64
        var waiters: [UInt64: Waiter] = [:]
        var nextToken: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(position: Int64 = 0) {
        state = Mutex(State(position: position))
    }

    public var position: Int64 { state.withLock { $0.position } }

    /// How many tasks wait right now (tests use it to know a waiter is parked before they wake it).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Records that everything up to `position` has committed and wakes those waiting for it.
    public func advance(to position: Int64) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
            guard position > state.position else { return [] }
            state.position = position
            let tokens = state.waiters.filter { $0.value.after < position }.map(\.key)
            return tokens.compactMap { state.waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once the position passes `after`, when `timeout` elapses, or when the task is cancelled.
    public func wait(after: Int64, timeout: Duration) async {
        if position > after { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilPassed(after) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitUntilPassed(_ after: Int64) async {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.position > after || Task.isCancelled { return true }
                    state.waiters[token] = Waiter(after: after, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: token) }
            waiter?.continuation.resume()
        }
    }
}
