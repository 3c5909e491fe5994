import Foundation
// Callers of the S3 store name its keyring and header checks, which live with the sealed layer.
@_exported import RegistryBlobStorage
import RegistryCore

/// The blob store of a registry that scales out: sealed blobs (`SealedBlobStore`) in an S3 bucket that several
/// stateless instances share, at `<prefix>blobs/sha256/<hex>`, touched at `<prefix>touched/sha256/<hex>`.
public typealias S3BlobStore = SealedBlobStore<S3ObjectStorage>

extension SealedBlobStore where Storage == S3ObjectStorage {
    /// The smallest part S3 accepts for every part but the last.
    public static var minimumPartSize: Int { S3ObjectStorage.minimumPartSize }

    /// A store in `client`'s bucket under `prefix` (for example `registry/`; empty for the whole bucket).
    ///
    /// `partSize` is the largest object written with one `PUT` and the part size of larger ones (at least 5 MiB);
    /// see `SealedBlobStore.init` for the other parameters.
    public convenience init(
        client: S3Client, prefix: String = "", keyring: MasterKeyring, segmentSize: Int = 1 << 20,
        partSize: Int = 8 << 20,
        onCorruption: @escaping @Sendable (RegistryError) -> Void = BlobCorruption.reportToStandardError
    ) {
        let prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        let storage = S3ObjectStorage(
            client: client, prefix: prefix + "blobs/", touchPrefix: prefix + "touched/", partSize: partSize)
        self.init(
            storage: storage, layout: .flat, keyring: keyring, segmentSize: segmentSize,
            onCorruption: onCorruption)
    }

    /// The bucket key of a blob's object.
    public func objectKey(of digest: Digest) -> String {
        storage.prefix + key(of: digest)
    }

    /// Aborts multipart uploads of blobs that began more than `age` ago: what a crash mid-upload leaves behind.
    /// Returns how many it aborted.
    @discardableResult
    public func abortStaleUploads(olderThan age: TimeInterval) async throws -> Int {
        try await storage.abortStaleUploads(olderThan: age)
    }
}
