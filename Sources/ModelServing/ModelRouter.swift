import Synchronization

/// One loaded model and what it has served.
public final class ServingSlot<Model: Sendable>: Sendable {
    public let version: Int
    public let model: Model
    private let requestCount = Atomic<Int>(0)
    private let errorCount = Atomic<Int>(0)

    public init(version: Int, model: Model) {
        self.version = version
        self.model = model
    }

    /// Counts one request served by this slot, and whether it failed. Lock-free.
    @inlinable
    public func record(failed: Bool = false) {
        countRequest()
        if failed { countError() }
    }

    @usableFromInline func countRequest() { requestCount.wrappingAdd(1, ordering: .relaxed) }
    @usableFromInline func countError() { errorCount.wrappingAdd(1, ordering: .relaxed) }

    /// Requests and failures recorded so far.
    public var counts: (requests: Int, errors: Int) {
        (requestCount.load(ordering: .relaxed), errorCount.load(ordering: .relaxed))
    }
}

/// What a router serves at one moment: never changed once published, only replaced whole, so a request sees
/// either the state before a flip or the one after it, never a mixture.
public final class ServingState<Model: Sendable>: Sendable {
    /// Serves every key the split does not send to the candidate.
    public let stable: ServingSlot<Model>
    /// The version being rolled out, if any.
    public let candidate: ServingSlot<Model>?
    public let split: TrafficSplit
    public let rolloutId: String?

    public init(
        stable: ServingSlot<Model>, candidate: ServingSlot<Model>? = nil, split: TrafficSplit? = nil,
        rolloutId: String? = nil
    ) {
        self.stable = stable
        self.candidate = candidate
        self.rolloutId = rolloutId
        self.split =
            candidate == nil
            ? TrafficSplit(weightBasisPoints: 0, salt: 0)
            : split ?? TrafficSplit(weightBasisPoints: 0, salt: TrafficSplit.salt(forRollout: rolloutId ?? ""))
    }

    /// The slot that serves `key`.
    @inlinable
    public func slot(for key: some StringProtocol) -> ServingSlot<Model> {
        if let candidate, split.routesToCandidate(key) { return candidate }
        return stable
    }

    /// The slot that serves the integer `key`.
    @inlinable
    public func slot(for key: UInt64) -> ServingSlot<Model> {
        if let candidate, split.routesToCandidate(key) { return candidate }
        return stable
    }
}

/// The request path of the serving runtime: picks the model for a request with one atomic load and a hash.
///
/// `route` takes no lock, does no I/O and allocates nothing: it loads the current `ServingState` pointer with
/// acquire ordering, hashes the key, and returns the chosen slot (a retain). `publish` swaps in a new state
/// atomically; publishers are serialized among themselves, never with readers.
///
/// Memory reclamation is time-based: a replaced state is released only `reclaimDelay` (default 60 s) after it was
/// replaced. A reader dereferences the state only between its load and the retain of the returned slot, a few
/// nanoseconds, so a state can never be freed under a reader that is still running. (Models themselves live as
/// long as some state or caller holds their slot; the runtime keeps the previous model in its own grace period.)
public final class ModelRouter<Model: Sendable>: Sendable {
    /// The address of the current state, which holds one retain on it (an integer, because pointers are not
    /// `Sendable`).
    private let current: Atomic<UInt>
    private let retired = Mutex<[(state: ServingState<Model>, at: ContinuousClock.Instant)]>([])
    private let reclaimDelay: Duration

    public init(_ initial: ServingState<Model>, reclaimDelay: Duration = .seconds(60)) {
        current = Atomic(UInt(bitPattern: Unmanaged.passRetained(initial).toOpaque()))
        self.reclaimDelay = reclaimDelay
    }

    deinit {
        Self.unmanaged(current.load(ordering: .acquiring)).release()
    }

    /// The slot that serves `key` right now.
    @inlinable
    public func route(_ key: some StringProtocol) -> ServingSlot<Model> {
        withState { $0.slot(for: key) }
    }

    /// The slot that serves the integer `key` right now.
    @inlinable
    public func route(_ key: UInt64) -> ServingSlot<Model> {
        withState { $0.slot(for: key) }
    }

    /// The state being served (retained for the caller).
    public var state: ServingState<Model> {
        withState { $0 }
    }

    @usableFromInline
    func withState<Result>(_ body: (ServingState<Model>) -> Result) -> Result {
        Self.unmanaged(current.load(ordering: .acquiring))._withUnsafeGuaranteedRef(body)
    }

    private static func unmanaged(_ address: UInt) -> Unmanaged<ServingState<Model>> {
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: address)!)
    }

    /// Makes `state` the one every following request sees, atomically; returns the state it replaced.
    @discardableResult
    public func publish(_ state: ServingState<Model>) -> ServingState<Model> {
        let now = ContinuousClock.now
        return retired.withLock { retired in
            let new = UInt(bitPattern: Unmanaged.passRetained(state).toOpaque())
            let old = Self.unmanaged(current.exchange(new, ordering: .acquiringAndReleasing)).takeRetainedValue()
            // Oldest first, so only the expired prefix is looked at.
            let expired = retired.firstIndex { now - $0.at <= reclaimDelay } ?? retired.count
            retired.removeFirst(expired)
            retired.append((old, now))
            return old
        }
    }
}
