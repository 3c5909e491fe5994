import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(10))) struct FileSystemBlobStoreTests {
    @Test func blobsLiveAtTheirContentAddressedPath() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path)
        let digest = try await store.put(bytes: Array("hello".utf8))
        let hex = digest.hex
        #expect(directory.files(under: "blobs") == ["sha256/\(hex.prefix(2))/\(hex)"])
        #expect(store.path(of: digest) == "\(directory.path)/blobs/sha256/\(hex.prefix(2))/\(hex)")
    }

    @Test func aFailedPutLeavesNoFileUnderBlobsOrUploads() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let bytes = BlobStoreConformance.pattern(100_000, seed: 1)
        await #expect(throws: RegistryError.self) {
            _ = try await store.put(Digest(of: Array("other".utf8)), expectedSize: nil, body: .bytes(bytes))
        }
        await #expect(throws: RegistryError.self) {
            _ = try await store.put(Digest(of: bytes), expectedSize: 10, body: .bytes(bytes))
        }
        #expect(directory.files(under: "blobs").isEmpty)
        #expect(directory.files(under: "uploads").isEmpty)
    }

    @Test func aBodyThatFailsMidwayLeavesNothingBehind() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        struct Disconnected: Error {}
        let body = ByteStream(makeNext: {
            var sent = 0
            return {
                sent += 1
                if sent > 5 { throw Disconnected() }
                return .init(bytes: BlobStoreConformance.pattern(10_000, seed: UInt8(sent)))
            }
        })
        await #expect(throws: Disconnected.self) {
            _ = try await store.put(Digest(of: Array("x".utf8)), expectedSize: nil, body: body)
        }
        #expect(directory.files(under: "blobs").isEmpty)
        #expect(directory.files(under: "uploads").isEmpty)
    }

    @Test func uploadsAreEmptyAfterASuccessfulPut() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path)
        let bytes = BlobStoreConformance.pattern(2_000_000, seed: 2)
        _ = try await store.put(Digest(of: bytes), expectedSize: nil, body: BlobStoreConformance.split(bytes, into: 9))
        _ = try await store.put(Digest(of: bytes), expectedSize: nil, body: .bytes(bytes))
        #expect(directory.files(under: "uploads").isEmpty)
        #expect(directory.files(under: "blobs").count == 1)
    }

    @Test func staleUploadsAreRemovedAtStartButFreshOnesKept() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try FileSystemBlobStore(root: directory.path)
        let stale = directory.path + "/uploads/stale"
        let fresh = directory.path + "/uploads/fresh"
        _ = FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3]))
        _ = FileManager.default.createFile(atPath: fresh, contents: Data([4]))
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-2 * 3600)], ofItemAtPath: stale)
        _ = try FileSystemBlobStore(root: directory.path)
        #expect(directory.files(under: "uploads") == ["fresh"])
    }

    @Test func anOpenStreamKeepsReadingAfterTheBlobIsDeleted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let bytes = BlobStoreConformance.pattern(50_000, seed: 3)
        let digest = try await store.put(bytes: bytes)
        let stream = try await store.get(digest, range: nil)
        try await store.delete(digest)
        var received: [UInt8] = []
        for try await buffer in stream { received.append(contentsOf: buffer.readableBytesView) }
        #expect(received == bytes)
    }

    @Test func blobsSurviveReopeningTheStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let digest = try await FileSystemBlobStore(root: directory.path).put(bytes: Array("kept".utf8))
        let reopened = try FileSystemBlobStore(root: directory.path)
        #expect(try await reopened.list() == [digest])
        #expect(try await BlobStoreConformance.read(reopened, digest) == Array("kept".utf8))
    }
}

/// A commit that fails after the upload's descriptor was closed must not close that number again: by then it may
/// belong to another thread's file, socket or database.
@Suite(.timeLimit(.minutes(10))) struct DescriptorSafetyTests {
    @Test(.timeLimit(.minutes(10))) func aFailedCommitNeverClosesSomeoneElsesDescriptor() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path)
        // The shard directories of these blobs are regular files, so every commit's rename fails (ENOTDIR).
        let payloads = (0..<64).map { BlobStoreConformance.pattern(100 + $0, seed: UInt8($0)) }
        let root = directory.path + "/blobs/sha256"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for payload in payloads {
            let shard = root + "/" + String(Digest(of: payload).hex.prefix(2))
            if !FileManager.default.fileExists(atPath: shard) {
                _ = FileManager.default.createFile(atPath: shard, contents: Data())
            }
        }
        // Meanwhile another task keeps opening files of its own and holds them: a descriptor number an upload has
        // closed goes to the next open, so a second close by the upload would close one of these.
        let held = HeldFiles(directory: directory.path + "/victims")
        let done = Victims()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while done.count == 0 && held.count < 600 {
                    held.openOne()
                    await Task.yield()
                }
            }
            group.addTask {
                await withTaskGroup(of: Void.self) { uploads in
                    for round in 0..<8 {
                        for payload in payloads {
                            uploads.addTask {
                                _ = try? await store.put(
                                    Digest(of: payload), expectedSize: nil,
                                    body: BlobStoreConformance.split(payload, into: 1 + round % 3))
                            }
                        }
                    }
                }
                done.add()
            }
        }
        let victims = held.closedBehindOurBack()
        held.closeAll()
        #expect(victims == 0, "\(victims) of \(held.count) descriptors were closed behind their owner's back")
    }

    /// Files opened and held by the test, each remembered with its inode.
    final class HeldFiles: Sendable {
        private let directory: String
        private let files = Mutex<[(fd: Int32, inode: UInt)]>([])

        init(directory: String) {
            self.directory = directory
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }

        var count: Int { files.withLock { $0.count } }

        func openOne() {
            let fd = open(directory + "/" + UUID().uuidString, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return }
            var status = stat()
            fstat(fd, &status)
            files.withLock { $0.append((fd, UInt(status.st_ino))) }
        }

        /// How many held descriptors no longer refer to the file they were opened on.
        func closedBehindOurBack() -> Int {
            files.withLock { files in
                files.filter { file in
                    var status = stat()
                    return fstat(file.fd, &status) != 0 || UInt(status.st_ino) != file.inode
                }.count
            }
        }

        func closeAll() {
            files.withLock { files in
                for file in files { close(file.fd) }
                files.removeAll()
            }
        }
    }

    final class Victims: Sendable {
        private let value = Mutex(0)
        func add() { value.withLock { $0 += 1 } }
        var count: Int { value.withLock { $0 } }
    }
}
