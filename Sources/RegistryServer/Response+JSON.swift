import Foundation
import Hummingbird
import RegistryCore

/// One shared encoder with the registry's JSON conventions; `JSONEncoder` is safe to share across tasks.
enum ResponseEncoding {
    static let encoder: JSONEncoder = JSONCoding.encoder

    static func bytes(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try encoder.encode(value))
    }
}

extension Response {
    /// A JSON response of `value`; `revision` adds `ETag: "<revision>"`.
    static func json(
        _ value: some Encodable, status: HTTPResponse.Status = .ok, revision: Int? = nil, headers: HTTPFields = [:]
    ) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        if let revision { fields[.eTag] = ETag.make(revision) }
        return Response(status: status, headers: fields, body: .init(byteBuffer: try ResponseEncoding.bytes(value)))
    }

    static func noContent() -> Response {
        Response(status: .noContent)
    }
}

/// Strong entity tags for revisions.
enum ETag {
    static func make(_ revision: Int) -> String { "\"\(revision)\"" }

    /// The revision in an `If-Match` value such as `"7"`, `W/"7"` or `7`; nil when it is not one.
    static func revision(from header: String) -> Int? {
        var text = Substring(header.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
        guard let value = Int(text), value >= 0 else { return nil }
        return value
    }
}
