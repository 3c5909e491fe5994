import ArgumentParser
import Foundation
import RegistryCore
import RegistryFileStore
import RegistrySQLite

/// `registry keys …`: signing key pairs, and the master keys that encrypt blobs at rest.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Generate signing keys and manage the master keys that encrypt blobs.",
        subcommands: [Generate.self, Rotate.self, List.self, Retire.self])

    /// `registry keys generate`: a signing key pair in FILE (private, 0600) and FILE.pub.
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a signing key pair: the private key in FILE (mode 0600), the public key in FILE.pub.")

        @Option(help: "ed25519 or p256.")
        var algorithm: String = "ed25519"

        @Option(help: "Where to write the private key; the public key goes to this path plus '.pub'.")
        var out: String

        @Flag(help: "Replace existing files.")
        var force = false

        func validate() throws {
            guard PublicKey.Algorithm(rawValue: algorithm) != nil else {
                throw ValidationError("--algorithm must be ed25519 or p256.")
            }
            if !force,
                FileManager.default.fileExists(atPath: out) || FileManager.default.fileExists(atPath: out + ".pub")
            {
                throw ValidationError("\(out) or \(out).pub exists; pass --force to replace it.")
            }
        }

        func run() async throws {
            let key = SigningKey.generate(PublicKey.Algorithm(rawValue: algorithm)!)
            try Self.write(key.privateText + "\n", to: out, mode: 0o600)
            try Self.write(key.publicKey.description + "\n", to: out + ".pub", mode: 0o644)
            print(key.publicKey.description)
        }

        /// Writes `text` to a fresh file created with `mode`, so a private key is never readable by others.
        static func write(_ text: String, to path: String, mode: Int) throws {
            try? FileManager.default.removeItem(atPath: path)
            guard
                FileManager.default.createFile(
                    atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
            else {
                throw RegistryError(.internalError, "Cannot write \(path).")
            }
        }
    }

    /// `registry keys rotate`: a new primary master key; old keys stay so old blobs remain readable.
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new primary master key to DATA_DIR/keys/master.json; a running server picks it up.",
            discussion: """
                Blobs written from now on are sealed under the new key; older blobs stay readable under their key. \
                With --rewrap, every blob's data key is re-wrapped under the new key (only headers are rewritten), \
                after which old keys can be retired with 'registry keys retire'. When REGISTRY_MASTER_KEY is set, \
                it is copied into the key file first, so blobs sealed under it stay readable once it is unset.
                """)

        @Option(help: "The server's data directory.")
        var dataDir = "./registry-data"

        @Flag(help: "Re-wrap every existing blob's data key under the new primary key.")
        var rewrap = false

        @OptionGroup(title: "Blobs in S3")
        var s3: S3Options

        func validate() throws {
            if rewrap && s3.s3Bucket != nil {
                throw ValidationError(
                    "--rewrap re-wraps blob files under --data-dir only; objects in S3 stay sealed under their key "
                        + "(rotate without --rewrap, and keep the old key while 'keys list --s3-bucket …' counts blobs under it)."
                )
            }
        }

        func run() async throws {
            let keyFile = KeysCommand.keyFile(dataDir)
            let environment = ProcessInfo.processInfo.environment
            let environmentKey = try environment[MasterKeyring.environmentVariable].map { _ in
                try MasterKeyring.open(keyFile: keyFile, environment: environment).primary()
            }
            var file: MasterKeyFile
            if let existing = try MasterKeyFile.load(from: keyFile) {
                file = existing
            } else if let environmentKey {
                file = MasterKeyFile(primary: environmentKey)
            } else {
                throw RegistryError(
                    .notFound, "There is no key file at \(keyFile); the server creates it when it first starts.")
            }
            if let environmentKey {
                file.add(environmentKey)
                FileHandle.standardError.write(
                    Data(
                        "note: \(MasterKeyring.environmentVariable) is set and stays the primary key while it is; unset it to use the rotated key.\n"
                            .utf8))
            }
            let key = file.rotate()
            try file.write(to: keyFile)
            print("new primary master key \(key.id) (\(file.keys.count) keys in \(keyFile))")
            guard rewrap else { return }
            let keyring = try MasterKeyring.open(keyFile: keyFile, environment: [:])
            let store = try FileSystemBlobStore(root: KeysCommand.blobRoot(dataDir), keyring: keyring)
            let report = try await store.rewrap()
            print("re-wrapped \(report.rewrapped) blobs, \(report.unchanged) already under \(key.id)")
            for (digest, reason) in report.failed.sorted(by: { $0.key < $1.key }) {
                print("failed \(digest): \(reason)")
            }
            if !report.failed.isEmpty { throw ExitCode.failure }
        }
    }

    /// `registry keys list`: the master keys and how many blobs each one wraps.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the master keys and the blobs under each.")

        @Option(help: "The server's data directory.")
        var dataDir = "./registry-data"

        @OptionGroup(title: "Blobs in S3")
        var s3: S3Options

        func run() async throws {
            let keyFile = KeysCommand.keyFile(dataDir)
            guard let file = try MasterKeyFile.load(from: keyFile) else {
                throw RegistryError(.notFound, "There is no key file at \(keyFile).")
            }
            let keyring = try MasterKeyring.open(keyFile: keyFile, environment: [:])
            let usage = try await KeysCommand.keyUsage(dataDir: dataDir, s3: s3, keyring: keyring)
            for entry in file.keys {
                let primary = entry.id == file.primary ? "\tprimary" : ""
                print("\(entry.id)\t\(Timestamp.format(entry.createdAt))\t\(usage[entry.id] ?? 0) blobs\(primary)")
            }
            for (id, count) in usage where !file.keys.contains(where: { $0.id == id }) {
                print("\(id ?? "(unreadable header)")\tnot in the key file\t\(count) blobs")
            }
        }
    }

    /// `registry keys retire`: removes a master key that no blob uses any more.
    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a master key from the key file once no blob is sealed under it (see 'rotate --rewrap').",
            discussion: """
                Every blob's header is read (for blobs in S3, pass the bucket options 'serve' takes: the bucket is \
                scanned, one ranged GET of each object's 128-byte header). A backup keeps its own copy of retired keys.
                """)

        @Argument(help: "The id of the key to remove.")
        var id: String

        @Option(help: "The server's data directory.")
        var dataDir = "./registry-data"

        @OptionGroup(title: "Blobs in S3")
        var s3: S3Options

        func run() async throws {
            let keyFile = KeysCommand.keyFile(dataDir)
            guard var file = try MasterKeyFile.load(from: keyFile) else {
                throw RegistryError(.notFound, "There is no key file at \(keyFile).")
            }
            let keyring = try MasterKeyring.open(keyFile: keyFile, environment: [:])
            let usage = try await KeysCommand.keyUsage(dataDir: dataDir, s3: s3, keyring: keyring)
            if let count = usage[id], count > 0 {
                let remedy =
                    s3.s3Bucket == nil
                    ? "run 'registry keys rotate --rewrap' first"
                    : "objects in S3 cannot be re-wrapped yet; keep the key"
                throw RegistryError.invalidArgument("\(count) blobs are still sealed under \(id); \(remedy).")
            }
            if let count = usage[nil], count > 0 {
                throw RegistryError.invalidArgument(
                    "\(count) blobs have a header that cannot be read, so whether they need \(id) is unknown; "
                        + "see 'registry keys list'.")
            }
            if s3.s3Bucket == nil, usage.isEmpty {
                // No blob file at all: if the registry references blobs, they are elsewhere (an S3 bucket), and
                // retiring on the strength of an empty directory would lock every one of them out.
                let referenced = try await KeysCommand.referencedBlobCount(dataDir: dataDir)
                guard referenced == 0 else {
                    throw RegistryError.invalidArgument(
                        "The registry references \(referenced) blobs but \(KeysCommand.blobRoot(dataDir)) holds none: "
                            + "if its blobs are in S3, pass --s3-bucket (and --s3-endpoint, --s3-prefix) as to 'serve'."
                    )
                }
            }
            try file.remove(id: id)
            try file.write(to: keyFile)
            print("retired \(id)")
        }
    }

    static func keyFile(_ dataDir: String) -> String { dataDir + "/keys/master.json" }

    /// How many blobs each master key wraps: the objects of the S3 bucket when `s3` names one, otherwise the blob
    /// files under `dataDir`. `nil` counts unreadable headers.
    static func keyUsage(dataDir: String, s3: S3Options, keyring: MasterKeyring) async throws -> [String?: Int] {
        if let store = try s3.store(keyring: keyring) { return try await store.keyUsage() }
        return try await FileSystemBlobStore(root: blobRoot(dataDir), keyring: keyring).keyUsage()
    }

    /// How many blobs the metadata of `dataDir` references (0 when it has no database).
    static func referencedBlobCount(dataDir: String) async throws -> Int {
        let database = DataDirectory(dataDir).database
        guard FileManager.default.fileExists(atPath: database) else { return 0 }
        let store = try SQLiteMetadataStore(path: database)
        defer { try? store.close() }
        return try await store.referencedDigests().count
    }
    static func blobRoot(_ dataDir: String) -> String { dataDir + "/blobs" }
}
