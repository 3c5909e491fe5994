import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct BlobStoreConformanceTests {
    @Test(arguments: BlobStoreConformance.cases)
    func inMemoryStoreConforms(_ conformanceCase: BlobConformanceCase) async throws {
        try await conformanceCase.run(InMemoryBlobStore())
    }

    @Test(arguments: BlobStoreConformance.cases)
    func fileSystemStoreConforms(_ conformanceCase: BlobConformanceCase) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A small piece size makes even the modest test blobs stream in many pieces.
        try await conformanceCase.run(FileSystemBlobStore(root: directory.path, pieceSize: 64 * 1024))
    }
}

/// A fresh directory under the system's temporary directory.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "registry-filestore-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Every regular file below `subpath`, relative to it.
    func files(under subpath: String) -> [String] {
        let base = path + "/" + subpath
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var result: [String] = []
        while let name = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + name, isDirectory: &isDirectory),
                !isDirectory.boolValue
            {
                result.append(name)
            }
        }
        return result
    }
}
