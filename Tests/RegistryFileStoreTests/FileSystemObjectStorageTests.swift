import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct FileSystemObjectStorageTests {
    @Test(.timeLimit(.minutes(5)), arguments: ObjectStorageConformance.cases)
    func fileSystemStorageConforms(_ conformanceCase: ObjectStorageConformanceCase) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await conformanceCase.run(try FileSystemObjectStorage(root: directory.path))
        #expect(directory.files(under: "uploads").isEmpty, "no upload is left behind")
    }

    @Test func anObjectIsTheFileAtItsKey() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try FileSystemObjectStorage(root: directory.path)
        try await storage.put("a/b/c", bytes: Array("content".utf8))
        #expect(FileManager.default.contents(atPath: directory.path + "/a/b/c") == Data("content".utf8))
        #expect(storage.path(of: "a/b/c") == directory.path + "/a/b/c")
    }

    @Test func uploadsInFlightAreNoObjects() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let storage = try FileSystemObjectStorage(root: directory.path)
        await #expect(throws: RegistryError.self) { try await storage.put("uploads/x", bytes: [1]) }
        try await storage.put("kept", bytes: [1])
        #expect(try await storage.list(prefix: "") == ["kept"])
    }
}
