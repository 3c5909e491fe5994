import Foundation
import RegistryCore

/// A dumb object store that only moves bytes under string keys: the driver `SealedBlobStore` runs on.
/// Implementations: `FileSystemObjectStorage`, `S3ObjectStorage`; every one passes `ObjectStorageConformance`.
///
/// Keys are relative paths of `/`-separated, non-empty components without `.` or `..` (for example
/// `blobs/sha256/ab/abcd…`). Drivers know nothing of digests, encryption or blob headers.
public protocol ObjectStorage: Sendable {
    /// Stores the bytes of `body` under `key`, replacing any object there.
    ///
    /// Atomic: readers see the previous object or the whole new one, never a part. When `body` throws or the task
    /// is cancelled before the body ends, nothing changes and nothing is left behind but what a crash-cleanup
    /// removes.
    func put(_ key: String, body: ByteStream) async throws

    /// The object under `key`, or nil when there is none: its info and the bytes of `range` (all of them when nil).
    ///
    /// `range` is clipped to the object: it yields fewer bytes when it runs past the end, none when it starts at or
    /// after it. With `ifVersion`, throws `ObjectVersionChanged` unless the object still has that version, so a
    /// caller can read one object in several requests without mixing two versions.
    func get(_ key: String, range: Range<Int64>?, ifVersion: String?) async throws -> StoredObject?

    /// What is known of the object under `key` without reading it, or nil when there is none.
    func head(_ key: String) async throws -> ObjectInfo?

    /// Removes the object under `key`; removing an absent object is not an error.
    func delete(_ key: String) async throws

    /// The key of every object whose key starts with `prefix`, in no particular order.
    func list(prefix: String) async throws -> [String]

    /// Sets the object's modification time (as `head` reports it) to now without changing its bytes or version;
    /// touching an absent object is not an error.
    func touch(_ key: String) async throws
}

/// What a driver knows of one stored object.
public struct ObjectInfo: Sendable, Equatable {
    /// The object's length in bytes.
    public var size: Int64
    /// Changes whenever a put replaces the object, not when it is touched or its prefix rewritten; opaque to
    /// callers (an entity tag, a device and inode).
    public var version: String
    /// When the object was last written or touched.
    public var modified: Date

    public init(size: Int64, version: String, modified: Date) {
        self.size = size
        self.version = version
        self.modified = modified
    }
}

/// An object being read: what it is, and a stream of the requested bytes.
public struct StoredObject: Sendable {
    public var info: ObjectInfo
    public var body: ByteStream

    public init(info: ObjectInfo, body: ByteStream) {
        self.info = info
        self.body = body
    }
}

/// Thrown by `ObjectStorage.get` when the object no longer has the version the caller pinned.
public struct ObjectVersionChanged: Error, Sendable {
    public let key: String

    public init(key: String) { self.key = key }
}

/// An object store that can replace the first bytes of an object in place, atomically for readers, keeping its
/// modification time: what re-wrapping blob keys under a new master key needs. The file system can (one write
/// inside the first sector); S3 cannot rewrite part of an object.
public protocol PrefixRewritableStorage: ObjectStorage {
    /// Overwrites the first `bytes.count` bytes of `key` if it still has `version`; returns false when the object
    /// is absent, throws `ObjectVersionChanged` when it was replaced.
    func rewritePrefix(of key: String, with bytes: [UInt8], ifVersion version: String) async throws -> Bool
}

extension ObjectStorage {
    /// Stores a small in-memory object.
    public func put(_ key: String, bytes: [UInt8]) async throws {
        try await put(key, body: .bytes(bytes))
    }

    /// Every byte of `key` (at most `maxBytes`), nil when absent.
    public func read(_ key: String, range: Range<Int64>? = nil, maxBytes: Int) async throws -> [UInt8]? {
        guard let object = try await get(key, range: range, ifVersion: nil) else { return nil }
        var buffer = try await object.body.collect(upTo: maxBytes)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Throws `INVALID_ARGUMENT` unless `key` is a relative path of non-empty components other than `.` and `..`.
    public static func validate(_ key: String) throws {
        let components = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw RegistryError(.invalidArgument, "'\(key)' is not a valid object key.")
        }
    }
}
