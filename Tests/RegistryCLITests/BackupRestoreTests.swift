import Foundation
import RegistryClient
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Synchronization
import Testing

/// `registry backup` of a serving registry, incremental, then `registry restore` into a new directory that a new
/// server serves byte for byte; a damaged backup restores nothing.
@Suite(.timeLimit(.minutes(6))) struct BackupRestoreTests {
    @Test func aBackupTakenWhileServingRestoresIntoAWorkingRegistry() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-backup-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (data, backup, restored) = (directory + "/data", directory + "/backup", directory + "/restored")
        let admin = "mr_backup-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(dataDirectory: data, adminToken: admin)
        let client = RegistryClient(baseURL: server.baseURL, token: admin)
        _ = try await client.createModel("fraud")
        let first = try await push(client, directory, version: 1)
        let reviewer = try await client.createToken(subject: "reviewer", admin: true)
        _ = try await RegistryClient(baseURL: server.baseURL, token: reviewer.token).decide(
            model: "fraud", number: 1, decision: .approve, comment: nil, revision: first.version.revision)
        _ = try await client.promote(model: "fraud", stage: "production", version: 1, revision: nil)

        // Taken while the server runs; the second one copies only what is new.
        let full = try await Self.report(binary, ["backup", "--data-dir", data, "--to", backup, "--json"])
        #expect(full.int("blobsCopied") ?? 0 >= 3, "the manifest and the chunks")
        #expect(full.int("blobsAlreadyPresent") == 0)
        let primary = try #require(try MasterKeyFile.load(from: data + "/keys/master.json")).primary
        #expect(full["keysNeeded"] == .array([.string(primary)]), "without keys, the report names the keys to keep")
        _ = try await push(client, directory, version: 2)
        // The incremental backup is taken from a busy server: writers push new versions (new chunks, a manifest, a
        // version each) and readers pull and list all through it, from before it starts until after it ends.
        let load = ServingLoad()
        let loadTask = Task { try await load.run(client, in: directory) }
        try await load.waitUntilPushed(2)
        let pushedBefore = load.pushed
        let incremental = try await Self.report(
            binary, ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"])
        load.stop()
        try await loadTask.value
        let pushedAfter = load.pushed
        #expect(load.reads > 0, "the readers read during the backup")
        #expect(
            incremental.int("blobsAlreadyPresent") == full.int("blobsCopied"), "unchanged blobs are not copied again")
        #expect(incremental.int("blobsCopied") ?? 0 >= 1)
        #expect(incremental.string("keys")?.hasPrefix("in the backup") == true, "\(incremental)")
        await server.kill()

        // A damaged backup (a blob gone) restores nothing.
        let blobs = backup + "/blobs/blobs/sha256"
        let shard = try #require(try FileManager.default.contentsOfDirectory(atPath: blobs).first)
        let victim = try #require(try FileManager.default.contentsOfDirectory(atPath: blobs + "/" + shard).first)
        try FileManager.default.moveItem(atPath: "\(blobs)/\(shard)/\(victim)", toPath: directory + "/set-aside")
        let refused = try await CommandLineTests.run(
            binary, ["restore", "--from", backup, "--data-dir", restored], [:])
        #expect(refused.status != 0)
        #expect(refused.error.contains("ARTIFACT_INCOMPLETE"), "\(refused.error)")
        #expect(!FileManager.default.fileExists(atPath: restored + "/metadata.sqlite"))
        try FileManager.default.moveItem(atPath: directory + "/set-aside", toPath: "\(blobs)/\(shard)/\(victim)")

        let restore = try await Self.report(binary, ["restore", "--from", backup, "--data-dir", restored, "--json"])
        #expect(restore["keys"] == "restored")
        let again = try await CommandLineTests.run(binary, ["restore", "--from", backup, "--data-dir", restored], [:])
        #expect(again.status != 0, "a directory that holds a registry is never overwritten")

        // A server on the restored directory serves both versions and the stage as they were.
        let revived = try await RegistryProcess(dataDirectory: restored, adminToken: admin)
        try await revived.serving {
            let revivedClient = RegistryClient(baseURL: revived.baseURL, token: admin)
            #expect(try await revivedClient.stage(model: "fraud", name: "production").version == 1)
            for version in [1, 2] {
                let target = URL(fileURLWithPath: directory + "/pulled-\(version)")
                _ = try await revivedClient.pull(model: "fraud", version: version, to: target)
                #expect(try Data(contentsOf: target.appendingPathComponent("weights.bin")) == Data(weights(version)))
            }

            // The busy backup is one consistent moment: every version pushed before it began is in it, nothing that
            // was not pushed by the time it ended, the numbers run without gaps, the chain verifies, and every version
            // in it reads back byte for byte (its chunks were all copied).
            let restoredNumbers = try await revivedClient.versions(model: "fraud", limit: 1000).items.map(\.version)
            #expect(restoredNumbers.sorted() == Array(1...restoredNumbers.count), "\(restoredNumbers)")
            #expect(Set(pushedBefore.keys).isSubset(of: restoredNumbers), "versions pushed before the backup are in it")
            #expect(Set(restoredNumbers).isSubset(of: Set(pushedAfter.keys).union([1, 2])), "\(restoredNumbers)")
            #expect(try await revivedClient.verifyAudit().ok)
            for number in restoredNumbers where number > 2 {
                let target = URL(fileURLWithPath: directory + "/pulled-busy-\(number)")
                _ = try await revivedClient.pull(model: "fraud", version: number, to: target)
                let bytes = try Data(contentsOf: target.appendingPathComponent("weights.bin"))
                #expect(bytes == pushedAfter[number].map { Data($0) }, "version \(number) reads back byte for byte")
            }
        }
    }

    /// The drill of issue 9: backup, `keys rotate --rewrap`, `keys retire` of the old key, backup again into the
    /// same directory, restore, and a server on the restored directory serves every version byte for byte. Before
    /// the fix the second backup skipped the re-wrapped blobs (same size), dropped the retired key from its key
    /// file, checked only presence, and every read of the restored registry answered `500 MASTER_KEY_UNKNOWN`.
    @Test func aBackupAfterRewrapAndRetireRestoresIntoARegistryThatReadsEveryVersion() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-backup-drill-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (data, backup, restored) = (directory + "/data", directory + "/backup", directory + "/restored")
        let admin = "mr_backup-drill-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(dataDirectory: data, adminToken: admin)
        try await server.serving {
            let client = RegistryClient(baseURL: server.baseURL, token: admin)
            _ = try await client.createModel("fraud")
            _ = try await push(client, directory, version: 1)
            let oldKey = try #require(try MasterKeyFile.load(from: data + "/keys/master.json")).primary

            let first = try await Self.report(
                binary, ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"])
            let copied = try #require(first.int("blobsCopied"))
            let rotated = try await CommandLineTests.run(
                binary, ["keys", "rotate", "--rewrap", "--data-dir", data], [:])
            #expect(rotated.status == 0, "\(rotated.error)")
            let newKey = try #require(try MasterKeyFile.load(from: data + "/keys/master.json")).primary
            #expect(newKey != oldKey)
            let retired = try await CommandLineTests.run(binary, ["keys", "retire", oldKey, "--data-dir", data], [:])
            #expect(retired.status == 0, "\(retired.error)")
            _ = try await push(client, directory, version: 2)

            let second = try await Self.report(
                binary, ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"])
            #expect(second.int("blobsReplaced") == copied, "every re-wrapped blob is copied again: \(second)")
            #expect(second.int("blobsAlreadyPresent") == 0, "every blob of version 1 was re-wrapped")
            #expect(second["keysNeeded"] == .array([.string(newKey)]))
            let backedKeys = try #require(try MasterKeyFile.load(from: backup + "/keys/master.json"))
            #expect(backedKeys.primary == newKey)
            #expect(Set(backedKeys.keys.map(\.id)) == [oldKey, newKey], "the backup keeps the retired key")
            await server.kill()

            let restore = try await Self.report(
                binary, ["restore", "--from", backup, "--data-dir", restored, "--json"])
            #expect(restore["keys"] == "restored")
            let revived = try await RegistryProcess(dataDirectory: restored, adminToken: admin)
            try await revived.serving {
                let revivedClient = RegistryClient(baseURL: revived.baseURL, token: admin)
                for version in [1, 2] {
                    let target = URL(fileURLWithPath: directory + "/pulled-\(version)")
                    _ = try await revivedClient.pull(model: "fraud", version: version, to: target)
                    #expect(
                        try Data(contentsOf: target.appendingPathComponent("weights.bin")) == Data(weights(version)))
                }
            }
        }
    }

    /// A backup whose key file does not hold the key its blobs are sealed under is refused by `restore` (and by
    /// `backup`), naming the first blob and the key, and restores nothing; before the fix it restored "successfully"
    /// into a registry whose every read failed.
    @Test func aBackupWhoseKeysDoNotOpenItsBlobsIsRefusedNamingTheBlobAndTheKey() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let directory = NSTemporaryDirectory() + "registry-backup-keys-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (data, backup, restored) = (directory + "/data", directory + "/backup", directory + "/restored")
        let admin = "mr_backup-keys-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(dataDirectory: data, adminToken: admin)
        let client = RegistryClient(baseURL: server.baseURL, token: admin)
        _ = try await client.createModel("fraud")
        _ = try await push(client, directory, version: 1)
        await server.kill()
        _ = try await Self.report(binary, ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"])
        let needed = try #require(try MasterKeyFile.load(from: backup + "/keys/master.json")).primary

        // The backup's key file replaced by one that holds another key only.
        let stranger = MasterKeyFile(generating: ())
        try stranger.write(to: backup + "/keys/master.json")
        let refused = try await CommandLineTests.run(
            binary, ["restore", "--from", backup, "--data-dir", restored], [:])
        #expect(refused.status != 0)
        #expect(refused.error.contains("MASTER_KEY_UNKNOWN"), "\(refused.error)")
        #expect(refused.error.contains("'\(needed)'"), "the key is named: \(refused.error)")
        #expect(refused.error.contains("sha256:"), "the first blob is named: \(refused.error)")
        #expect(!FileManager.default.fileExists(atPath: restored + "/metadata.sqlite"))

        // The same key id with other key bytes does not open the blobs either.
        var forged = stranger
        forged.keys[0].id = needed
        forged.primary = needed
        try forged.write(to: backup + "/keys/master.json")
        let forgedRefusal = try await CommandLineTests.run(
            binary, ["restore", "--from", backup, "--data-dir", restored], [:])
        #expect(forgedRefusal.status != 0)
        #expect(forgedRefusal.error.contains("does not open"), "\(forgedRefusal.error)")
        #expect(!FileManager.default.fileExists(atPath: restored + "/metadata.sqlite"))
    }

    /// Pushes version `version` of `fraud`: a 2 MiB file whose second half changes with the version.
    private func push(_ client: RegistryClient, _ directory: String, version: Int) async throws -> PushResult {
        let source = URL(fileURLWithPath: directory + "/source-\(version)")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try Data(weights(version)).write(to: source.appendingPathComponent("weights.bin"))
        return try await client.push(
            model: "fraud", files: [PushFile(path: "weights.bin", url: source.appendingPathComponent("weights.bin"))],
            chunking: SampleModel.chunking)
    }

    private func weights(_ version: Int) -> [UInt8] {
        BlobStoreConformance.pattern(1 << 20, seed: 40)
            + BlobStoreConformance.pattern(1 << 20, seed: UInt8(40 + version))
    }

    /// Runs a command with `--json` and returns its report; fails with its error output when it fails.
    static func report(_ binary: URL, _ arguments: [String]) async throws -> JSONValue {
        let outcome = try await CommandLineTests.run(binary, arguments, [:])
        guard outcome.status == 0 else { throw RegistryProcessError("\(arguments[0]) failed: \(outcome.error)") }
        return try JSONCoding.decode(JSONValue.self, from: Array(outcome.output.utf8))
    }
}

/// Writers that push new versions of `fraud` and readers that pull version 1 and list versions, until stopped.
final class ServingLoad: Sendable {
    private struct State {
        var pushed: [Int: [UInt8]] = [:]
        var reads = 0
        var stopped = false
    }

    private let state = Mutex(State())

    /// The versions pushed so far and the bytes of their one file.
    var pushed: [Int: [UInt8]] { state.withLock { $0.pushed } }
    /// Reads completed so far.
    var reads: Int { state.withLock { $0.reads } }
    private var isStopped: Bool { state.withLock { $0.stopped } }

    func stop() { state.withLock { $0.stopped = true } }

    /// Runs two writers and two readers until `stop`; throws the first failure of any of them.
    func run(_ client: RegistryClient, in directory: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<2 {
                group.addTask {
                    var round = 0
                    while !self.isStopped {
                        round += 1
                        let bytes =
                            Array("writer \(writer) round \(round)".utf8)
                            + BlobStoreConformance.pattern(300_000, seed: UInt8(truncatingIfNeeded: round * 2 + writer))
                        let source = URL(fileURLWithPath: directory + "/load-\(writer)-\(round)")
                        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
                        let file = source.appendingPathComponent("weights.bin")
                        try Data(bytes).write(to: file)
                        let result = try await client.push(
                            model: "fraud", files: [PushFile(path: "weights.bin", url: file)],
                            chunking: SampleModel.chunking)
                        self.state.withLock { $0.pushed[result.version.version] = bytes }
                        try? FileManager.default.removeItem(at: source)
                    }
                }
            }
            for reader in 0..<2 {
                group.addTask {
                    var round = 0
                    while !self.isStopped {
                        round += 1
                        let target = URL(fileURLWithPath: directory + "/read-\(reader)-\(round)")
                        _ = try await client.pull(model: "fraud", version: 1, to: target)
                        _ = try await client.versions(model: "fraud", limit: 100)
                        try? FileManager.default.removeItem(at: target)
                        self.state.withLock { $0.reads += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Waits (at most a minute) until `count` versions were pushed: the load is on.
    func waitUntilPushed(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while pushed.count < count {
            guard ContinuousClock.now < deadline else { throw RegistryProcessError("the load pushed nothing") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

extension JSONValue {
    func int(_ key: String) -> Int? {
        if case .number(let number)? = self[key] { return Int(number) }
        return nil
    }

    func string(_ key: String) -> String? {
        if case .string(let text)? = self[key] { return text }
        return nil
    }
}
