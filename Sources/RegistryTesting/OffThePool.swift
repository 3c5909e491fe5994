import Foundation
import Synchronization

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
    /// Waits for the process to exit without holding any thread; returns its exit status.
    ///
    /// Not `waitUntilExit()` on a thread of its own: off the main thread, Foundation's `waitUntilExit` spins its run
    /// loop, which has no sources there, so every waiting test burned most of a core (seen: six waits holding the
    /// machine at 2 × 90 %). The termination handler is set once; a process that exited before it was set is seen
    /// by the `isRunning` check after.
    public func exited() async -> Int32 {
        let pending = Mutex<CheckedContinuation<Int32, Never>?>(nil)
        return await withCheckedContinuation { continuation in
            pending.withLock { $0 = continuation }
            let finish: @Sendable (Int32) -> Void = { status in
                pending.withLock { waiting in
                    waiting?.resume(returning: status)
                    waiting = nil
                }
            }
            terminationHandler = { process in finish(process.terminationStatus) }
            if !isRunning { finish(terminationStatus) }
        }
    }
}
