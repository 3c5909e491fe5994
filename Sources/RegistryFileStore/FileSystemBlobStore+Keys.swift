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
