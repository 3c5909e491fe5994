import Foundation

/// Runs blocking work (waiting for a child process, reading a pipe to its end) on a thread of its own.
///
/// Swift's cooperative pool has one thread per core, two on CI. A test that blocks one of them while a child process
/// runs stalls every task of every test running beside it, in-process servers included: a long-poll was left
/// unanswered past its client's timeout in full runs, and a child that talks to an in-process server can wait on a
/// server that cannot run. `Task.detached` does not help: it runs on the same pool.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

extension Process {
    /// Waits for the process to exit without holding a thread of the cooperative pool; returns its exit status.
    public func exited() async -> Int32 {
        await offThePool {
            self.waitUntilExit()
            return self.terminationStatus
        }
    }
}
