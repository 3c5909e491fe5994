import Foundation

/// Which content each caller uploaded (or was shown present) and has not yet seen expire: an open upload.
///
/// An upload makes its digests visible to that caller alone (content is otherwise visible only through a model the
/// caller can read), and keeps garbage collection off them however short its grace window, until the record
/// expires. Records are not audited: they grant nothing beyond bytes the caller has just proved it holds.
public protocol UploadStore: Sendable {
    /// Records that `subject` holds `digests` until `expiresAt` (an earlier record of the same digest is extended).
    func recordUploads(_ digests: [Digest], by subject: String, expiresAt: Date) async throws

    /// Which of `digests` `subject` holds in an upload that has not expired at `now`.
    func uploadedDigests(_ digests: [Digest], by subject: String, now: Date) async throws -> Set<Digest>

    /// Every digest any unexpired upload holds at `now`: what garbage collection must keep. Expired records may be
    /// dropped on the way.
    func pinnedDigests(now: Date) async throws -> Set<Digest>
}

/// How long an upload keeps its digests visible to its uploader and safe from garbage collection.
public enum UploadSession {
    /// One day: far longer than any push, short enough that abandoned uploads are collected the next day.
    public static let lifetime: TimeInterval = 86_400
}
