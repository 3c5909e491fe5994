import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RegistryAPI
import RegistryCore
import Synchronization

/// A typed client for the registry's HTTP API v1.
///
/// Every method throws `RegistryError`: the server's error body decoded (code, message, details), or
/// `UNAVAILABLE` when the registry cannot be reached.
public struct RegistryClient: Sendable {
    /// The registry's base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    public let baseURL: String
    public let token: String?
    public let httpClient: HTTPClient
    /// How long one request may take, including its body.
    public var timeout: TimeAmount
    /// The largest JSON response the client reads into memory.
    public var maxResponseBytes: Int
    /// Hosts besides `baseURL`'s that the client follows an advertised `artifactsURL` to, and so sends its token
    /// to (a data plane under another name). Empty by default: an `artifactsURL` on another host is refused with
    /// `UNTRUSTED_ARTIFACT_URL`, and so is one that is `http://` when `baseURL` is `https://`, whatever this says.
    public var allowedArtifactHosts: Set<String>
    /// The newest `Registry-Position` a write through this client (or a copy of it, or another client given the
    /// same session) answered with, presented on every read: a registry on PostgreSQL with read replicas then
    /// serves the reads from a replica that has replayed the writes, or from the primary, so the client always
    /// reads its own writes, through any instance.
    public let session: WriteSession

    public init(
        baseURL: String, token: String?, httpClient: HTTPClient = .shared, timeout: TimeAmount = .seconds(300),
        maxResponseBytes: Int = 64 * 1024 * 1024, allowedArtifactHosts: Set<String> = [],
        session: WriteSession = WriteSession()
    ) {
        self.session = session
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token
        self.httpClient = httpClient
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.allowedArtifactHosts = allowedArtifactHosts
    }

    // MARK: Request plumbing

    /// One request's method, path, query, headers and body.
    struct Call {
        var method: HTTPMethod
        var path: String
        var query: [(String, String?)] = []
        var headers: [(String, String)] = []
        var body: HTTPClientRequest.Body?

        init(_ method: HTTPMethod, _ path: String, query: [(String, String?)] = []) {
            self.method = method
            self.path = path
            self.query = query
        }

        mutating func json(_ value: some Encodable) throws {
            body = .bytes(ByteBuffer(bytes: try JSONCoding.encode(value)))
            headers.append(("Content-Type", "application/json"))
        }

        mutating func ifMatch(_ revision: Int) {
            headers.append(("If-Match", "\"\(revision)\""))
        }
    }

    /// Sends `call` and returns the response once its status is a success; the body is still to be read.
    func send(_ call: Call) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: baseURL + call.path + Self.queryString(call.query))
        request.method = call.method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Accept", value: "application/json")
        for (name, value) in call.headers { request.headers.add(name: name, value: value) }
        if call.method == .GET || call.method == .HEAD, let position = session.position {
            request.headers.add(name: WriteSession.header, value: position)
        }
        if let body = call.body { request.body = body }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: timeout)
        } catch {
            throw Self.transportError(error, call: call)
        }
        if let position = response.headers.first(name: WriteSession.header) { session.advance(to: position) }
        guard (200..<400).contains(response.status.code) else {
            throw await decodeError(response)
        }
        return response
    }

    /// Sends `call` and decodes the JSON response as `T`.
    func request<T: Decodable>(_ call: Call, as type: T.Type = T.self) async throws -> T {
        let response = try await send(call)
        let bytes = try await collect(response)
        do {
            return try JSONCoding.decode(T.self, from: bytes.readableBytesView)
        } catch let error as RegistryError {
            throw RegistryError(
                .internalError, "The registry sent a response the client cannot read: \(error.message)",
                details: ["path": .string(call.path)])
        }
    }

    /// Sends `call` and discards the response body.
    func perform(_ call: Call) async throws {
        _ = try await collect(try await send(call))
    }

    func collect(_ response: HTTPClientResponse) async throws -> ByteBuffer {
        do {
            return try await response.body.collect(upTo: maxResponseBytes)
        } catch {
            throw Self.transportError(error, call: nil)
        }
    }

    private func decodeError(_ response: HTTPClientResponse) async -> RegistryError {
        let status = response.status
        let bytes = try? await response.body.collect(upTo: 1024 * 1024)
        if let bytes, let body = try? JSONCoding.decode(ErrorResponse.self, from: bytes.readableBytesView) {
            return body.registryError
        }
        let code: RegistryError.Code =
            switch status.code {
            case 401: .unauthenticated
            case 403: .permissionDenied
            case 404: .notFound
            case 502, 503, 504: .unavailable
            default: .internalError
            }
        return RegistryError(
            code, "The registry answered \(status.code) \(status.reasonPhrase) without an error body.",
            details: ["status": .number(Double(status.code))])
    }

    /// Any failure to reach the registry or to read its answer, other than an error it reported.
    static func transportError(_ error: any Error, call: Call?) -> any Error {
        if error is RegistryError || error is CancellationError { return error }
        var details: [String: JSONValue] = ["reason": .string(String(describing: error))]
        if let call { details["path"] = .string(call.path) }
        return RegistryError(.unavailable, "The registry could not be reached: \(error).", details: details)
    }

    static func queryString(_ items: [(String, String?)]) -> String {
        let present = items.compactMap { name, value in value.map { (name, $0) } }
        guard !present.isEmpty else { return "" }
        return "?" + present.map { "\($0)=\(escape($1))" }.joined(separator: "&")
    }

    /// Percent-encodes a path segment or query value.
    static func escape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// Where this client's writes committed, so that its reads can ask to see them (`Registry-Position`).
public final class WriteSession: Sendable {
    static let header = "Registry-Position"
    private let newest = Mutex<String?>(nil)

    public init() {}

    /// The newest position a write answered with, nil before the first write (or against a registry without read
    /// replicas).
    public var position: String? { newest.withLock { $0 } }

    /// Keeps `position` when it is newer than the one held. Positions are PostgreSQL log positions (`16/B374D848`);
    /// one that does not parse as such replaces the held one.
    public func advance(to position: String) {
        newest.withLock { held in
            if let held, let old = ReadConsistency.order(of: held), let new = ReadConsistency.order(of: position),
                new <= old
            {
                return
            }
            held = position
        }
    }
}
