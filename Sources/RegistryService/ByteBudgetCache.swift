import Synchronization

/// A cache bounded by the bytes its entries cost, not by their number: least recently used entries go first.
///
/// Counting entries bounds nothing when one entry can be a few bytes or many megabytes (a manifest of 100 000 files);
/// each entry here states its estimated cost, the total never exceeds `budget`, and an entry costing more than
/// `maxEntryCost` is not cached at all, so one large value cannot push out everything else.
public final class ByteBudgetCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var cost: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    /// Most bytes all entries cost together.
    public let budget: Int
    /// Most bytes one entry may cost to be cached.
    public let maxEntryCost: Int
    private let state = Mutex(State())

    /// A cache of at most `budget` bytes that caches no entry costing more than `budget / largestEntryFraction`.
    public init(budget: Int, largestEntryFraction: Int = 8) {
        self.budget = max(0, budget)
        maxEntryCost = self.budget / max(1, largestEntryFraction)
    }

    /// The value cached under `key`, marking it recently used.
    public func get(_ key: Key) -> Value? {
        state.withLock { state in
            guard state.entries[key] != nil else { return nil }
            state.clock += 1
            state.entries[key]!.lastUse = state.clock
            return state.entries[key]!.value
        }
    }

    /// Caches `value` under `key` at an estimated `cost` in bytes, evicting least recently used entries to stay
    /// within the budget; a value costing more than `maxEntryCost` is not cached (and replaces nothing).
    public func put(_ key: Key, _ value: Value, cost: Int) {
        let cost = max(cost, 0) + Self.entryOverhead
        state.withLock { state in
            guard cost <= maxEntryCost else {
                if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.cost }
                return
            }
            state.clock += 1
            if let old = state.entries.updateValue(Entry(value: value, cost: cost, lastUse: state.clock), forKey: key) {
                state.bytes -= old.cost
            }
            state.bytes += cost
            if state.bytes > budget { evict(&state) }
        }
    }

    /// The bytes all cached entries cost now.
    public var bytes: Int { state.withLock { $0.bytes } }

    /// The number of cached entries.
    public var count: Int { state.withLock { $0.entries.count } }

    /// What an entry costs besides its value: its key, the bookkeeping and the dictionary slot, roughly.
    static var entryOverhead: Int { 64 }

    /// Drops least recently used entries down to three quarters of the budget, so that a full cache sorts its
    /// entries once per quarter budget of new bytes rather than on every insertion.
    private func evict(_ state: inout State) {
        let target = budget / 4 * 3
        for (key, entry) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard state.bytes > target else { break }
            state.entries[key] = nil
            state.bytes -= entry.cost
        }
    }
}
