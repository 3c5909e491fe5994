import Foundation

/// Deletes the blobs (chunks and manifests) that no version references and that nobody touched within a grace
/// window.
///
/// Uploads in flight are protected twice: every digest an open upload holds (`UploadStore`: chunks and manifests
/// uploaded, or reported present by `POST /v1/blobs/check`, until the upload expires) is kept whatever the grace,
/// and a blob touched within the grace window is young. The blob list is taken before the references and the pins,
/// so a version created during a run can only reference blobs that are in the reference set, pinned, or young.
/// The one window left is a blob renamed into place moments before its uploader's pin commits, with a grace of
/// (nearly) zero: its push then fails with `ARTIFACT_INCOMPLETE` and uploads the chunk again, nothing is lost.
public enum GarbageCollector {
    /// What one run found and removed.
    public struct Report: Codable, Sendable, Equatable {
        /// How many blobs the store held when the run started.
        public var scanned: Int
        /// How many of them some version references.
        public var referenced: Int
        /// The unreferenced blobs older than the grace window: deleted, or (dry run) those that would be.
        public var deleted: [Digest]
        /// The plaintext bytes those blobs held.
        public var freedBytes: Int64
        /// Unreferenced blobs kept because they are younger than the grace window.
        public var keptYoung: Int
        /// Unreferenced blobs kept because an open upload holds them.
        public var keptPinned: Int
        public var dryRun: Bool

        public init(
            scanned: Int, referenced: Int, deleted: [Digest], freedBytes: Int64, keptYoung: Int, dryRun: Bool
        ) {
            self.scanned = scanned
            self.referenced = referenced
            self.deleted = deleted
            self.freedBytes = freedBytes
            self.keptYoung = keptYoung
            self.keptPinned = 0
            self.dryRun = dryRun
        }
    }

    /// The default grace window: one hour.
    public static let defaultGrace: Duration = .seconds(3600)

    /// Collects unreferenced blobs of `blobs` last modified more than `grace` before `now`; with `dryRun` it only
    /// reports them. Throws `INVALID_ARGUMENT` for a negative grace.
    public static func collect(
        metadata: any VersionStore & UploadStore, blobs: any BlobStore, grace: Duration = defaultGrace, dryRun: Bool,
        now: Date = Date()
    ) async throws -> Report {
        guard grace >= .zero else { throw RegistryError.invalidArgument("The grace window cannot be negative.") }
        let stored = try await blobs.list()
        let referenced = try await metadata.referencedDigests()
        let pinned = try await metadata.pinnedDigests(now: now)
        let cutoff = now.addingTimeInterval(-Double(grace.components.seconds))
        var report = Report(
            scanned: stored.count, referenced: 0, deleted: [], freedBytes: 0, keptYoung: 0, dryRun: dryRun)
        for digest in stored.sorted() {
            if referenced.contains(digest) {
                report.referenced += 1
                continue
            }
            if pinned.contains(digest) {
                report.keptPinned += 1
                continue
            }
            guard let modified = try await blobs.modificationTime(of: digest) else { continue }
            guard modified <= cutoff else {
                report.keptYoung += 1
                continue
            }
            let size = try await blobs.size(of: digest) ?? 0
            if !dryRun { try await blobs.delete(digest) }
            report.deleted.append(digest)
            report.freedBytes += size
        }
        return report
    }
}
