import RegistryCore

/// Where a blob's object lives in its storage. Both layouts are fixed by data already stored: data directories
/// shard by the first two hex digits, buckets do not.
public struct BlobLayout: Sendable, Equatable {
    /// `blobs/sha256/ab/abcd…`: the file-system layout (an OCI registry's), which keeps directories small.
    public static let sharded = BlobLayout(prefix: "blobs/sha256/", isSharded: true)
    /// `sha256/abcd…`: the layout in S3 buckets (under the storage's `blobs/` prefix), where a key prefix is no
    /// directory.
    public static let flat = BlobLayout(prefix: "sha256/", isSharded: false)

    /// The key prefix every blob's key starts with.
    public let prefix: String
    let isSharded: Bool

    /// The key of the blob with `digest`.
    public func key(of digest: Digest) -> String {
        isSharded ? "\(prefix)\(digest.hex.prefix(2))/\(digest.hex)" : "\(prefix)\(digest.hex)"
    }

    /// The digest whose key is `key`, nil for any other key (a stray file, a shard that does not match).
    public func digest(ofKey key: String) -> Digest? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        let hex: Substring
        if isSharded {
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].count == 2, parts[1].hasPrefix(parts[0]) else { return nil }
            hex = parts[1]
        } else {
            hex = rest
        }
        return try? Digest(hex: String(hex))
    }
}
