import Logging
import Prometheus
import RegistryCore
import Synchronization

/// Audits denied requests several to a store call, so that a flood of denials cannot turn into a flood of durable
/// writes (one fsync each).
///
/// Group commit with a short window: the first denial to arrive waits `window` while others join it, then appends
/// all of them with one `recordAudits` call (one transaction); every request of that batch is answered only after
/// the call returns. So a denial is in the audit log before its 403 is sent, nothing sits in a buffer that a crash
/// or a shutdown could lose, and however fast denials come, the store sees at most one audit write per `window`
/// (plus the time the write takes). What waits is bounded by the requests in flight, which the connection caps bound.
final class DenialAuditor: Sendable {
    private struct Waiting {
        var draft: AuditDraft
        var context: MutationContext
        /// Resumed once the batch is written; nil for the request that leads the batch.
        var written: CheckedContinuation<Bool, Never>?
    }

    private struct State {
        var collecting = false
        var batch: [Waiting] = []
    }

    let store: any AuditStore
    /// How long the first denial of a batch waits for others.
    let window: Duration
    private let state = Mutex(State())
    /// Denials audited, and the store calls that wrote them.
    private let denials: Counter
    private let writes: Counter

    init(store: any AuditStore, window: Duration, metrics: ServerMetrics) {
        self.store = store
        self.window = window
        denials = metrics.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "registry", metricName: "audit_denials", unitName: "total",
                helpText: "Denied requests written to the audit log."))
        writes = metrics.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "registry", metricName: "audit_denial_writes", unitName: "total",
                helpText: "Store calls (transactions) that wrote audit entries of denied requests."))
    }

    /// Appends `draft` to the audit log together with other denials arriving within `window`; returns once it is
    /// written. A failure to write is logged (for the whole batch), never thrown: the caller is refused either way.
    func record(_ draft: AuditDraft, context: MutationContext, logger: Logger) async {
        let leads = await withCheckedContinuation { (written: CheckedContinuation<Bool, Never>) in
            let leads = state.withLock { state -> Bool in
                if state.collecting {
                    state.batch.append(Waiting(draft: draft, context: context, written: written))
                    return false
                }
                state.collecting = true
                state.batch.append(Waiting(draft: draft, context: context, written: nil))
                return true
            }
            if leads { written.resume(returning: true) }
        }
        guard leads else { return }
        // A cancelled request ends the wait early; its batch is written all the same.
        if window > .zero { try? await Task.sleep(for: window) }
        let batch = state.withLock { state -> [Waiting] in
            defer {
                state.batch = []
                state.collecting = false
            }
            return state.batch
        }
        do {
            try await store.recordAudits(batch.map { (draft: $0.draft, context: $0.context) })
            writes.increment()
            denials.increment(by: Int64(batch.count))
        } catch {
            logger.error(
                "Could not audit denied requests", metadata: ["error": "\(error)", "count": "\(batch.count)"])
        }
        for waiting in batch { waiting.written?.resume(returning: false) }
    }
}
