/// How requests are divided between the stable and the candidate model of a rollout.
///
/// Each request carries a caller-chosen key (a user id, a session id, a request id). The key and the rollout's salt
/// are hashed to a bucket in `0..<10_000`; the request goes to the candidate when its bucket is below the weight in
/// basis points. So:
/// - the same key always lands in the same bucket, and gets the same version at a given weight (sticky);
/// - raising the weight only moves keys from stable to candidate, never back (monotonic);
/// - each rollout has its own salt, so the canary cohort of one rollout is not the canary cohort of the next.
///
/// The hash is FNV-1a over the key's UTF-8 bytes followed by a SplitMix64 finalizer: stable across processes,
/// machines and releases (unlike `Hasher`, which is seeded per process), fast, and allocation-free.
public struct TrafficSplit: Sendable, Hashable {
    /// Buckets per key space: weights have a resolution of 0.01 %.
    public static let buckets: UInt64 = 10_000

    /// The share of keys that go to the candidate, in basis points (0…10 000).
    public let weightBasisPoints: Int
    /// Mixed into every key's hash; derived from the rollout id.
    public let salt: UInt64

    /// A split sending `percent` % (0…100, fractions allowed down to 0.01) of keys to the candidate.
    public init(percent: Double, salt: UInt64) {
        let clamped = min(max(percent, 0), 100)
        self.weightBasisPoints = Int((clamped * 100).rounded())
        self.salt = salt
    }

    public init(weightBasisPoints: Int, salt: UInt64) {
        self.weightBasisPoints = min(max(weightBasisPoints, 0), Int(Self.buckets))
        self.salt = salt
    }

    /// The weight as a percentage.
    public var percent: Double { Double(weightBasisPoints) / 100 }

    /// Whether requests with `key` go to the candidate.
    @inlinable
    public func routesToCandidate(_ key: some StringProtocol) -> Bool {
        Int(Self.bucket(key, salt: salt)) < weightBasisPoints
    }

    /// Whether requests with the integer `key` go to the candidate.
    @inlinable
    public func routesToCandidate(_ key: UInt64) -> Bool {
        Int(Self.bucket(key, salt: salt)) < weightBasisPoints
    }

    /// The bucket (`0..<10_000`) of `key` under `salt`.
    @inlinable
    public static func bucket(_ key: some StringProtocol, salt: UInt64) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return mix(hash) % buckets
    }

    /// The bucket (`0..<10_000`) of the integer `key` under `salt`.
    @inlinable
    public static func bucket(_ key: UInt64, salt: UInt64) -> UInt64 {
        mix(key ^ (salt &* 0x9e37_79b9_7f4a_7c15)) % buckets
    }

    /// The SplitMix64 finalizer: spreads FNV's weak low bits over the whole word.
    @inlinable
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A salt derived from a rollout id (any string), stable everywhere.
    public static func salt(forRollout id: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return mix(hash)
    }
}
