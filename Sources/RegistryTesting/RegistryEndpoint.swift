import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore
import Testing

/// A running registry a test talks to over HTTP, in-process (`TestRegistry`) or a child process
/// (`RegistryProcess`); the helpers below work on either.
public protocol RegistryEndpoint: Sendable {
    /// `http(s)://host:port` of the main port, without a trailing slash.
    var baseURL: String { get }
    /// Where blobs and manifests are served: the data-plane port when there is one, otherwise `baseURL`.
    var dataBaseURL: String { get }
    /// The secret of the bootstrap admin token.
    var adminToken: String { get }
}

extension RegistryEndpoint {
    /// Sends one request to `baseURL` (or `base`); `json` is encoded as the body with `Content-Type:
    /// application/json`, `headers` replace headers of the same name.
    ///
    /// The answer is checked against the `/openapi.json` the registry serves (`OpenAPIContract`): an undocumented
    /// status or a body that breaks its documented schema is recorded as an issue of the calling test, so every
    /// route test is also a contract test. Paths outside the document (a test of unknown routes) are not checked.
    public func send(
        _ method: HTTPMethod, _ path: String, token: String?, json: JSONValue? = nil, body: [UInt8]? = nil,
        headers: [(String, String)] = [], base: String? = nil, checkContract: Bool = true,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: (base ?? baseURL) + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONCoding.encode(json)))
        } else if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        // Generous: the suite runs every target in parallel on two shared cores.
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        var buffer = try await response.body.collect(upTo: 64 << 20)
        let answer = TestResponse(
            status: Int(response.status.code), headers: response.headers,
            body: buffer.readBytes(length: buffer.readableBytes) ?? [])
        if checkContract {
            try await OpenAPIContract.check(
                answer, method: method.rawValue, path: path, endpoint: self, sourceLocation: sourceLocation)
        }
        return answer
    }

    /// Creates a token for `subject` through the API and returns its secret.
    public func token(for subject: String, admin: Bool = false, canCreateModels: Bool = false) async throws -> String {
        let response = try await send(
            .POST, "/v1/tokens", token: adminToken,
            json: ["subject": .string(subject), "admin": .bool(admin), "canCreateModels": .bool(canCreateModels)])
        guard response.status == 201, case .string(let secret)? = response.json["token"] else {
            throw TestFailure("token creation failed: \(response.status) \(response.text)")
        }
        return secret
    }

    /// Uploads `files` as one chunk each plus a manifest and returns the manifest digest.
    public func upload(_ files: [String: [UInt8]], token: String) async throws -> Digest {
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
public struct TestResponse: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    public let body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }

    public var json: JSONValue {
        (try? JSONCoding.decode(JSONValue.self, from: body)) ?? .null
    }

    /// `error.code` of an error body.
    public var errorCode: String? {
        if case .string(let code)? = json["error"]?["code"] { return code }
        return nil
    }

    public func header(_ name: String) -> String? { headers.first(name: name) }

    /// The integer at `key` of a JSON object body.
    public func int(_ key: String) -> Int? {
        if case .number(let value)? = json[key] { return Int(value) }
        return nil
    }
}

/// A test precondition that did not hold (a setup request that failed), with what was answered.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
