import Foundation
import Logging
import RegistryClient
import RegistryCore
import RegistryFileStore
import RegistrySQLite
import RegistryServer
import RegistryTesting

/// A real registry (SQLite + file-system blobs in a temporary directory) served over loopback on a free port.
struct RegistryFixture {
    static let adminSecret = "mr_test-admin-secret-0123456789abcdef"

    let directory: String
    let metadata: SQLiteMetadataStore
    let blobs: FileSystemBlobStore
    let server: RunningRegistryServer
    let admin: RegistryClient

    /// Runs `body` against a fresh registry and tears it down afterwards, also when `body` throws.
    static func with<T>(_ body: (RegistryFixture) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + "registry-cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try SQLiteMetadataStore(path: directory + "/metadata.sqlite")
        let blobs = try FileSystemBlobStore(root: directory + "/blobs")
        _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: adminSecret)
        var logger = Logger(label: "registry-cli-tests")
        logger.logLevel = .warning
        let server = try await RegistryApplication.start(
            configuration: ServerConfiguration(host: "127.0.0.1", port: 0), metadata: metadata, blobs: blobs,
            logger: logger)
        let fixture = RegistryFixture(
            directory: directory, metadata: metadata, blobs: blobs, server: server,
            admin: RegistryClient(baseURL: server.baseURL, token: adminSecret))
        do {
            let result = try await body(fixture)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// A client for a new token issued to `subject`.
    func client(for subject: String) async throws -> RegistryClient {
        let issued = try await admin.createToken(subject: subject)
        return RegistryClient(baseURL: server.baseURL, token: issued.token)
    }

    /// A new directory for test files inside the fixture's directory.
    func makeDirectory(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: directory + "/" + name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A small model on disk: several files, one spanning several chunks, one empty, one in a subdirectory.
struct SampleModel {
    static let chunkSize = 256 * 1024

    let root: URL
    let contents: [String: [UInt8]]

    init(in root: URL) throws {
        self.root = root
        contents = [
            "weights.bin": BlobStoreConformance.pattern(3 * Self.chunkSize + 12_345, seed: 11),
            "config/model.json": Array(#"{"layers": 12}"#.utf8),
            "empty.txt": [],
            "tokenizer.txt": BlobStoreConformance.pattern(5_000, seed: 12),
        ]
        for (path, bytes) in contents {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
    }

    var files: [PushFile] {
        contents.keys.sorted().map { PushFile(path: $0, url: root.appendingPathComponent($0)) }
    }

    /// The files below `directory`, relative to it, with their bytes.
    static func read(_ directory: URL) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: directory.path) else { return [:] }
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = directory.path + "/" + relative
            if manager.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                result[relative] = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            }
        }
        return result
    }
}
