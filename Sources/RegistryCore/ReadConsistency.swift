import Synchronization

/// How fresh a read must be and where a write committed, carried with a request as task-local values, so that a
/// store with read replicas can serve reads from them and still give a client its own writes back.
///
/// A position is opaque outside the store that made it (PostgreSQL's write-ahead log position, `0/16B3748`). A
/// write reports the position of its commit (`Registry-Position` on the response); a read that presents a position
/// is served only by a replica that has replayed it, or by the primary. A store without replicas ignores both.
public enum ReadConsistency {
    /// Set while serving a request that only reads: the store may answer from a replica. Reads made on behalf of a
    /// write (its checks) never see this and always read the primary.
    @TaskLocal public static var replicaRead: ReplicaRead?
    /// Set while serving a write: the store records the position of each commit here.
    @TaskLocal public static var commits: CommitPositions?

    /// A PostgreSQL log position (`16/B374D848`, two hexadecimal halves) as a number that orders positions; nil for
    /// anything else.
    public static func order(of position: String) -> UInt64? {
        let halves = position.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, halves.allSatisfy({ !$0.isEmpty && $0.count <= 8 }),
            let high = UInt64(halves[0], radix: 16), let low = UInt64(halves[1], radix: 16)
        else { return nil }
        return high << 32 | low
    }
}

/// A read that may be served by a replica that has replayed `minimumPosition` (any reasonably fresh one when nil).
public struct ReplicaRead: Sendable {
    public var minimumPosition: String?

    public init(minimumPosition: String?) {
        self.minimumPosition = minimumPosition
    }
}

/// The commit positions of one request's writes; the last is the newest.
public final class CommitPositions: Sendable {
    private let stored = Mutex<String?>(nil)

    public init() {}

    public func record(_ position: String) {
        stored.withLock { $0 = position }
    }

    /// The position of the request's last commit, nil when it committed nothing.
    public var last: String? { stored.withLock { $0 } }
}
