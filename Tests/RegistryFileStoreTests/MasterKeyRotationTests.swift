import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

/// Master keys rotate without downtime: old blobs stay readable, new blobs use the new primary, and `rewrap` lets an
/// old key be retired.
@Suite(.timeLimit(.minutes(10))) struct MasterKeyRotationTests {
    @Test func theKeyFileIsCreatedOnFirstOpenWithOwnerOnlyPermissions() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/keys/master.json"
        let keyring = try MasterKeyring.open(keyFile: path, environment: [:])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let file = try #require(try MasterKeyFile.load(from: path))
        #expect(file.keys.count == 1)
        #expect(try keyring.primary().id == file.primary)
        // Opening again keeps the same key.
        #expect(try MasterKeyring.open(keyFile: path, environment: [:]).primary().id == file.primary)
    }

    @Test func anEnvironmentKeyIsPrimaryAndNoKeyFileIsGenerated() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/keys/master.json"
        let secret = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let keyring = try MasterKeyring.open(keyFile: path, environment: [MasterKeyring.environmentVariable: secret])
        #expect(try keyring.primary().id.hasPrefix("env-"))
        #expect(!FileManager.default.fileExists(atPath: path))
        let again = try MasterKeyring.open(keyFile: path, environment: [MasterKeyring.environmentVariable: secret])
        #expect(try again.primary().id == keyring.primary().id)
        let error = #expect(throws: RegistryError.self) {
            _ = try MasterKeyring.open(keyFile: path, environment: [MasterKeyring.environmentVariable: "c2hvcnQ="])
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func blobsWrittenBeforeAndAfterARotationBothRead() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path + "/keys/master.json"
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let a = BlobStoreConformance.pattern(10_000, seed: 1)
        let digestA = try await store.put(bytes: a)

        var file = try #require(try MasterKeyFile.load(from: keyFile))
        let oldKey = file.primary
        let newKey = file.rotate().id
        try file.write(to: keyFile)

        // A fresh store (a restarted server) sees the new primary at once.
        let restarted = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let b = BlobStoreConformance.pattern(10_000, seed: 2)
        let digestB = try await restarted.put(bytes: b)
        #expect(try await restarted.keyUsage() == [oldKey: 1, newKey: 1])
        #expect(try await BlobStoreConformance.read(restarted, digestA) == a)
        #expect(try await BlobStoreConformance.read(restarted, digestB) == b)
        // The running store reads B, sealed under a key it had not loaded, by re-reading the key file.
        #expect(try await BlobStoreConformance.read(store, digestB) == b)
    }

    @Test func aRunningStorePicksUpTheNewPrimaryWithoutRestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path + "/keys/master.json"
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        _ = try await store.put(bytes: Array("before".utf8))
        var file = try #require(try MasterKeyFile.load(from: keyFile))
        let newKey = file.rotate().id
        try file.write(to: keyFile)
        // The key file is checked at most once a second.
        try await Task.sleep(for: .milliseconds(1100))
        _ = try await store.put(bytes: Array("after".utf8))
        #expect(try await store.keyUsage()[newKey] == 1)
        #expect(try store.keyring.primary().id == newKey)
    }

    @Test func afterRewrapTheOldKeyCanBeRemovedAndOldBlobsStillRead() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path + "/keys/master.json"
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let a = BlobStoreConformance.pattern(30_000, seed: 3)
        let digestA = try await store.put(bytes: a)
        let modifiedBefore = try await store.modificationTime(of: digestA)

        var file = try #require(try MasterKeyFile.load(from: keyFile))
        let oldKey = file.primary
        let newKey = file.rotate().id
        try file.write(to: keyFile)

        let rotated = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let report = try await rotated.rewrap()
        #expect(report == .init(rewrapped: 1, unchanged: 0, failed: [:]))
        #expect(try await rotated.keyUsage() == [newKey: 1])
        #expect(try await rotated.modificationTime(of: digestA) == modifiedBefore)
        #expect(try await rotated.rewrap() == .init(rewrapped: 0, unchanged: 1, failed: [:]))

        try file.remove(id: oldKey)
        try file.write(to: keyFile)
        let withoutOldKey = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        #expect(withoutOldKey.keyring.keyIds == [newKey])
        #expect(try await BlobStoreConformance.read(withoutOldKey, digestA) == a)
    }

    @Test func aBlobUnderAnUnknownKeyFailsWithMasterKeyUnknown() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try FileSystemBlobStore(root: directory.path, keyring: MasterKeyring(keys: [.generate()]))
        let digest = try await writer.put(bytes: Array("sealed elsewhere".utf8))
        let reader = try FileSystemBlobStore(root: directory.path, keyring: MasterKeyring(keys: [.generate()]))
        let error = await #expect(throws: RegistryError.self) { _ = try await reader.get(digest, range: nil) }
        #expect(error?.code == .masterKeyUnknown)
    }

    @Test func theKeyFileRefusesToDropItsPrimary() throws {
        var file = MasterKeyFile(generating: ())
        let error = #expect(throws: RegistryError.self) { try file.remove(id: file.primary) }
        #expect(error?.code == .invalidArgument)
    }
}
