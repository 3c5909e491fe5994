import Foundation
import Logging
import RegistryCore
import RegistryFileStore
import RegistrySQLite
import RegistryServer

/// A registry server running inside the test process on loopback port 0, over the backend a test chooses.
///
/// This is the one in-process fixture: route tests run on `.inMemory` for speed and on `.sqlite` (an SQLite file and
/// a `FileSystemBlobStore` in a temporary directory, as `registry serve` composes them) to prove the real components
/// behind the same routes. Tests where the process itself is the point (crash, restart, signals, the CLI against a
/// server) use `RegistryProcess` instead; both answer the same `RegistryEndpoint` helpers.
public struct TestRegistry: RegistryEndpoint {
    /// The stores behind the routes.
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        /// `InMemoryMetadataStore` and `InMemoryBlobStore`.
        case inMemory
        /// `SQLiteMetadataStore` on a file and `FileSystemBlobStore`, both in a fresh temporary directory.
        case sqlite

        public var description: String { rawValue }
    }

    public let backend: Backend
    public let server: RunningRegistryServer
    public let metadata: any MetadataStore
    public let blobs: any BlobStore
    public let adminToken: String
    /// The temporary directory of this registry (removed afterwards); the `.sqlite` backend keeps its files here.
    public let directory: String

    public var baseURL: String { server.baseURL }
    public var dataBaseURL: String { server.dataBaseURL }

    /// The file-system blob store when the backend has one, to inspect or damage blob files.
    public var fileBlobs: FileSystemBlobStore? { blobs as? FileSystemBlobStore }

    /// Runs `body` against a fresh registry on `backend` and always shuts it down and removes its files.
    ///
    /// `configuration` is used as given except for the main port, which is always 0 (the server reports the port it
    /// bound, so tests never collide); `adminToken` is the secret of the bootstrap admin token.
    public static func with<T>(
        _ backend: Backend = .inMemory, configuration: ServerConfiguration = ServerConfiguration(port: 0),
        adminToken: String = TokenSecret.generate(), logLevel: Logger.Level = .critical,
        _ body: (TestRegistry) async throws -> T
    ) async throws -> T {
        let directory = NSTemporaryDirectory() + "registry-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata: any MetadataStore
        let blobs: any BlobStore
        switch backend {
        case .inMemory:
            metadata = InMemoryMetadataStore()
            blobs = InMemoryBlobStore()
        case .sqlite:
            metadata = try SQLiteMetadataStore(path: directory + "/metadata.sqlite")
            blobs = try FileSystemBlobStore(root: directory + "/blobs")
        }
        _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: adminToken)
        var logger = Logger(label: "registry-test")
        logger.logLevel = logLevel
        var configuration = configuration
        configuration.port = 0
        let server = try await RegistryApplication.start(
            configuration: configuration, metadata: metadata, blobs: blobs, logger: logger)
        let registry = TestRegistry(
            backend: backend, server: server, metadata: metadata, blobs: blobs, adminToken: adminToken,
            directory: directory)
        do {
            let result = try await body(registry)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// A new directory for test files inside the registry's temporary directory.
    public func makeDirectory(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: directory + "/" + name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
