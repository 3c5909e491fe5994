import Foundation
import NIOCore
import NIOPosix
import RegistryBlobStorage
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An `ObjectStorage` in a local directory: the object `a/b/c` is the file `root/a/b/c`.
///
/// A put streams into `root/uploads/<uuid>`, is fsynced, then renamed into place and its directory fsynced, so a
/// key only ever names a complete object, even across a crash; `uploads/` is therefore no key space of its own, and
/// uploads older than `staleUploadAge` are left over from a crash and removed when the storage opens. Blocking file
/// calls run on `threadPool`.
public struct FileSystemObjectStorage: PrefixRewritableStorage {
    /// Uploads older than this are left over from a crash and removed when the storage opens.
    public static let staleUploadAge: TimeInterval = 3600
    /// How many bytes one read of a `get` stream returns at most.
    static let readPieceSize = 1 << 20

    public let root: String
    private let uploadsDirectory: String
    private let threadPool: NIOThreadPool

    /// Opens (creating when needed) the directory `root` and removes stale uploads.
    public init(root: String, threadPool: NIOThreadPool = .singleton) throws {
        self.root = root
        self.uploadsDirectory = root + "/uploads"
        self.threadPool = threadPool
        do {
            try FileManager.default.createDirectory(atPath: uploadsDirectory, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.internalError, "The blob store cannot create its directories under \(root): \(error).")
        }
        removeStaleUploads(olderThan: Self.staleUploadAge)
    }

    /// The file that holds the object `key`.
    public func path(of key: String) -> String {
        "\(root)/\(key)"
    }

    public func put(_ key: String, body: ByteStream) async throws {
        try Self.validate(key)
        guard !key.hasPrefix("uploads/") else {
            throw RegistryError(.invalidArgument, "'uploads/' holds uploads in flight, not objects.")
        }
        let temporary = "\(uploadsDirectory)/\(UUID().uuidString)"
        let fd = try await threadPool.runIfActive { try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL) }
        var isOpen = true
        do {
            for try await buffer in body {
                try await threadPool.runIfActive { try POSIXFile.writeAll(fd, buffer, path: temporary) }
            }
            try Task.checkCancellation()
            try await threadPool.runIfActive { try POSIXFile.sync(fd, path: temporary) }
            // Closed exactly once, here: a failing commit below must not close the number again, which by then
            // may belong to another thread's socket or database file.
            isOpen = false
            _ = close(fd)
            let final = path(of: key)
            try await threadPool.runIfActive { try Self.commit(temporary, to: final) }
        } catch {
            if isOpen { _ = close(fd) }
            try? POSIXFile.unlink(temporary)
            throw error
        }
    }

    public func get(_ key: String, range: Range<Int64>?, ifVersion: String?) async throws -> StoredObject? {
        try Self.validate(key)
        let path = path(of: key)
        let opened = try await threadPool.runIfActive { () throws -> (OpenFile, ObjectInfo)? in
            guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return nil }
            // The stream owns the descriptor, so a download in flight survives a concurrent delete or replace.
            let file = OpenFile(fd: fd, path: path)
            return (file, try Self.info(fd, path: path))
        }
        guard let (file, info) = opened else { return nil }
        if let ifVersion, ifVersion != info.version { throw ObjectVersionChanged(key: key) }
        let start = min(max(range?.lowerBound ?? 0, 0), info.size)
        let end = min(max(range?.upperBound ?? info.size, start), info.size)
        let threadPool = threadPool
        let body = ByteStream(makeNext: {
            var offset = start
            return {
                guard offset < end else { return nil }
                let length = Int(min(Int64(Self.readPieceSize), end - offset))
                let from = offset
                let piece = try await threadPool.runIfActive {
                    try POSIXFile.read(file.fd, offset: from, length: length, path: file.path)
                }
                // A file cut short under the reader ends the stream; the reader sees fewer bytes than asked for.
                guard piece.readableBytes > 0 else { return nil }
                offset += Int64(piece.readableBytes)
                return piece
            }
        })
        return StoredObject(info: info, body: body)
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try Self.validate(key)
        let path = path(of: key)
        return try await threadPool.runIfActive {
            guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return nil }
            defer { _ = close(fd) }
            return try Self.info(fd, path: path)
        }
    }

    public func delete(_ key: String) async throws {
        try Self.validate(key)
        try POSIXFile.unlink(path(of: key))
    }

    public func list(prefix: String) async throws -> [String] {
        // Only the directory the prefix names is walked, not the whole root.
        let directory = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        let base = directory.isEmpty ? root : "\(root)/\(directory)"
        let uploadsDirectory = uploadsDirectory
        return try await threadPool.runIfActive {
            guard let walker = FileManager.default.enumerator(atPath: base) else { return [] }
            var keys: [String] = []
            while let name = walker.nextObject() as? String {
                let key = directory.isEmpty ? name : "\(directory)/\(name)"
                guard key.hasPrefix(prefix), walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular,
                    "\(root)/\(key)".hasPrefix(uploadsDirectory + "/") == false
                else { continue }
                keys.append(key)
            }
            return keys
        }
    }

    public func touch(_ key: String) async throws {
        try Self.validate(key)
        try POSIXFile.touch(path(of: key))
    }

    /// Writes `bytes` at offset 0 in one write, which storage applies atomically inside the first 512-byte sector
    /// when it fits there, fsyncs, and puts the file's modification time back.
    public func rewritePrefix(of key: String, with bytes: [UInt8], ifVersion version: String) async throws -> Bool {
        try Self.validate(key)
        let path = path(of: key)
        return try await threadPool.runIfActive {
            guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDWR) else { return false }
            defer { _ = close(fd) }
            guard try Self.info(fd, path: path).version == version else { throw ObjectVersionChanged(key: key) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw POSIXFile.error(errno, "stat", path) }
            #if canImport(Darwin)
                var times = [info.st_atimespec, info.st_mtimespec]
            #else
                var times = [info.st_atim, info.st_mtim]
            #endif
            try bytes.withUnsafeBytes { try POSIXFile.writeAll(fd, $0, offset: 0, path: path) }
            try POSIXFile.sync(fd, path: path)
            _ = futimens(fd, &times)
            return true
        }
    }

    // MARK: Internals

    /// The size, version and modification time of an open file. The version is the file's identity (device and
    /// inode): a put renames a new file into place, while a touch or `rewritePrefix` changes the file itself.
    private static func info(_ fd: Int32, path: String) throws -> ObjectInfo {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw POSIXFile.error(errno, "stat", path) }
        #if canImport(Darwin)
            let modified = info.st_mtimespec
        #else
            let modified = info.st_mtim
        #endif
        return ObjectInfo(
            size: Int64(info.st_size), version: "\(info.st_dev):\(info.st_ino)",
            modified: Date(timeIntervalSince1970: Double(modified.tv_sec) + Double(modified.tv_nsec) / 1e9))
    }

    /// Moves a complete upload to its final path, replacing what is there.
    private static func commit(_ temporary: String, to final: String) throws {
        let directory = (final as NSString).deletingLastPathComponent
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            guard errno == ENOENT else { throw POSIXFile.error(errno, "create", directory) }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw RegistryError(.internalError, "The blob store cannot create \(directory): \(error).")
            }
        }
        try POSIXFile.rename(temporary, to: final)
        POSIXFile.syncDirectory(directory)
    }

    private func removeStaleUploads(olderThan age: TimeInterval) {
        let manager = FileManager.default
        let cutoff = Date().addingTimeInterval(-age)
        for name in (try? manager.contentsOfDirectory(atPath: uploadsDirectory)) ?? [] {
            let path = "\(uploadsDirectory)/\(name)"
            guard let modified = (try? manager.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                modified < cutoff
            else { continue }
            try? manager.removeItem(atPath: path)
        }
    }
}

/// An open file descriptor that is closed when the last stream reading it goes away.
private final class OpenFile: Sendable {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { _ = close(fd) }
}
