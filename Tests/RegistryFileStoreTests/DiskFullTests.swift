import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

/// A full disk fails the upload with `STORAGE_FULL`, leaves nothing behind, and the store keeps serving.
@Suite(.timeLimit(.minutes(5))) struct DiskFullTests {
    /// Whether a small tmpfs can be mounted here (it needs root): outside CI the test is skipped and says so.
    static var shouldRun: Bool {
        TestEnvironment.runs(needing: "mounting a 1 MiB tmpfs", available: canMount, install: "run the tests as root")
    }

    static let canMount: Bool = {
        guard let directory = try? TemporaryDirectory() else { return false }
        defer { directory.remove() }
        guard mountSmallFileSystem(at: directory.path) else { return false }
        unmount(directory.path)
        return true
    }()

    @Test(.enabled(if: shouldRun))
    func anUploadThatFillsTheDiskFailsCleanlyAndTheStoreKeepsServing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try #require(Self.mountSmallFileSystem(at: directory.path), "a 1 MiB tmpfs is mounted (needs root)")
        defer { Self.unmount(directory.path) }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 64 * 1024)
        let small = BlobStoreConformance.pattern(10_000, seed: 1)
        let smallDigest = try await store.put(bytes: small)

        let large = BlobStoreConformance.pattern(3 * 1024 * 1024, seed: 2)
        let error = await #expect(throws: RegistryError.self) {
            _ = try await store.put(
                Digest(of: large), expectedSize: nil, body: BlobStoreConformance.split(large, into: 30))
        }
        #expect(error?.code == .storageFull)
        #expect(try await store.size(of: Digest(of: large)) == nil)
        #expect(directory.files(under: "uploads").isEmpty)

        #expect(try await BlobStoreConformance.read(store, smallDigest) == small)
        let another = BlobStoreConformance.pattern(20_000, seed: 3)
        let anotherDigest = try await store.put(bytes: another)
        #expect(try await BlobStoreConformance.read(store, anotherDigest) == another)
    }

    static func mountSmallFileSystem(at path: String) -> Bool {
        run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", path])
    }

    static func unmount(_ path: String) {
        _ = run("/bin/umount", [path])
    }

    private static func run(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return false
        }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
