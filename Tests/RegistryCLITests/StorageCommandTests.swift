import Foundation
import RegistryClient
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

/// Encryption at rest, key rotation, signing keys and garbage collection through a real server and the binary.
@Suite(.timeLimit(.minutes(10))) struct StorageCommandTests {
    /// A `registry serve` child on a fresh data directory (the shared process fixture), killed at the end.
    struct Server {
        let binary: URL
        let directory: String
        let process: RegistryProcess
        var url: String { process.baseURL }
        var secret: String { process.adminToken }
        var dataDir: String { process.dataDirectory }
        var client: RegistryClient { RegistryClient(baseURL: url, token: secret) }
        var environment: [String: String] { ["REGISTRY_URL": url, "REGISTRY_TOKEN": secret] }

        static func start(_ extraArguments: [String] = []) async throws -> Server {
            let binary = try #require(CommandLineTests.registryBinary(), "the registry executable is built")
            let directory = NSTemporaryDirectory() + "registry-storage-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // The keys must come from the data directory's key file, which these tests rotate and inspect.
            let process = try await RegistryProcess(
                dataDirectory: directory + "/data", adminToken: "mr_storage-test-admin-0123456789abcdef",
                arguments: extraArguments, removingEnvironment: [MasterKeyring.environmentVariable])
            return Server(binary: binary, directory: directory, process: process)
        }

        /// Runs `body`, then stops the server and removes its directory.
        func serving<T>(_ body: () async throws -> T) async throws -> T {
            defer { try? FileManager.default.removeItem(atPath: directory) }
            return try await process.serving(body)
        }

        func run(_ arguments: [String]) async throws -> CommandLineTests.Outcome {
            try await CommandLineTests.run(binary, arguments, environment)
        }

        /// A store on the server's data directory, to inspect blob headers.
        func inspector() throws -> FileSystemBlobStore {
            let keyring = try MasterKeyring.open(keyFile: dataDir + "/keys/master.json", environment: [:])
            return try FileSystemBlobStore(root: dataDir + "/blobs", keyring: keyring)
        }

        func put(_ bytes: [UInt8]) async throws -> Digest {
            let digest = Digest(of: bytes)
            try await client.putBlob(digest, size: Int64(bytes.count), body: .bytes(bytes))
            return digest
        }

        func read(_ digest: Digest) async throws -> [UInt8] {
            var result: [UInt8] = []
            for try await buffer in try await client.blob(digest) {
                result.append(contentsOf: buffer.readableBytesView)
            }
            return result
        }
    }

    @Test func aRunningServerPicksUpARotatedKeyAndRewrappedBlobsReadAfterTheOldKeyIsRetired() async throws {
        let server = try await Server.start()
        try await server.serving {
            let a = BlobStoreConformance.pattern(2_500_000, seed: 1)
            let digestA = try await server.put(a)
            let firstKey = try #require(try MasterKeyFile.load(from: server.dataDir + "/keys/master.json")).primary

            let rotated = try await server.run(["keys", "rotate", "--data-dir", server.dataDir])
            #expect(rotated.status == 0, "\(rotated.error)")
            let secondKey = try #require(try MasterKeyFile.load(from: server.dataDir + "/keys/master.json")).primary
            #expect(secondKey != firstKey)
            #expect(rotated.output.contains(secondKey))

            // The server checks the key file at most once a second.
            try await Task.sleep(for: .milliseconds(1200))
            let b = BlobStoreConformance.pattern(1_000_000, seed: 2)
            let digestB = try await server.put(b)
            #expect(try await server.inspector().keyUsage() == [firstKey: 1, secondKey: 1])
            #expect(try await server.read(digestA) == a)
            #expect(try await server.read(digestB) == b)

            let rewrapped = try await server.run(["keys", "rotate", "--rewrap", "--data-dir", server.dataDir])
            #expect(rewrapped.status == 0, "\(rewrapped.error)")
            #expect(rewrapped.output.contains("re-wrapped 2 blobs"))
            let refused = try await server.run(["keys", "retire", "--data-dir", server.dataDir, "no-such-key"])
            #expect(refused.status != 0)
            for key in [firstKey, secondKey] {
                let retired = try await server.run(["keys", "retire", key, "--data-dir", server.dataDir])
                #expect(retired.status == 0, "\(retired.error)")
            }
            #expect(try #require(try MasterKeyFile.load(from: server.dataDir + "/keys/master.json")).keys.count == 1)
            #expect(try await server.read(digestA) == a)
            #expect(try await server.read(digestB) == b)
        }
    }

    @Test func aBlobTamperedOnDiskIsAServerErrorNotSilentData() async throws {
        let server = try await Server.start()
        try await server.serving {
            let bytes = BlobStoreConformance.pattern(3_000_000, seed: 3)
            let digest = try await server.put(bytes)
            let path = try server.inspector().path(of: digest)

            // A later segment: the response starts, then the connection is cut, so the client never sees 3 MB.
            try Self.flipByte(at: 128 + 2 * (1 << 20 + 16) + 7, in: path)
            await #expect(throws: (any Error).self) { _ = try await server.read(digest) }

            // The first segment: a clean 500 with the code, before any byte is sent.
            try Self.flipByte(at: 128 + 7, in: path)
            let error = await #expect(throws: RegistryError.self) { _ = try await server.client.blob(digest) }
            #expect(error?.code == .blobCorrupt)
            #expect(error?.details["digest"] == .string(digest.description))
        }
    }

    @Test func gcDeletesOldOrphansButNeverAPushedVersionsBlobs() async throws {
        // Uploads expire after 2 s here, so that an orphan stops being held by its upload within the test.
        let server = try await Server.start(["--upload-expiry-seconds", "2"])
        try await server.serving {
            let created = try await server.run(["model", "create", "demo"])
            #expect(created.status == 0, "\(created.error)")
            let source = URL(fileURLWithPath: server.directory + "/source")
            try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
            let weights = BlobStoreConformance.pattern(1_500_000, seed: 4)
            try Data(weights).write(to: source.appendingPathComponent("weights.bin"))
            let pushed = try await server.run(["push", "demo", source.path])
            #expect(pushed.status == 0, "\(pushed.error)")
            let orphan = try await server.put(BlobStoreConformance.pattern(70_000, seed: 5))

            let young = try await server.run(["gc"])
            #expect(young.status == 0, "\(young.error)")
            #expect(young.output.contains("deleted 0 of"))
            #expect(try await server.client.blobSize(orphan) == 70_000)
            // The upload that put it is over after 2 s (AdminRoutesTests shows a zero grace keeping an open upload's
            // chunks; here the point is what happens once nobody holds it).
            try await Task.sleep(for: .seconds(3))

            let dry = try await server.run(["gc", "--dry-run", "--grace-seconds", "0"])
            #expect(dry.status == 0, "\(dry.error)")
            #expect(dry.output.contains("would delete \(orphan)"))
            #expect(try await server.client.blobSize(orphan) == 70_000)

            let real = try await server.run(["gc", "--grace-seconds", "0"])
            #expect(real.status == 0, "\(real.error)")
            #expect(real.output.contains("deleted \(orphan)"))
            #expect(real.output.contains("deleted 1 of"))
            #expect(try await server.client.blobSize(orphan) == nil)

            let target = server.directory + "/pulled"
            let pulled = try await server.run(["pull", "demo:1", target])
            #expect(pulled.status == 0, "\(pulled.error)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: target + "/weights.bin")) == Data(weights))
        }
    }

    @Test(arguments: ["ed25519", "p256"])
    func keysGenerateWritesAPrivateFileOnlyTheOwnerReadsAndItsPublicKey(_ algorithm: String) async throws {
        let binary = try #require(CommandLineTests.registryBinary())
        let directory = NSTemporaryDirectory() + "registry-keys-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = directory + "/signing"
        let generated = try await CommandLineTests.run(
            binary, ["keys", "generate", "--algorithm", algorithm, "--out", out], [:])
        #expect(generated.status == 0, "\(generated.error)")
        let attributes = try FileManager.default.attributesOfItem(atPath: out)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let privateKey = try SigningKey(parsing: String(contentsOfFile: out, encoding: .utf8))
        let publicKey = try PublicKey(parsing: String(contentsOfFile: out + ".pub", encoding: .utf8))
        #expect(privateKey.publicKey == publicKey)
        #expect(publicKey.algorithm.rawValue == algorithm)
        #expect(generated.output.trimmingCharacters(in: .whitespacesAndNewlines) == publicKey.description)
        let again = try await CommandLineTests.run(binary, ["keys", "generate", "--out", out], [:])
        #expect(again.status != 0)
    }

    static func flipByte(at offset: Int, in path: String) throws {
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        data[offset] ^= 0x01
        try Data(data).write(to: URL(fileURLWithPath: path))
    }
}
