import Foundation
import NIOPosix
// Callers of the file-system store name its keyring and header checks, which live with the sealed layer.
@_exported import RegistryBlobStorage
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The blob store of a data directory: sealed blobs (`SealedBlobStore`) in files laid out like an OCI registry,
/// `root/blobs/sha256/ab/<hex>`.
public typealias FileSystemBlobStore = SealedBlobStore<FileSystemObjectStorage>

extension SealedBlobStore where Storage == FileSystemObjectStorage {
    /// Uploads older than this are left over from a crash and removed at start-up.
    public static var staleUploadAge: TimeInterval { FileSystemObjectStorage.staleUploadAge }

    /// Opens (creating when needed) a store under `root` whose data keys `keyring` wraps, and removes stale uploads;
    /// see `SealedBlobStore.init` for the parameters.
    public convenience init(
        root: String, keyring: MasterKeyring, segmentSize: Int = 1 << 20, threadPool: NIOThreadPool = .singleton,
        onCorruption: @escaping @Sendable (RegistryError) -> Void = BlobCorruption.reportToStandardError
    ) throws {
        self.init(
            storage: try FileSystemObjectStorage(root: root, threadPool: threadPool), layout: .sharded,
            keyring: keyring, segmentSize: segmentSize, spoolDirectory: root + "/spool", onCorruption: onCorruption)
    }

    /// A store whose keyring lives in `root/keys/master.json` (created on first use); for tests and tools.
    public convenience init(root: String, pieceSize: Int = 1 << 20, threadPool: NIOThreadPool = .singleton) throws {
        let keyring = try MasterKeyring.open(keyFile: root + "/keys/master.json", environment: [:])
        try self.init(root: root, keyring: keyring, segmentSize: pieceSize, threadPool: threadPool)
    }

    /// The directory the store keeps its files under.
    public var root: String { storage.root }

    /// The path a blob lives at once it is complete.
    public func path(of digest: Digest) -> String {
        storage.path(of: key(of: digest))
    }

    /// Checks the blob file at `path` the cheap way: its 128-byte header, the file's size against the one the header
    /// implies, and, with `keys`, its data key (see `BlobHeaderCheck`). The segments are not decrypted. For blob
    /// files outside a store, such as a backup's.
    public static func checkHeader(ofFile path: String, keys: MasterKeyring?) -> BlobHeaderCheck {
        do {
            guard let bytes = try headerBytes(ofFile: path), let size = try POSIXFile.size(path) else {
                return .missing
            }
            return BlobHeaderCheck(header: bytes, size: size, keys: keys)
        } catch {
            return .malformed(reason: (error as? RegistryError)?.message ?? "\(error)")
        }
    }

    /// The first 128 bytes of the blob file at `path` (fewer when it is shorter), nil when there is no file.
    public static func headerBytes(ofFile path: String) throws -> [UInt8]? {
        guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return nil }
        defer { _ = close(fd) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let count = try bytes.withUnsafeMutableBytes { try POSIXFile.read(fd, into: $0, offset: 0, path: path) }
        return Array(bytes[0..<count])
    }
}
