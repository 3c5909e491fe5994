import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RegistryCore
import RegistryServer

/// A registry server on a free loopback port over in-memory stores, with an admin token and a JSON helper.
struct TestRegistry {
    let server: RunningRegistryServer
    let metadata: InMemoryMetadataStore
    let blobs: InMemoryBlobStore
    let adminToken: String

    /// Runs `body` against a fresh server and always shuts it down.
    static func with<T>(
        configuration: ServerConfiguration = ServerConfiguration(port: 0),
        _ body: (TestRegistry) async throws -> T
    ) async throws -> T {
        let metadata = InMemoryMetadataStore()
        let blobs = InMemoryBlobStore()
        let adminToken = TokenSecret.generate()
        _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: adminToken)
        var logger = Logger(label: "registry-test")
        logger.logLevel = .critical
        var configuration = configuration
        configuration.port = 0
        let server = try await RegistryApplication.start(
            configuration: configuration, metadata: metadata, blobs: blobs, logger: logger)
        let registry = TestRegistry(server: server, metadata: metadata, blobs: blobs, adminToken: adminToken)
        do {
            let result = try await body(registry)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// Sends one request; `json` is encoded as the body with `Content-Type: application/json`.
    func send(
        _ method: HTTPMethod, _ path: String, token: String?, json: JSONValue? = nil, body: [UInt8]? = nil,
        headers: [(String, String)] = []
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: server.baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            let bytes = try JSONCoding.encode(json)
            request.body = .bytes(ByteBuffer(bytes: bytes))
        } else if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        var buffer = try await response.body.collect(upTo: 64 << 20)
        return TestResponse(
            status: Int(response.status.code), headers: response.headers,
            body: buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    /// Creates a token for `subject` through the API and returns its secret.
    func token(for subject: String, admin: Bool = false, canCreateModels: Bool = false) async throws -> String {
        let response = try await send(
            .POST, "/v1/tokens", token: adminToken,
            json: ["subject": .string(subject), "admin": .bool(admin), "canCreateModels": .bool(canCreateModels)])
        guard response.status == 201, case .string(let secret)? = response.json["token"] else {
            throw TestFailure("token creation failed: \(response.status) \(response.text)")
        }
        return secret
    }

    /// Uploads `files` as chunks plus a manifest and returns the manifest digest.
    func upload(_ files: [String: [UInt8]], token: String) async throws -> Digest {
        var entries: [Manifest.File] = []
        for (path, bytes) in files.sorted(by: { $0.key < $1.key }) {
            let digest = Digest(of: bytes)
            let put = try await send(.PUT, "/v1/blobs/\(digest)", token: token, body: bytes)
            guard put.status == 201 || put.status == 200 else {
                throw TestFailure("chunk upload failed: \(put.status) \(put.text)")
            }
            entries.append(
                .init(
                    path: path, size: Int64(bytes.count), digest: digest,
                    chunks: [.init(digest: digest, size: Int64(bytes.count))]))
        }
        let manifest = try JSONCoding.encode(Manifest(files: entries))
        let response = try await send(
            .PUT, "/v1/manifests", token: token, body: manifest, headers: [("Content-Type", "application/json")])
        guard response.status == 201, case .string(let text)? = response.json["digest"] else {
            throw TestFailure("manifest upload failed: \(response.status) \(response.text)")
        }
        return try Digest(parsing: text)
    }
}

/// A collected response.
struct TestResponse {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: JSONValue {
        (try? JSONCoding.decode(JSONValue.self, from: body)) ?? .null
    }

    /// `error.code` of an error body.
    var errorCode: String? {
        if case .string(let code)? = json["error"]?["code"] { return code }
        return nil
    }

    func header(_ name: String) -> String? { headers.first(name: name) }

    /// The integer at `key` of a JSON object body.
    func int(_ key: String) -> Int? {
        if case .number(let value)? = json[key] { return Int(value) }
        return nil
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A model `demo` with one token per role, an approved version 1 and stage `production` at version 1.
struct World {
    let registry: TestRegistry
    var tokens: [String: String]
    let manifest: Digest
    let chunk: [UInt8]

    static let roles = ["owner", "writer", "approver", "deployer", "reader", "serving"]

    static func make(_ registry: TestRegistry) async throws -> World {
        var tokens: [String: String] = ["admin": registry.adminToken]
        for subject in roles + ["stranger"] {
            tokens[subject] = try await registry.token(for: subject, canCreateModels: subject == "owner")
        }
        let created = try await registry.send(
            .POST, "/v1/models", token: tokens["owner"], json: ["name": "demo", "description": "a test model"])
        guard created.status == 201 else { throw TestFailure("model: \(created.status) \(created.text)") }
        let grants: [JSONValue] = roles.map { ["subject": .string($0), "role": .string($0)] }
        let acl = try await registry.send(
            .PUT, "/v1/models/demo/acl", token: tokens["owner"], json: ["grants": .array(grants)],
            headers: [("If-Match", "\"1\"")])
        guard acl.status == 200 else { throw TestFailure("acl: \(acl.status) \(acl.text)") }
        let chunk = Array("weights of the demo model".utf8)
        let manifest = try await registry.upload(["model.bin": chunk], token: tokens["writer"]!)
        let version = try await registry.send(
            .POST, "/v1/models/demo/versions", token: tokens["writer"],
            json: ["manifestDigest": .string(manifest.description)])
        guard version.status == 201 else { throw TestFailure("version: \(version.status) \(version.text)") }
        let approval = try await registry.send(
            .POST, "/v1/models/demo/versions/1/approvals", token: tokens["approver"], json: ["decision": "approve"],
            headers: [("If-Match", "\"1\"")])
        guard approval.status == 200 else { throw TestFailure("approval: \(approval.status) \(approval.text)") }
        let stage = try await registry.send(
            .PUT, "/v1/models/demo/stages/production", token: tokens["deployer"], json: ["version": .number(1)],
            headers: [("If-None-Match", "*")])
        guard stage.status == 200 else { throw TestFailure("stage: \(stage.status) \(stage.text)") }
        return World(registry: registry, tokens: tokens, manifest: manifest, chunk: chunk)
    }

    /// Creates and approves a new version of `demo` with the given content; returns its number.
    func approvedVersion(_ content: String) async throws -> Int {
        let manifest = try await registry.upload(["model.bin": Array(content.utf8)], token: tokens["writer"]!)
        let version = try await registry.send(
            .POST, "/v1/models/demo/versions", token: tokens["writer"],
            json: ["manifestDigest": .string(manifest.description)])
        guard version.status == 201, let number = version.int("version") else {
            throw TestFailure("version: \(version.status) \(version.text)")
        }
        let approval = try await registry.send(
            .POST, "/v1/models/demo/versions/\(number)/approvals", token: tokens["approver"],
            json: ["decision": "approve"], headers: [("If-Match", "\"1\"")])
        guard approval.status == 200 else { throw TestFailure("approval: \(approval.status) \(approval.text)") }
        return number
    }
}
