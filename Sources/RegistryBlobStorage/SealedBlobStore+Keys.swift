import Foundation
import RegistryCore

/// What `SealedBlobStore.rewrap()` did.
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

extension SealedBlobStore {
    /// How many blobs each master key id wraps, read from the headers only (the first 128 bytes of each object,
    /// `concurrency` at a time, never the payload); `nil` counts headers that are not valid. What `registry keys
    /// list` and `keys retire` scan.
    public func keyUsage(concurrency: Int = 16) async throws -> [String?: Int] {
        let digests = try await list()
        var usage: [String?: Int] = [:]
        try await withThrowingTaskGroup(of: (found: Bool, keyId: String?).self) { group in
            var pending = digests.makeIterator()
            let keyId = { @Sendable (digest: Digest) async throws -> (found: Bool, keyId: String?) in
                // An object deleted after it was listed is not counted.
                guard let (bytes, _) = try await self.headerBytes(digest) else { return (false, nil) }
                return (true, (try? BlobFileHeader(parsing: bytes))?.keyId)
            }
            for _ in 0..<max(concurrency, 1) {
                guard let digest = pending.next() else { break }
                group.addTask { try await keyId(digest) }
            }
            while let header = try await group.next() {
                if header.found { usage[header.keyId, default: 0] += 1 }
                if let digest = pending.next() { group.addTask { try await keyId(digest) } }
            }
        }
        return usage
    }

    /// Checks a blob's header the cheap way, reading its first 128 bytes: that it is valid, that the object has the
    /// size it implies, and, with `keys`, that its data key unwraps (see `BlobHeaderCheck`). The payload is not
    /// read. What `registry backup` and `restore` check.
    public func checkHeader(of digest: Digest, keys: MasterKeyring?) async throws -> BlobHeaderCheck {
        guard let (bytes, info) = try await headerBytes(digest) else { return .missing }
        return BlobHeaderCheck(header: bytes, size: info.size, keys: keys)
    }
}

extension SealedBlobStore where Storage: PrefixRewritableStorage {
    /// Re-wraps every blob's data key under the keyring's current primary master key, rewriting only headers, so
    /// that older master keys can be retired. Segments are untouched (they do not authenticate the key fields),
    /// and so is each object's modification time, so garbage collection's grace window is unaffected. Safe to run
    /// while the server serves.
    public func rewrap() async throws -> RewrapReport {
        let primary = try keyring.primary()
        var report = RewrapReport(rewrapped: 0, unchanged: 0, failed: [:])
        for digest in try await list() {
            do {
                if try await rewrapHeader(of: digest, under: primary) {
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

    /// Returns whether the header changed.
    private func rewrapHeader(of digest: Digest, under primary: MasterKey) async throws -> Bool {
        var attempt = 0
        while true {
            attempt += 1
            guard let (header, info) = try await readHeader(digest), header.keyId != primary.id else { return false }
            let dataKey = try header.dataKey(using: keyring.key(id: header.keyId))
            var rewrapped = header
            rewrapped.keyId = primary.id
            rewrapped.wrappedKey = try BlobFileHeader.wrap(dataKey, under: primary)
            do {
                return try await storage.rewritePrefix(
                    of: key(of: digest), with: rewrapped.encoded, ifVersion: info.version)
            } catch is ObjectVersionChanged where attempt < 3 {
                continue  // a concurrent put replaced the blob: look at the new one
            }
        }
    }
}
