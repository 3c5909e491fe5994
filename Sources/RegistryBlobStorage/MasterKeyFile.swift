import Foundation
import NIOCore
import RegistryCore

import enum Crypto.AES
import struct Crypto.SHA256
import struct Crypto.SymmetricKey

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The master key file (`DATA_DIR/keys/master.json`, mode 0600): every master key, base64, and the primary's id.
///
/// ```json
/// {"formatVersion": 1, "primary": "mk-…", "keys": [{"id": "mk-…", "key": "<base64>", "createdAt": "…"}]}
/// ```
/// Writes are atomic (temporary file, fsync, rename, fsync of the directory), so a reader sees the old or the new
/// file, never a mix.
public struct MasterKeyFile: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var id: String
        public var key: String
        public var createdAt: Date
    }

    public var formatVersion: Int
    public var primary: String
    public var keys: [Entry]

    /// A file holding one freshly generated primary key.
    public init(generating: Void) {
        self.init(primary: MasterKey.generate())
    }

    /// A file holding `key` as its only, primary key.
    public init(primary key: MasterKey) {
        formatVersion = 1
        primary = key.id
        keys = [Entry(key)]
    }

    /// The file at `path`, or nil when there is none. Throws `INTERNAL` when it cannot be read or parsed.
    public static func load(from path: String) throws -> MasterKeyFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let file = try JSONCoding.decode(MasterKeyFile.self, from: data)
            _ = try file.masterKeys()
            return file
        } catch let error as RegistryError {
            throw RegistryError(.internalError, "The master key file \(path) is invalid: \(error.message)")
        } catch {
            throw RegistryError(.internalError, "The master key file \(path) cannot be read: \(error).")
        }
    }

    /// Adds a fresh key and makes it the primary; older keys stay, so blobs sealed under them remain readable.
    @discardableResult
    public mutating func rotate() -> MasterKey {
        let key = MasterKey.generate()
        keys.append(Entry(key))
        primary = key.id
        return key
    }

    /// Adds `key` (for instance the environment's key) unless a key with its id is already present.
    public mutating func add(_ key: MasterKey) {
        guard !keys.contains(where: { $0.id == key.id }) else { return }
        keys.append(Entry(key))
    }

    /// Brings this file (a backup's copy) up to date with `newer` (the live file): every key of `newer` that is
    /// missing here is added, no key here is ever dropped (a blob copied earlier may still be sealed under a key
    /// the live file has since retired), and `newer`'s primary becomes the primary. Returns the ids added.
    ///
    /// Throws `INVALID_ARGUMENT` when one id names different key bytes in the two files: one of them is not the
    /// key its blobs were sealed under, and neither may silently replace the other.
    @discardableResult
    public mutating func merge(_ newer: MasterKeyFile) throws -> [String] {
        var added: [String] = []
        for entry in newer.keys {
            if let existing = keys.first(where: { $0.id == entry.id }) {
                guard Data(base64Encoded: existing.key) == Data(base64Encoded: entry.key) else {
                    throw RegistryError.invalidArgument(
                        "Master key '\(entry.id)' has different key bytes in the two key files; refusing to merge them."
                    )
                }
                continue
            }
            keys.append(entry)
            added.append(entry.id)
        }
        primary = newer.primary
        return added
    }

    /// Removes the key with `id`. Throws `INVALID_ARGUMENT` for the primary key or an unknown id.
    public mutating func remove(id: String) throws {
        guard id != primary else { throw RegistryError.invalidArgument("The primary key '\(id)' cannot be removed.") }
        guard let index = keys.firstIndex(where: { $0.id == id }) else {
            throw RegistryError.invalidArgument("The key file holds no key '\(id)'.")
        }
        keys.remove(at: index)
    }

    /// The decoded keys. Throws `INVALID_ARGUMENT` for a key that is not base64 of 32 bytes or a missing primary.
    public func masterKeys() throws -> [MasterKey] {
        let decoded = try keys.map { entry in
            guard let data = Data(base64Encoded: entry.key), data.count == 32 else {
                throw RegistryError.invalidArgument("Key '\(entry.id)' is not base64 of 32 bytes.")
            }
            guard entry.id.utf8.count <= BlobFileHeader.maxKeyIdBytes, !entry.id.isEmpty else {
                throw RegistryError.invalidArgument("Key id '\(entry.id)' is empty or longer than 32 bytes.")
            }
            return MasterKey(id: entry.id, key: SymmetricKey(data: data), createdAt: entry.createdAt)
        }
        guard decoded.contains(where: { $0.id == primary }) else {
            throw RegistryError.invalidArgument("The primary key '\(primary)' is not among the keys.")
        }
        return decoded
    }

    /// Writes the file atomically with mode 0600, creating its directory (mode 0700) when needed.
    public func write(to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RegistryError(.internalError, "Cannot create the key directory \(directory): \(error).")
        }
        let encoder = JSONCoding.encoder
        encoder.outputFormatting.insert(.prettyPrinted)
        let bytes: Data
        do {
            bytes = try encoder.encode(self)
        } catch {
            throw RegistryError(.internalError, "Cannot encode the key file: \(error).")
        }
        let temporary = "\(path).tmp-\(UUID().uuidString)"
        let fd = try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        var isOpen = true
        do {
            try POSIXFile.writeAll(fd, ByteBuffer(bytes: Array(bytes)), path: temporary)
            try POSIXFile.sync(fd, path: temporary)
            _ = close(fd)
            isOpen = false
            try POSIXFile.rename(temporary, to: path)
            POSIXFile.syncDirectory(directory)
        } catch {
            if isOpen { _ = close(fd) }
            try? POSIXFile.unlink(temporary)
            throw error
        }
    }
}

extension MasterKeyFile.Entry {
    init(_ key: MasterKey) {
        self.init(id: key.id, key: key.base64, createdAt: key.createdAt)
    }
}
