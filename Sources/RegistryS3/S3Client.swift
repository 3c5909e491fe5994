import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import RegistryCore

/// A minimal S3 client on AsyncHTTPClient: exactly the calls the registry needs, strictly within the S3 REST
/// protocol (path-style addressing, SigV4 header signing with signed payloads), so it works against AWS S3,
/// MinIO, Ceph RGW and SeaweedFS alike.
///
/// Every failure is a `RegistryError`: `UNAVAILABLE` when the object store cannot be reached or refuses the
/// request (its S3 error code, HTTP status and request id are in the details), never the credentials.
public final class S3Client: Sendable {
    /// Where objects live: `endpoint` is `scheme://host[:port]`, the bucket is addressed path-style.
    public struct Location: Sendable {
        public var endpoint: String
        public var bucket: String
        public var region: String

        public init(endpoint: String, bucket: String, region: String) {
            self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
            self.bucket = bucket
            self.region = region
        }
    }

    /// What `HEAD` tells of an object.
    public struct ObjectInfo: Sendable {
        public var size: Int64
        public var etag: String?
        public var lastModified: Date?
    }

    /// An upload begun with `createMultipartUpload` and not yet completed or aborted.
    public struct PendingUpload: Sendable, Equatable {
        public var key: String
        public var uploadId: String
        public var initiated: Date?
    }

    public let location: Location
    private let signer: SigV4Signer
    private let http: HTTPClient
    private let host: String
    /// How long one request may take, body included.
    private let timeout: TimeAmount

    public init(
        location: Location, credentials: SigV4Signer.Credentials, httpClient: HTTPClient = .shared,
        timeout: TimeAmount = .minutes(5)
    ) throws {
        guard let url = URL(string: location.endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme),
            let hostName = url.host, !hostName.isEmpty, url.path.isEmpty || url.path == "/"
        else {
            throw RegistryError(
                .invalidArgument, "The S3 endpoint must be http(s)://host[:port], not '\(location.endpoint)'.")
        }
        guard Self.isValidBucketName(location.bucket) else {
            throw RegistryError(.invalidArgument, "'\(location.bucket)' is not a valid S3 bucket name.")
        }
        self.location = location
        self.signer = SigV4Signer(credentials: credentials, region: location.region)
        self.http = httpClient
        self.host = url.port.map { "\(hostName):\($0)" } ?? hostName
        self.timeout = timeout
    }

    // MARK: Objects

    /// `HEAD`: nil when there is no such object.
    public func head(_ key: String) async throws -> ObjectInfo? {
        let response = try await send(.HEAD, key: key)
        if response.status == .notFound { return nil }
        try await Self.check(response, "HEAD", key)
        return ObjectInfo(
            size: response.headers.first(name: "Content-Length").flatMap { Int64($0) } ?? 0,
            etag: response.headers.first(name: "ETag"),
            lastModified: response.headers.first(name: "Last-Modified").flatMap(Self.parseHTTPDate))
    }

    /// `GET`, optionally of the byte `range` and only if the object still has the entity tag `ifMatch`. Returns nil
    /// when there is no such object; the caller reads (or drops) the body. A changed entity tag throws
    /// `S3Client.PreconditionFailed`.
    public func get(_ key: String, range: Range<Int64>? = nil, ifMatch: String? = nil) async throws
        -> HTTPClientResponse?
    {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        if let ifMatch { headers.append(("If-Match", ifMatch)) }
        let response = try await send(.GET, key: key, headers: headers)
        switch response.status {
        case .notFound:
            _ = try? await response.body.collect(upTo: 64 << 10)
            return nil
        case .preconditionFailed:
            _ = try? await response.body.collect(upTo: 64 << 10)
            throw PreconditionFailed()
        case .ok, .partialContent:
            return response
        default:
            try await Self.check(response, "GET", key)  // throws: the body holds the error
            return response
        }
    }

    /// Thrown by `get` when the object no longer has the entity tag it was asked for.
    public struct PreconditionFailed: Error {}

    /// `PUT` of a whole object; returns its entity tag.
    @discardableResult
    public func put(_ key: String, body: ByteBuffer, metadata: [String: String] = [:]) async throws -> String? {
        let headers = metadata.map { ("x-amz-meta-\($0.key)", $0.value) }
        let response = try await send(.PUT, key: key, headers: headers, body: body)
        try await Self.check(response, "PUT", key)
        return response.headers.first(name: "ETag")
    }

    /// `DELETE`; deleting an absent object is not an error.
    public func delete(_ key: String) async throws {
        let response = try await send(.DELETE, key: key)
        if response.status == .notFound { return }
        try await Self.check(response, "DELETE", key)
    }

    /// Every key under `prefix`, a page (up to 1000) at a time.
    public func list(prefix: String, continuationToken: String? = nil) async throws -> (keys: [String], next: String?) {
        var query = [("list-type", "2"), ("prefix", prefix)]
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        let response = try await send(.GET, key: nil, query: query)
        let body = try await Self.check(response, "LIST", prefix)
        let keys = XMLText.all("Key", in: body)
        let truncated = XMLText.first("IsTruncated", in: body) == "true"
        return (keys, truncated ? XMLText.first("NextContinuationToken", in: body) : nil)
    }

    // MARK: Multipart uploads

    /// Starts a multipart upload to `key`; the object appears only when it is completed.
    public func createMultipartUpload(_ key: String) async throws -> String {
        let response = try await send(.POST, key: key, query: [("uploads", "")])
        let body = try await Self.check(response, "CREATE UPLOAD", key)
        guard let id = XMLText.first("UploadId", in: body), !id.isEmpty else {
            throw Self.failure("CREATE UPLOAD", key, status: 200, code: "NoUploadId", message: "no UploadId in answer")
        }
        return id
    }

    /// Uploads part `number` (1-based; every part but the last must be at least 5 MiB); returns its entity tag.
    public func uploadPart(_ key: String, uploadId: String, number: Int, body: ByteBuffer) async throws -> String {
        let response = try await send(
            .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)], body: body)
        try await Self.check(response, "UPLOAD PART", key)
        guard let etag = response.headers.first(name: "ETag") else {
            throw Self.failure("UPLOAD PART", key, status: 200, code: "NoETag", message: "no ETag for the part")
        }
        return etag
    }

    /// Completes a multipart upload from its parts' entity tags, in order: the object appears whole, at once.
    public func completeMultipartUpload(_ key: String, uploadId: String, parts: [String]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (index, etag) in parts.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(XMLText.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try await send(
            .POST, key: key, query: [("uploadId", uploadId)], headers: [("Content-Type", "application/xml")],
            body: ByteBuffer(string: xml))
        let body = try await Self.check(response, "COMPLETE UPLOAD", key)
        // Like a copy, completion can fail after its 200 head.
        if body.contains("<Error>") {
            throw Self.failure(
                "COMPLETE UPLOAD", key, status: 200, code: XMLText.first("Code", in: body) ?? "Error",
                message: XMLText.first("Message", in: body))
        }
    }

    /// Aborts a multipart upload and frees its parts; an unknown upload is not an error.
    public func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        let response = try await send(.DELETE, key: key, query: [("uploadId", uploadId)])
        if response.status == .notFound { return }
        try await Self.check(response, "ABORT UPLOAD", key)
    }

    /// Multipart uploads under `prefix` that were started and neither completed nor aborted (first 1000).
    public func pendingUploads(prefix: String) async throws -> [PendingUpload] {
        let response = try await send(.GET, key: nil, query: [("uploads", ""), ("prefix", prefix)])
        let body = try await Self.check(response, "LIST UPLOADS", prefix)
        return XMLText.elements("Upload", in: body).compactMap { upload in
            guard let key = XMLText.first("Key", in: upload), let id = XMLText.first("UploadId", in: upload) else {
                return nil
            }
            return PendingUpload(
                key: key, uploadId: id, initiated: XMLText.first("Initiated", in: upload).flatMap(Self.parseISODate))
        }
    }

    // MARK: Buckets

    /// Creates the bucket; one that already exists and is ours is not an error.
    public func createBucket() async throws {
        let response = try await send(.PUT, key: nil)
        if response.status == .conflict {
            let body = String(buffer: try await response.body.collect(upTo: 64 << 10))
            if XMLText.first("Code", in: body) == "BucketAlreadyOwnedByYou" { return }
            throw Self.failure(
                "CREATE BUCKET", "", status: 409, code: XMLText.first("Code", in: body) ?? "", message: nil)
        }
        try await Self.check(response, "CREATE BUCKET", "")
    }

    // MARK: Transport

    /// Signs and sends one request. Requests that fail to connect or meet a 500/503 are tried up to three times
    /// with growing pauses: every call here is idempotent.
    private func send(
        _ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: ByteBuffer? = nil
    ) async throws -> HTTPClientResponse {
        let path = "/\(location.bucket)" + (key.map { "/" + $0 } ?? "")
        let payloadHash =
            body.map { buffer in
                buffer.withUnsafeReadableBytes { Hex.encode(SHA256.hash(data: $0)) }
            } ?? SigV4Signer.emptyPayloadHash
        var attempt = 0
        while true {
            attempt += 1
            var all = headers + [("host", host)]
            if let body { all.append(("Content-Length", String(body.readableBytes))) }
            all += signer.sign(
                method: method.rawValue, path: path, query: query, headers: all, payloadHash: payloadHash)
            var request = HTTPClientRequest(url: location.endpoint + Self.target(path: path, query: query))
            request.method = method
            for (name, value) in all where name != "host" { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(body) }
            do {
                let response = try await http.execute(request, timeout: timeout)
                if [500, 502, 503].contains(response.status.code) && attempt < 3 {
                    _ = try? await response.body.collect(upTo: 64 << 10)
                    try await Task.sleep(for: .milliseconds(100 * attempt * attempt))
                    continue
                }
                return response
            } catch let error as HTTPClientError where attempt < 3 && Self.isRetryable(error) {
                try await Task.sleep(for: .milliseconds(100 * attempt * attempt))
            } catch {
                throw RegistryError(
                    .unavailable, "The object store at \(location.endpoint) cannot be reached: \(error).",
                    details: ["backend": "s3", "operation": .string(method.rawValue)])
            }
        }
    }

    private static func isRetryable(_ error: HTTPClientError) -> Bool {
        [.connectTimeout, .remoteConnectionClosed, .readTimeout].contains(error)
    }

    /// The request target: the encoded path and the canonical query (S3 accepts it in any order).
    private static func target(path: String, query: [(String, String)]) -> String {
        let encodedPath = SigV4Signer.encodePath(path)
        guard !query.isEmpty else { return encodedPath }
        return encodedPath + "?" + SigV4Signer.canonicalQuery(query)
    }

    /// Returns the body (at most 1 MiB) of a successful response; throws `UNAVAILABLE` with the S3 error otherwise.
    @discardableResult
    private static func check(_ response: HTTPClientResponse, _ operation: String, _ key: String) async throws
        -> String
    {
        let body = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
        guard (200..<300).contains(response.status.code) else {
            throw failure(
                operation, key, status: Int(response.status.code),
                code: XMLText.first("Code", in: body) ?? response.status.reasonPhrase,
                message: XMLText.first("Message", in: body),
                requestId: response.headers.first(name: "x-amz-request-id"))
        }
        return body
    }

    private static func failure(
        _ operation: String, _ key: String, status: Int, code: String, message: String?, requestId: String? = nil
    ) -> RegistryError {
        var details: [String: JSONValue] = [
            "backend": "s3", "operation": .string(operation), "status": .number(Double(status)),
            "s3Code": .string(code),
        ]
        if let requestId { details["s3RequestId"] = .string(requestId) }
        let what = key.isEmpty ? "" : " of '\(key)'"
        return RegistryError(
            .unavailable, "The object store refused \(operation)\(what): \(code)\(message.map { " (\($0))" } ?? "").",
            details: details)
    }

    static func isValidBucketName(_ name: String) -> Bool {
        (3...63).contains(name.count)
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
            && name.first != "-" && name.first != "." && name.last != "-" && name.last != "."
    }

    static func parseHTTPDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }

    static func parseISODate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}

/// Just enough XML for S3's answers: the text of named elements, which hold no nested elements of the same name.
enum XMLText {
    /// The unescaped text of every `<name>…</name>`.
    static func all(_ name: String, in xml: String) -> [String] {
        elements(name, in: xml).map(unescape)
    }

    /// The unescaped text of the first `<name>…</name>`.
    static func first(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"),
            let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex)
        else { return nil }
        return unescape(String(xml[open.upperBound..<close.lowerBound]))
    }

    /// The raw inner text of every `<name>…</name>`.
    static func elements(_ name: String, in xml: String) -> [String] {
        var result: [String] = []
        var rest = xml.startIndex..<xml.endIndex
        while let open = xml.range(of: "<\(name)>", range: rest),
            let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex)
        {
            result.append(String(xml[open.upperBound..<close.lowerBound]))
            rest = close.upperBound..<xml.endIndex
        }
        return result
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var result = text
        for (entity, character) in [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&apos;", "'"), ("&#34;", "\"")] {
            result = result.replacingOccurrences(of: entity, with: character)
        }
        return result.replacingOccurrences(of: "&amp;", with: "&")
    }
}
