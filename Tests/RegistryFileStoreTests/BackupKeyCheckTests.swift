import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

/// What backups rely on: merging key files never drops a key, and a blob's header is checked against a keyring
/// without reading its payload.
@Suite(.timeLimit(.minutes(10))) struct BackupKeyCheckTests {
    @Test func mergingKeepsEveryKeyAddsNewOnesTakesTheNewerPrimaryAndRefusesTwoValuesForOneId() throws {
        var backup = MasterKeyFile(generating: ())
        let retired = backup.primary
        var live = backup
        let current = live.rotate().id
        try live.remove(id: retired)

        #expect(try backup.merge(live) == [current])
        #expect(Set(backup.keys.map(\.id)) == [retired, current], "the key the live file retired stays")
        #expect(backup.primary == current)
        #expect(try backup.merge(live) == [], "merging again adds nothing")

        var forged = MasterKeyFile(generating: ())
        forged.keys[0].id = current
        forged.primary = current
        let error = #expect(throws: RegistryError.self) { try backup.merge(forged) }
        #expect(error?.code == .invalidArgument)
        #expect(Set(backup.keys.map(\.id)) == [retired, current])
    }

    @Test func aHeaderCheckOpensTheDataKeyAndTellsAMissingKeyFromAWrongOneAndFromDamage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path + "/keys/master.json"
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(10_000, seed: 3))
        let path = store.path(of: digest)
        let file = try #require(try MasterKeyFile.load(from: keyFile))

        #expect(
            FileSystemBlobStore.checkHeader(ofFile: path, keys: try MasterKeyring(file: file))
                == .opens(keyId: file.primary))
        #expect(FileSystemBlobStore.checkHeader(ofFile: path, keys: nil) == .wellFormed(keyId: file.primary))
        let stranger = try MasterKeyring(file: MasterKeyFile(generating: ()))
        #expect(FileSystemBlobStore.checkHeader(ofFile: path, keys: stranger) == .keyUnknown(keyId: file.primary))
        var forged = MasterKeyFile(generating: ())
        forged.keys[0].id = file.primary
        forged.primary = file.primary
        #expect(
            FileSystemBlobStore.checkHeader(ofFile: path, keys: try MasterKeyring(file: forged))
                == .keyDoesNotOpen(keyId: file.primary))
        #expect(FileSystemBlobStore.checkHeader(ofFile: path + "-absent", keys: nil) == .missing)

        // A truncated copy is damaged; its header alone does not say so, its size does.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 200)
        try handle.close()
        guard case .malformed = FileSystemBlobStore.checkHeader(ofFile: path, keys: nil) else {
            Issue.record("a truncated blob is malformed")
            return
        }
    }
}
