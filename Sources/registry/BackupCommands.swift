import ArgumentParser
import Foundation
import RegistryCore
import RegistrySQLite

/// `registry backup`: a consistent copy of an embedded registry's data directory, taken while it serves.
///
/// The metadata is snapshotted first (SQLite online backup), then the blobs are copied. Blobs are content-addressed
/// and never change, so a blob already in the backup is skipped (backups into the same directory are
/// incremental), and every blob the snapshot references is on disk when it is copied (garbage collection deletes
/// only unreferenced ones). The backup is checked before the command succeeds: every referenced blob is present.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up the embedded registry's data directory (it may keep running).",
        discussion: """
            Blobs stay encrypted in the backup. The master keys are not copied unless --include-keys is given: \
            keep DATA_DIR/keys/master.json (or REGISTRY_MASTER_KEY) somewhere else, or the backup cannot be read.
            """)

    @Option(help: "The data directory of the registry to back up.")
    var dataDir = "./registry-data"

    @Option(help: "The backup directory (created; an earlier backup there is brought up to date).")
    var to: String

    @Flag(help: "Also copy the master key file into the backup.")
    var includeKeys = false

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let start = ContinuousClock.now
        let source = DataDirectory(dataDir)
        guard FileManager.default.fileExists(atPath: source.database) else {
            throw ValidationError("\(dataDir) holds no registry (no metadata.sqlite).")
        }
        let target = DataDirectory(to)
        try FileManager.default.createDirectory(atPath: target.blobs, withIntermediateDirectories: true)
        // A snapshot under a temporary name, renamed into place only once it is complete.
        let snapshot = target.database + ".partial"
        try? FileManager.default.removeItem(atPath: snapshot)
        try SQLiteMetadataStore.backup(from: source.database, to: snapshot)
        let copy = try BlobCopy.run(from: source.blobs, to: target.blobs)
        try BlobCopy.replace(target.database, with: snapshot)
        var keys = "not copied: keep \(source.keyFile) (or REGISTRY_MASTER_KEY) safe elsewhere"
        if includeKeys {
            try BlobCopy.copyFile(source.keyFile, to: target.keyFile, permissions: 0o600)
            keys = "copied"
        }
        let check = try await BackupCheck.run(target)
        let report = BackupReport(directory: to, copy: copy, check: check, keys: keys, start: start)
        try Output.print(report, json: json) { report in
            """
            backup in \(report.directory): \(report.blobsCopied) blobs copied (\(report.bytesCopied) bytes), \
            \(report.blobsAlreadyPresent) already there; all \(report.referencedBlobs) referenced blobs present; \
            audit chain of \(report.auditEntries) entries verifies; keys \(report.keys); \
            \(String(format: "%.1f", report.seconds)) s
            """
        }
    }
}

/// `registry restore`: a backup made by `registry backup`, checked, into a new data directory.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into a new data directory, then check it.",
        discussion: "Start the registry on the restored directory with `registry serve --data-dir DIR`.")

    @Option(help: "The backup directory.")
    var from: String

    @Option(help: "The new data directory (must not hold a registry).")
    var dataDir: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

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
        _ = try await BackupCheck.run(backup)
        try FileManager.default.createDirectory(atPath: target.blobs, withIntermediateDirectories: true)
        let copy = try BlobCopy.run(from: backup.blobs, to: target.blobs)
        var keys = "restored"
        if FileManager.default.fileExists(atPath: backup.keyFile) {
            try BlobCopy.copyFile(backup.keyFile, to: target.keyFile, permissions: 0o600)
        } else {
            keys = "not in the backup: put the master key file at \(target.keyFile) or set REGISTRY_MASTER_KEY"
        }
        // The database goes last: a directory without it is not a registry, so an interrupted restore is visible.
        let partial = target.database + ".partial"
        try BlobCopy.copyFile(backup.database, to: partial, permissions: 0o600)
        try BlobCopy.replace(target.database, with: partial)
        let check = try await BackupCheck.run(target)
        let report = BackupReport(directory: dataDir, copy: copy, check: check, keys: keys, start: start)
        try Output.print(report, json: json) { report in
            """
            restored into \(report.directory): \(report.blobsCopied) blobs (\(report.bytesCopied) bytes); all \
            \(report.referencedBlobs) referenced blobs present; audit chain of \(report.auditEntries) entries \
            verifies; keys \(report.keys); \(String(format: "%.1f", report.seconds)) s
            """
        }
    }
}

struct BackupReport: Encodable {
    var directory: String
    var blobsCopied: Int
    var blobsAlreadyPresent: Int
    var bytesCopied: Int64
    var referencedBlobs: Int
    var auditEntries: Int
    var keys: String
    var seconds: Double

    init(
        directory: String, copy: (copied: Int, present: Int, bytes: Int64), check: (referenced: Int, auditEntries: Int),
        keys: String, start: ContinuousClock.Instant
    ) {
        let elapsed = ContinuousClock.now - start
        self.directory = directory
        (blobsCopied, blobsAlreadyPresent, bytesCopied) = copy
        (referencedBlobs, auditEntries) = check
        self.keys = keys
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

/// Checks a registry directory: its audit chain verifies and every blob a version references is on disk.
enum BackupCheck {
    static func run(_ directory: DataDirectory) async throws -> (referenced: Int, auditEntries: Int) {
        let store = try SQLiteMetadataStore(path: directory.database)
        defer { try? store.close() }
        let audit = try await store.verifyAudit()
        guard audit.ok else {
            throw RegistryError(
                .internalError, "The audit chain in \(directory.database) does not verify: \(audit).")
        }
        let referenced = try await store.referencedDigests()
        let missing = referenced.filter { digest in
            !FileManager.default.fileExists(atPath: BlobCopy.path(of: digest.hex, under: directory.blobs))
        }
        guard missing.isEmpty else {
            throw RegistryError(
                .artifactIncomplete,
                "\(missing.count) referenced blobs are missing from \(directory.blobs), e.g. \(missing.first!).",
                details: ["missing": .number(Double(missing.count))])
        }
        return (referenced.count, Int(audit.entries))
    }
}

/// Copies content-addressed blob files (`sha256/ab/<hex>`), skipping those already present with the same size.
enum BlobCopy {
    static func path(of hex: String, under root: String) -> String {
        "\(root)/\(hex.prefix(2))/\(hex)"
    }

    static func run(from source: String, to target: String) throws -> (copied: Int, present: Int, bytes: Int64) {
        let manager = FileManager.default
        var (copied, present, bytes) = (0, 0, Int64(0))
        for shard in (try? manager.contentsOfDirectory(atPath: source)) ?? [] {
            for name in (try? manager.contentsOfDirectory(atPath: "\(source)/\(shard)")) ?? [] {
                guard name.hasPrefix(shard), (try? Digest(hex: name)) != nil else { continue }
                let from = "\(source)/\(shard)/\(name)"
                let to = path(of: name, under: target)
                let size = (try? manager.attributesOfItem(atPath: from)[.size] as? Int64) ?? nil
                if let existing = try? manager.attributesOfItem(atPath: to)[.size] as? Int64, existing == size {
                    present += 1
                    continue
                }
                try manager.createDirectory(atPath: "\(target)/\(shard)", withIntermediateDirectories: true)
                try copyFile(from, to: to, permissions: 0o644, flush: false)
                copied += 1
                bytes += size ?? 0
            }
        }
        // One flush of everything instead of one per blob (thousands of them): the database, which makes the
        // copy count, is written only after this.
        sync()
        return (copied, present, bytes)
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
