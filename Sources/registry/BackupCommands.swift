import ArgumentParser
import Foundation
import RegistryCore
import RegistryFileStore
import RegistryS3
import RegistrySQLite

/// `registry backup`: a consistent copy of an embedded registry's data directory, taken while it serves.
///
/// The backup's keys are brought up to date first (merged, never dropped: see `BackupKeys`), then the metadata is
/// snapshotted (SQLite online backup), then the blobs are copied. A blob's payload under a digest never changes,
/// but `keys rotate --rewrap` rewrites its 128-byte header, so a blob already in the backup is skipped only when its
/// size and its header are those of the live file (backups into the same directory are incremental). Every blob the
/// snapshot references is on disk when it is copied (garbage collection deletes only unreferenced ones). Before the
/// snapshot replaces the backup's previous database, the backup is checked: its audit chain verifies, every
/// referenced blob is present, well-formed, and its data key unwraps with the keys the backup will be read with.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up the embedded registry's data directory (it may keep running).",
        discussion: """
            Blobs stay encrypted in the backup. The master keys are not copied unless --include-keys is given (or the \
            backup already holds keys, which are then kept up to date): keep DATA_DIR/keys/master.json (or \
            REGISTRY_MASTER_KEY) somewhere else, or the backup cannot be read. The backup's key file only grows: a \
            key retired from the live registry stays in it while an older blob copy may need it. Every referenced \
            blob's header is checked to open with the backup's keys (without them: with the live keys, and the \
            report lists the key ids the backup needs). For blobs in S3, pass the bucket options 'serve' takes: the \
            objects are not copied (the bucket's versioning protects them), their headers are checked in the bucket.
            """)

    @Option(help: "The data directory of the registry to back up.")
    var dataDir = "./registry-data"

    @Option(help: "The backup directory (created; an earlier backup there is brought up to date).")
    var to: String

    @Flag(help: "Also copy the master keys (the key file, and REGISTRY_MASTER_KEY when set) into the backup.")
    var includeKeys = false

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Blobs in S3 (not copied: the bucket's headers are checked)")
    var s3: S3Options

    func run() async throws {
        let start = ContinuousClock.now
        let source = DataDirectory(dataDir)
        guard FileManager.default.fileExists(atPath: source.database) else {
            throw ValidationError("\(dataDir) holds no registry (no metadata.sqlite).")
        }
        let target = DataDirectory(to)
        try FileManager.default.createDirectory(atPath: target.blobs, withIntermediateDirectories: true)
        // Keys before blobs: the backup's key file only grows, so a blob copied below (perhaps re-wrapped under a
        // newer key) opens with it even if this run stops half-way. A backup that already holds keys keeps them
        // current, or its key file would not open the blobs copied now.
        let keepKeys = includeKeys || FileManager.default.fileExists(atPath: target.keyFile)
        var keysAdded: [String] = []
        if keepKeys { keysAdded += try BackupKeys.merge(from: source, into: target.keyFile) }
        // A snapshot under a temporary name, renamed into place only once it is complete and checked.
        let snapshot = target.database + ".partial"
        try? FileManager.default.removeItem(atPath: snapshot)
        try SQLiteMetadataStore.backup(from: source.database, to: snapshot)
        // Blobs in a bucket stay there (its versioning and replication protect them); only their headers are checked.
        let copy = s3.s3Bucket == nil ? try BlobCopy.run(from: source.blobs, to: target.blobs) : BlobCopy.Result()
        // Again: a key rotated in while the blobs were copied.
        if keepKeys { keysAdded += try BackupKeys.merge(from: source, into: target.keyFile) }
        let keys = try keepKeys ? BackupKeys.backed(target) : BackupKeys.live(source)
        let check: BackupCheck.Result
        do {
            check = try await BackupCheck.run(database: snapshot, blobs: try BlobHeaders(target, s3), keys: keys)
        } catch {
            // The previous backup's database stays: it still restores (blobs and keys only ever grew).
            try? FileManager.default.removeItem(atPath: snapshot)
            throw error
        }
        try BlobCopy.replace(target.database, with: snapshot)
        let summary =
            keepKeys
            ? "in the backup (\(keysAdded.isEmpty ? "none added" : "added " + keysAdded.joined(separator: ", ")))"
            : "not copied: keep \(source.keyFile) (or REGISTRY_MASTER_KEY) with keys "
                + "\(check.keysNeeded.joined(separator: ", ")) safe elsewhere"
        let report = BackupReport(
            directory: to, copy: copy, check: check, keys: summary, keysChecked: keys.description, start: start)
        try Output.print(report, json: json) { report in
            """
            backup in \(report.directory): \(report.blobsCopied) blobs copied (\(report.bytesCopied) bytes, \
            \(report.blobsReplaced) of them changed headers), \(report.blobsAlreadyPresent) already there; all \
            \(report.referencedBlobs) referenced blobs present and open with \(report.keysChecked); audit chain of \
            \(report.auditEntries) entries verifies; keys \(report.keys); \(String(format: "%.1f", report.seconds)) s
            """
        }
    }
}

/// `registry restore`: a backup made by `registry backup`, checked, into a new data directory.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into a new data directory, then check it.",
        discussion: """
            Start the registry on the restored directory with `registry serve --data-dir DIR`. Every referenced \
            blob's header must open with the backup's keys; a backup without keys is checked with the key file \
            already at DIR/keys/master.json and REGISTRY_MASTER_KEY, or, when there is neither, only for \
            well-formed headers, and the report names the keys to put in place.
            """)

    @Option(help: "The backup directory.")
    var from: String

    @Option(help: "The new data directory (must not hold a registry).")
    var dataDir: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup(title: "Blobs in S3 (the registry's bucket: its headers are checked, nothing is copied)")
    var s3: S3Options

    func run() async throws {
        let start = ContinuousClock.now
        let backup = DataDirectory(from)
        let target = DataDirectory(dataDir)
        guard FileManager.default.fileExists(atPath: backup.database) else {
            throw ValidationError("\(from) is not a backup (no metadata.sqlite).")
        }
        guard !FileManager.default.fileExists(atPath: target.database) else {
            throw ValidationError("\(dataDir) already holds a registry; restore into a new directory.")
        }
        // The backup is checked before anything is written, so a damaged one restores nothing.
        let backedUp = FileManager.default.fileExists(atPath: backup.keyFile)
        _ = try await BackupCheck.run(
            database: backup.database, blobs: try BlobHeaders(backup, s3),
            keys: backedUp ? BackupKeys.backed(backup) : BackupKeys.restored(target))
        try FileManager.default.createDirectory(atPath: target.blobs, withIntermediateDirectories: true)
        let copy = s3.s3Bucket == nil ? try BlobCopy.run(from: backup.blobs, to: target.blobs) : BlobCopy.Result()
        if backedUp {
            // Merged into a key file already put in place, if any: no key is ever dropped.
            try BackupKeys.merge(file: try BackupKeys.load(backup.keyFile), into: target.keyFile)
        }
        // The database goes last: a directory without it is not a registry, so an interrupted restore is visible.
        let partial = target.database + ".partial"
        try BlobCopy.copyFile(backup.database, to: partial, permissions: 0o600)
        try BlobCopy.replace(target.database, with: partial)
        let keys = try BackupKeys.restored(target)
        let check = try await BackupCheck.run(database: target.database, blobs: try BlobHeaders(target, s3), keys: keys)
        let summary =
            backedUp
            ? "restored"
            : keys.keyring == nil
                ? "not in the backup: put a key file holding \(check.keysNeeded.joined(separator: ", ")) at "
                    + "\(target.keyFile) or set REGISTRY_MASTER_KEY"
                : "not in the backup; the blobs open with \(keys.description)"
        let report = BackupReport(
            directory: dataDir, copy: copy, check: check, keys: summary, keysChecked: keys.description, start: start)
        try Output.print(report, json: json) { report in
            """
            restored into \(report.directory): \(report.blobsCopied) blobs (\(report.bytesCopied) bytes); all \
            \(report.referencedBlobs) referenced blobs present and open with \(report.keysChecked); audit chain of \
            \(report.auditEntries) entries verifies; keys \(report.keys); \(String(format: "%.1f", report.seconds)) s
            """
        }
    }
}

struct BackupReport: Encodable {
    var directory: String
    var blobsCopied: Int
    /// Of `blobsCopied`, those that replaced a copy with the same size but another header (re-wrapped).
    var blobsReplaced: Int
    var blobsAlreadyPresent: Int
    var bytesCopied: Int64
    var referencedBlobs: Int
    var auditEntries: Int
    var keys: String
    /// The master key ids the referenced blobs are sealed under.
    var keysNeeded: [String]
    /// What the blob headers were checked against.
    var keysChecked: String
    var seconds: Double

    init(
        directory: String, copy: BlobCopy.Result, check: BackupCheck.Result, keys: String, keysChecked: String,
        start: ContinuousClock.Instant
    ) {
        let elapsed = ContinuousClock.now - start
        self.directory = directory
        (blobsCopied, blobsReplaced, blobsAlreadyPresent, bytesCopied) =
            (copy.copied, copy.replaced, copy.present, copy.bytes)
        (referencedBlobs, auditEntries, keysNeeded) = (check.referenced, check.auditEntries, check.keysNeeded)
        self.keys = keys
        self.keysChecked = keysChecked
        seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// Where an embedded registry keeps its parts.
struct DataDirectory {
    let root: String
    init(_ root: String) { self.root = root }
    var database: String { root + "/metadata.sqlite" }
    var blobs: String { KeysCommand.blobRoot(root) + "/blobs/sha256" }
    var keyFile: String { KeysCommand.keyFile(root) }
}

/// The master keys of backups: merged into a backup, and the keyrings a backup's blobs are checked against.
enum BackupKeys {
    /// A keyring to check blob headers with, and what it is, for messages; no keyring: headers are only checked
    /// to be well-formed.
    struct Checked: CustomStringConvertible {
        var keyring: MasterKeyring?
        var description: String
    }

    /// Merges the live keys of `source` (its key file, and `REGISTRY_MASTER_KEY` when set) into the key file at
    /// `path`; returns the ids added.
    static func merge(from source: DataDirectory, into path: String) throws -> [String] {
        let environmentKey = try MasterKeyring.environmentKey()
        guard
            var live = try MasterKeyFile.load(from: source.keyFile) ?? environmentKey.map(MasterKeyFile.init(primary:))
        else {
            throw RegistryError(
                .notFound,
                "There is no key file at \(source.keyFile) and REGISTRY_MASTER_KEY is not set: no keys to copy.")
        }
        if let environmentKey { live.add(environmentKey) }
        return try merge(file: live, into: path)
    }

    /// Merges `file` into the key file at `path` (created when absent; written only when it changes).
    @discardableResult
    static func merge(file: MasterKeyFile, into path: String) throws -> [String] {
        guard let existing = try MasterKeyFile.load(from: path) else {
            try file.write(to: path)
            return file.keys.map(\.id)
        }
        var merged = existing
        let added = try merged.merge(file)
        if merged != existing { try merged.write(to: path) }
        return added
    }

    static func load(_ path: String) throws -> MasterKeyFile {
        guard let file = try MasterKeyFile.load(from: path) else {
            throw RegistryError(.notFound, "There is no key file at \(path).")
        }
        return file
    }

    /// The keys a backup holds, and nothing else: what a restore of it will have.
    static func backed(_ backup: DataDirectory) throws -> Checked {
        Checked(
            keyring: try MasterKeyring(file: try load(backup.keyFile)), description: "the keys in \(backup.keyFile)")
    }

    /// The live keys of `source`, for a backup made without its keys.
    static func live(_ source: DataDirectory) throws -> Checked {
        try available(source, what: "the live keys (\(source.keyFile), REGISTRY_MASTER_KEY)")
    }

    /// The keys a server on the restored directory `target` will have: its key file and `REGISTRY_MASTER_KEY`.
    static func restored(_ target: DataDirectory) throws -> Checked {
        try available(target, what: "\(target.keyFile) and REGISTRY_MASTER_KEY")
    }

    private static func available(_ directory: DataDirectory, what: String) throws -> Checked {
        let environmentKey = try MasterKeyring.environmentKey()
        if let file = try MasterKeyFile.load(from: directory.keyFile) {
            return Checked(keyring: try MasterKeyring(file: file, adding: environmentKey), description: what)
        }
        if let environmentKey {
            return Checked(keyring: try MasterKeyring(keys: [environmentKey]), description: "REGISTRY_MASTER_KEY")
        }
        return Checked(keyring: nil, description: "no keys (none available: headers checked for form only)")
    }
}

/// Checks a registry's metadata and blobs: its audit chain verifies, and every blob a version references is on
/// disk, has a valid header and the size it implies, and (given keys) its data key unwraps. The payload is not
/// decrypted: a blob's segments never change after it is written, only its header does (`rewrap`), and the header
/// is what a lost key breaks.
enum BackupCheck {
    struct Result {
        var referenced: Int
        var auditEntries: Int
        /// The master key ids the referenced blobs are sealed under, sorted.
        var keysNeeded: [String]
    }

    static func run(database: String, blobs: BlobHeaders, keys: BackupKeys.Checked) async throws -> Result {
        let store = try SQLiteMetadataStore(path: database)
        defer { try? store.close() }
        let audit = try await store.verifyAudit()
        guard audit.ok else {
            throw RegistryError(.internalError, "The audit chain in \(database) does not verify: \(audit).")
        }
        let referenced = try await store.referencedDigests().sorted { $0.hex < $1.hex }
        var missing: [Digest] = []
        var damaged: [(Digest, String)] = []
        var locked: [(Digest, BlobHeaderCheck)] = []
        var needed = Set<String>()
        for digest in referenced {
            let check = try await blobs.check(digest, keys: keys.keyring)
            if let id = check.keyId { needed.insert(id) }
            switch check {
            case .opens, .wellFormed: break
            case .missing: missing.append(digest)
            case .malformed(let reason): damaged.append((digest, reason))
            case .keyUnknown, .keyDoesNotOpen: locked.append((digest, check))
            }
        }
        if let first = missing.first {
            let hint = blobs.bucket == nil ? " (blobs in S3? pass --s3-bucket and the other options 'serve' takes)" : ""
            throw RegistryError(
                .artifactIncomplete,
                "\(missing.count) referenced blobs are missing from \(blobs), e.g. \(first)\(hint).",
                details: ["missing": .number(Double(missing.count)), "digest": .string(first.description)])
        }
        if let (digest, reason) = damaged.first {
            throw RegistryError(
                .blobCorrupt,
                "\(damaged.count) referenced blobs in \(blobs) are damaged; the first, \(digest): \(reason).",
                details: ["damaged": .number(Double(damaged.count)), "digest": .string(digest.description)])
        }
        if let (digest, check) = locked.first, let id = check.keyId {
            let why =
                check == .keyUnknown(keyId: id)
                ? "master key '\(id)', which \(keys.description) do not hold"
                : "master key '\(id)', whose copy in \(keys.description) does not open its data key"
            throw RegistryError(
                .masterKeyUnknown,
                "\(locked.count) referenced blobs do not open: the first, \(digest), is sealed under \(why). "
                    + "Restore that key to the key file (a backup keeps every key its blobs need: back up with --include-keys).",
                details: [
                    "blobs": .number(Double(locked.count)), "digest": .string(digest.description), "keyId": .string(id),
                ])
        }
        return Result(referenced: referenced.count, auditEntries: Int(audit.entries), keysNeeded: needed.sorted())
    }
}

/// Where the blobs of a registry or backup are, for checking their headers: blob files under a directory, or the
/// objects of the S3 bucket the registry serves from.
struct BlobHeaders: CustomStringConvertible {
    let directory: String
    let bucket: S3BlobStore?

    init(_ data: DataDirectory, _ s3: S3Options) throws {
        directory = data.blobs
        // The store's own keyring is never used here: headers are checked against the keys passed to `check`.
        bucket = try s3.store(keyring: try MasterKeyring(keys: [MasterKey.generate()]))
    }

    func check(_ digest: Digest, keys: MasterKeyring?) async throws -> BlobHeaderCheck {
        if let bucket { return try await bucket.checkHeader(of: digest, keys: keys) }
        return FileSystemBlobStore.checkHeader(ofFile: BlobCopy.path(of: digest.hex, under: directory), keys: keys)
    }

    var description: String {
        guard let bucket else { return directory }
        return "s3://\(bucket.storage.client.location.bucket)/\(bucket.storage.prefix)"
    }
}

/// Copies content-addressed blob files (`sha256/ab/<hex>`), skipping those already present unchanged.
enum BlobCopy {
    struct Result {
        var copied = 0
        /// Of `copied`, those that replaced an existing copy (same digest, another header).
        var replaced = 0
        var present = 0
        var bytes: Int64 = 0
    }

    static func path(of hex: String, under root: String) -> String {
        "\(root)/\(hex.prefix(2))/\(hex)"
    }

    static func run(from source: String, to target: String) throws -> Result {
        let manager = FileManager.default
        var result = Result()
        for shard in (try? manager.contentsOfDirectory(atPath: source)) ?? [] {
            for name in (try? manager.contentsOfDirectory(atPath: "\(source)/\(shard)")) ?? [] {
                guard name.hasPrefix(shard), (try? Digest(hex: name)) != nil else { continue }
                let from = "\(source)/\(shard)/\(name)"
                let to = path(of: name, under: target)
                let size = (try? manager.attributesOfItem(atPath: from)[.size] as? Int64) ?? nil
                let existing = (try? manager.attributesOfItem(atPath: to)[.size] as? Int64) ?? nil
                if let existing, existing == size, try sameHeader(from, to) {
                    result.present += 1
                    continue
                }
                try manager.createDirectory(atPath: "\(target)/\(shard)", withIntermediateDirectories: true)
                try copyFile(from, to: to, permissions: 0o644, flush: false)
                result.copied += 1
                if existing != nil { result.replaced += 1 }
                result.bytes += size ?? 0
            }
        }
        // One flush of everything instead of one per blob (thousands of them): the database, which makes the
        // copy count, is written only after this.
        sync()
        return result
    }

    /// Whether two copies of one blob have the same 128-byte header, which, with the same size, means the same file.
    ///
    /// Why the header and not the size or the modification time: under a digest, a blob's segments are fixed by
    /// the header (AES-GCM under the data key it wraps, with its nonce prefix, over plaintext the digest fixes),
    /// and the only change a stored blob ever sees is `keys rotate --rewrap` rewriting the header's key fields in
    /// place, which keeps both the size and (deliberately, for garbage collection's grace window) the modification
    /// time. A blob written again from scratch gets a fresh random nonce prefix and data key, so its header differs
    /// too. Comparing headers costs two 128-byte reads per blob and never misses a change; hashing the payload
    /// would read everything for nothing.
    static func sameHeader(_ first: String, _ second: String) throws -> Bool {
        guard let one = try FileSystemBlobStore.headerBytes(ofFile: first),
            let other = try FileSystemBlobStore.headerBytes(ofFile: second)
        else { return false }
        return one == other
    }

    /// Copies `source` to a temporary name beside `target`, flushes it (unless the caller flushes later), and
    /// renames it into place.
    static func copyFile(_ source: String, to target: String, permissions: Int, flush: Bool = true) throws {
        let manager = FileManager.default
        try manager.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = target + ".copying"
        try? manager.removeItem(atPath: temporary)
        do {
            try kernelCopy(source, to: temporary, permissions: permissions)
            if flush {
                let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
                try handle.synchronize()
                try handle.close()
            }
            try replace(target, with: temporary)
        } catch {
            try? manager.removeItem(atPath: temporary)
            throw RegistryError(.internalError, "Cannot copy \(source) to \(target): \(error).")
        }
    }

    /// Copies a file inside the kernel (`sendfile`), without moving its bytes through this process.
    private static func kernelCopy(_ source: String, to target: String, permissions: Int) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw RegistryError(.internalError, "Cannot open \(source): errno \(errno).") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(permissions))
        guard output >= 0 else { throw RegistryError(.internalError, "Cannot create \(target): errno \(errno).") }
        defer { close(output) }
        while true {
            let copied = sendfile(output, input, nil, 1 << 30)
            if copied == 0 { return }
            if copied < 0 {
                if errno == EINTR { continue }
                throw RegistryError(.internalError, "Cannot copy \(source): errno \(errno).")
            }
        }
    }

    /// Renames `temporary` over `target` (atomic on one file system).
    static func replace(_ target: String, with temporary: String) throws {
        guard rename(temporary, target) == 0 else {
            throw RegistryError(.internalError, "Cannot move \(temporary) to \(target): errno \(errno).")
        }
    }
}
