/// `POST /v1/blobs/check`: the server answers at most this many digests at once and clients batch by it, so the
/// two cannot drift apart (the body of a full batch stays under the server's 1 MiB JSON limit).
public enum BlobCheck {
    public static let maxDigests = 10_000
}

/// Page sizes of the list endpoints (`?limit=`): what the server uses without one and the most it returns at once.
public enum PageLimit {
    public static let `default` = 100
    public static let maximum = 1000

    /// Clamps a requested page size to 1…`maximum`, defaulting to `default`.
    public static func clamp(_ requested: Int?) -> Int {
        min(max(requested ?? `default`, 1), maximum)
    }
}
