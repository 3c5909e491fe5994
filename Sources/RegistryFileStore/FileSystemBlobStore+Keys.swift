import Foundation
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension FileSystemBlobStore {
    /// What `rewrap()` did.
    public struct RewrapReport: Sendable, Equatable, Codable {
        /// Blobs whose data key is now wrapped by the primary key.
        public var rewrapped: Int
        /// Blobs already under the primary key.
        public var unchanged: Int
        /// Blobs whose header could not be read or unwrapped, with the reason; they were left as they were.
        public var failed: [String: String]

        public init(rewrapped: Int, unchanged: Int, failed: [String: String]) {
            self.rewrapped = rewrapped
            self.unchanged = unchanged
            self.failed = failed
        }
    }

    /// Re-wraps every blob's data key under the keyring's current primary master key, rewriting only headers, so
    /// that older master keys can be retired. Segments are untouched (they do not authenticate the key fields).
    ///
    /// Each header is replaced by one 128-byte write at offset 0, inside the file's first 512-byte sector, which
    /// storage writes atomically, then fsynced; the file's modification time is preserved so that garbage
    /// collection's grace window is unaffected. Safe to run while the server serves.
    public func rewrap() async throws -> RewrapReport {
        let primary = try keyring.primary()
        var report = RewrapReport(rewrapped: 0, unchanged: 0, failed: [:])
        for digest in try await list() {
            do {
                if try rewrapHeader(of: digest, under: primary) {
                    report.rewrapped += 1
                } else {
                    report.unchanged += 1
                }
            } catch {
                report.failed[digest.description] = (error as? RegistryError)?.message ?? "\(error)"
            }
        }
        return report
    }

    /// How many blobs each master key id wraps, read from the headers; `nil` counts unreadable headers.
    public func keyUsage() async throws -> [String?: Int] {
        var usage: [String?: Int] = [:]
        for digest in try await list() {
            let path = path(of: digest)
            guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { continue }
            defer { _ = close(fd) }
            let header = try? readHeader(fd, path: path, digest: digest)
            usage[header?.keyId, default: 0] += 1
        }
        return usage
    }

    /// Returns whether the header changed.
    private func rewrapHeader(of digest: Digest, under primary: MasterKey) throws -> Bool {
        let path = path(of: digest)
        guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDWR) else { return false }
        defer { _ = close(fd) }
        var header = try readHeader(fd, path: path, digest: digest)
        guard header.keyId != primary.id else { return false }
        let dataKey = try header.dataKey(using: keyring.key(id: header.keyId))
        header.keyId = primary.id
        header.wrappedKey = try BlobFileHeader.wrap(dataKey, under: primary)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw POSIXFile.error(errno, "stat", path) }
        #if canImport(Darwin)
            var times = [info.st_atimespec, info.st_mtimespec]
        #else
            var times = [info.st_atim, info.st_mtim]
        #endif
        try header.encoded.withUnsafeBytes { try POSIXFile.writeAll(fd, $0, offset: 0, path: path) }
        try POSIXFile.sync(fd, path: path)
        _ = futimens(fd, &times)
        return true
    }
}

/// What checking one stored blob's header found, without reading its payload: what a backup, a restore or a key
/// retirement can break is the header (its key fields), never the sealed segments.
public enum BlobHeaderCheck: Sendable, Equatable {
    /// The header is valid, the blob has the size it implies, and the data key unwraps under `keyId`.
    case opens(keyId: String)
    /// The header is valid and the blob has the size it implies; no keyring was given to try its key with.
    case wellFormed(keyId: String)
    /// There is no such blob.
    case missing
    /// The header is not valid, or the blob's size is not the one it implies.
    case malformed(reason: String)
    /// The keyring holds no key `keyId`.
    case keyUnknown(keyId: String)
    /// The keyring holds a key `keyId`, but the wrapped data key does not open with it.
    case keyDoesNotOpen(keyId: String)

    /// The key id the header names, when it could be read.
    public var keyId: String? {
        switch self {
        case .opens(let id), .wellFormed(let id), .keyUnknown(let id), .keyDoesNotOpen(let id): id
        case .missing, .malformed: nil
        }
    }

    /// Checks the first bytes of a stored blob (`header`, at least 128 of them) and its total `size` (nil: unknown,
    /// which is malformed); with `keys`, unwraps its data key (one AES-GCM open of 32 bytes).
    public init(header bytes: [UInt8], size: Int64?, keys: MasterKeyring?) {
        let header: BlobFileHeader
        do {
            header = try BlobFileHeader(parsing: bytes)
        } catch {
            self = .malformed(reason: "its header is invalid: \(error.reason)")
            return
        }
        guard size == header.fileSize else {
            self = .malformed(
                reason: "it holds \(size.map(String.init) ?? "?") bytes where its header implies \(header.fileSize)")
            return
        }
        guard let keys else {
            self = .wellFormed(keyId: header.keyId)
            return
        }
        guard let master = try? keys.key(id: header.keyId) else {
            self = .keyUnknown(keyId: header.keyId)
            return
        }
        guard (try? header.dataKey(using: master)) != nil else {
            self = .keyDoesNotOpen(keyId: header.keyId)
            return
        }
        self = .opens(keyId: header.keyId)
    }
}

extension FileSystemBlobStore {
    /// Checks the blob file at `path` the cheap way: its 128-byte header, the file's size against the one the header
    /// implies, and, with `keys`, its data key (see `BlobHeaderCheck`). The segments are not decrypted.
    public static func checkHeader(ofFile path: String, keys: MasterKeyring?) -> BlobHeaderCheck {
        let fd: Int32
        do {
            guard let opened = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return .missing }
            fd = opened
        } catch {
            return .malformed(reason: (error as? RegistryError)?.message ?? "\(error)")
        }
        defer { _ = close(fd) }
        do {
            var bytes = [UInt8](repeating: 0, count: BlobFileHeader.byteCount)
            let count = try bytes.withUnsafeMutableBytes { try POSIXFile.read(fd, into: $0, offset: 0, path: path) }
            let size = try POSIXFile.size(of: fd, path: path)
            return BlobHeaderCheck(header: Array(bytes[0..<count]), size: size, keys: keys)
        } catch {
            return .malformed(reason: (error as? RegistryError)?.message ?? "\(error)")
        }
    }

    /// The first `BlobFileHeader.byteCount` bytes of the file at `path` (fewer when it is shorter), nil when there
    /// is no file.
    public static func headerBytes(ofFile path: String) throws -> [UInt8]? {
        guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return nil }
        defer { _ = close(fd) }
        var bytes = [UInt8](repeating: 0, count: BlobFileHeader.byteCount)
        let count = try bytes.withUnsafeMutableBytes { try POSIXFile.read(fd, into: $0, offset: 0, path: path) }
        return Array(bytes[0..<count])
    }
}
