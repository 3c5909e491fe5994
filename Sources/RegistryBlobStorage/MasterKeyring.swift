import Foundation
import RegistryCore
import Synchronization

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

/// The master keys that wrap the per-blob data keys, one of them primary (used for new blobs).
///
/// Keys come from the key file (`DATA_DIR/keys/master.json`, see `MasterKeyFile`) and, when set, from the
/// environment variable `REGISTRY_MASTER_KEY` (base64 of 32 bytes), which is then the primary. A running store
/// picks up a rotated key file without a restart: `primary()` re-reads the file when it changed (checked at most
/// once a second), and `key(id:)` re-reads it when asked for an id it does not hold.
public final class MasterKeyring: Sendable {
    /// The environment variable holding an operator-supplied primary master key.
    public static let environmentVariable = "REGISTRY_MASTER_KEY"

    private struct State {
        var keys: [String: MasterKey]
        var primaryId: String
        var fileStamp: FileStamp?
        var lastCheck: ContinuousClock.Instant
    }

    /// What identifies one version of the key file; the file is replaced by rename, so the inode changes too.
    private struct FileStamp: Equatable {
        var inode: UInt64
        var modified: Int64
        var size: Int64
    }

    private let keyFile: String?
    private let environmentKey: MasterKey?
    private let state: Mutex<State>

    /// Opens the keyring of `keyFile`, creating the file with a fresh primary key (mode 0600) when it does not
    /// exist and the environment supplies no key.
    ///
    /// Throws `INVALID_ARGUMENT` when `REGISTRY_MASTER_KEY` is not base64 of 32 bytes, `INTERNAL` when the key
    /// file cannot be read or written.
    public static func open(
        keyFile: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> MasterKeyring {
        let environmentKey = try environment[environmentVariable].map { try MasterKey(environmentValue: $0) }
        if environmentKey == nil, try MasterKeyFile.load(from: keyFile) == nil {
            try MasterKeyFile(generating: ()).write(to: keyFile)
        }
        return try MasterKeyring(keyFile: keyFile, environmentKey: environmentKey)
    }

    /// A keyring that only holds `keys`, without a file; the first key is primary unless `primary` says otherwise.
    public init(keys: [MasterKey], primary: String? = nil) throws {
        guard let first = keys.first else { throw RegistryError.invalidArgument("A keyring needs at least one key.") }
        self.keyFile = nil
        self.environmentKey = nil
        let byId = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        state = Mutex(State(keys: byId, primaryId: primary ?? first.id, fileStamp: nil, lastCheck: .now))
    }

    /// A keyring that holds the keys of `file` (and `extra`, when given), without watching any file: what a backup
    /// holds, checked on its own.
    public convenience init(file: MasterKeyFile, adding extra: MasterKey? = nil) throws {
        try self.init(keys: try file.masterKeys() + (extra.map { [$0] } ?? []), primary: file.primary)
    }

    /// The key `REGISTRY_MASTER_KEY` holds in `environment`, nil when it is unset. Throws `INVALID_ARGUMENT` when it
    /// is not base64 of 32 bytes.
    public static func environmentKey(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> MasterKey? {
        try environment[environmentVariable].map { try MasterKey(environmentValue: $0) }
    }

    private init(keyFile: String, environmentKey: MasterKey?) throws {
        self.keyFile = keyFile
        self.environmentKey = environmentKey
        let (keys, primaryId, stamp) = try Self.read(keyFile: keyFile, environmentKey: environmentKey)
        state = Mutex(State(keys: keys, primaryId: primaryId, fileStamp: stamp, lastCheck: .now))
    }

    /// The key that wraps the data keys of new blobs.
    public func primary() throws -> MasterKey {
        try reloadIfChanged(force: false)
        return try state.withLock { state in
            guard let key = state.keys[state.primaryId] else {
                throw RegistryError(
                    .masterKeyUnknown, "The primary master key '\(state.primaryId)' is not in the keyring.",
                    details: ["keyId": .string(state.primaryId)])
            }
            return key
        }
    }

    /// The key with `id`; re-reads the key file once when the id is unknown. Throws `MASTER_KEY_UNKNOWN`.
    public func key(id: String) throws -> MasterKey {
        if let key = state.withLock({ $0.keys[id] }) { return key }
        try reloadIfChanged(force: true)
        guard let key = state.withLock({ $0.keys[id] }) else {
            throw RegistryError(
                .masterKeyUnknown,
                "A blob is sealed under master key '\(id)', which the keyring does not hold; restore that key to the key file.",
                details: ["keyId": .string(id)])
        }
        return key
    }

    /// The ids of every key held, primary first.
    public var keyIds: [String] {
        state.withLock { state in [state.primaryId] + state.keys.keys.filter { $0 != state.primaryId }.sorted() }
    }

    private func reloadIfChanged(force: Bool) throws {
        guard let keyFile else { return }
        let now = ContinuousClock.now
        let due = state.withLock { state in
            guard force || now - state.lastCheck >= .seconds(1) else { return false }
            state.lastCheck = now
            return true
        }
        guard due else { return }
        let stamp = Self.stamp(of: keyFile)
        guard force || stamp != state.withLock({ $0.fileStamp }) else { return }
        let (keys, primaryId, newStamp) = try Self.read(keyFile: keyFile, environmentKey: environmentKey)
        state.withLock { state in
            state.keys = keys
            state.primaryId = primaryId
            state.fileStamp = newStamp
        }
    }

    private static func read(
        keyFile: String, environmentKey: MasterKey?
    ) throws -> (keys: [String: MasterKey], primary: String, stamp: FileStamp?) {
        let stamp = stamp(of: keyFile)
        var keys: [String: MasterKey] = [:]
        var primaryId: String?
        if let file = try MasterKeyFile.load(from: keyFile) {
            for key in try file.masterKeys() { keys[key.id] = key }
            primaryId = file.primary
        }
        if let environmentKey {
            keys[environmentKey.id] = environmentKey
            primaryId = environmentKey.id
        }
        guard let primaryId else {
            throw RegistryError(.internalError, "There is no master key: \(keyFile) is missing.")
        }
        return (keys, primaryId, stamp)
    }

    private static func stamp(of path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
            let modified = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        #else
            let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        #endif
        return FileStamp(inode: UInt64(info.st_ino), modified: modified, size: Int64(info.st_size))
    }
}

/// One 256-bit master key and the id recorded in the header of every blob whose data key it wraps.
public struct MasterKey: Sendable {
    public let id: String
    public let key: SymmetricKey
    public let createdAt: Date

    public init(id: String, key: SymmetricKey, createdAt: Date = Timestamp.now()) {
        self.id = id
        self.key = key
        self.createdAt = createdAt
    }

    /// A fresh random key with a fresh random id.
    public static func generate() -> MasterKey {
        var random = SystemRandomNumberGenerator()
        let suffix = (0..<8).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        return MasterKey(id: "mk-" + Hex.encode(suffix), key: SymmetricKey(size: .bits256))
    }

    /// The key given as `REGISTRY_MASTER_KEY`; its id derives from the key, so it is stable across restarts.
    init(environmentValue: String) throws {
        let trimmed = environmentValue.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: trimmed), data.count == 32 else {
            throw RegistryError.invalidArgument(
                "\(MasterKeyring.environmentVariable) must be the base64 encoding of exactly 32 random bytes.")
        }
        let fingerprint = Hex.encode(SHA256.hash(data: data).prefix(8))
        self.init(id: "env-" + fingerprint, key: SymmetricKey(data: data))
    }

    /// The key bytes in base64, as the key file stores them.
    var base64: String {
        key.withUnsafeBytes { Data($0).base64EncodedString() }
    }
}
