import Foundation
import Hummingbird
import RegistryCore
import RegistryService

/// One shared encoder with the registry's JSON conventions; `JSONEncoder` is safe to share across tasks.
enum ResponseEncoding {
    static let encoder: JSONEncoder = JSONCoding.encoder

    static func bytes(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try encoder.encode(value))
    }
}

/// The JSON bytes of recently rendered values by key: a hot read that returns the same value as the last time
/// (compared with `==`, so never stale) reuses the bytes instead of encoding again.
///
/// Encoding with `JSONEncoder` was the largest single cost of a cached read; comparing two values is far cheaper.
/// Bounded by bytes (`budget`), least recently used first: a page of versions with large metadata costs what it
/// weighs, not one slot.
final class RenderedResponses<Key: Hashable & Sendable, Value: Equatable & Encodable & Sendable>: Sendable {
    private struct Rendered: Sendable {
        var value: Value
        var bytes: ByteBuffer
    }

    private let entries: ByteBudgetCache<Key, Rendered>

    init(budget: Int) {
        entries = ByteBudgetCache(budget: budget)
    }

    /// The JSON of `value`, rendered earlier for `key` when that rendering was of an equal value.
    func bytes(_ key: Key, _ value: Value) throws -> ByteBuffer {
        if let hit = entries.get(key), hit.value == value { return hit.bytes }
        let bytes = try ResponseEncoding.bytes(value)
        // The decoded value is kept beside its JSON for the comparison; it weighs about as much again.
        entries.put(key, Rendered(value: value, bytes: bytes), cost: 2 * bytes.readableBytes)
        return bytes
    }

    /// The bytes the cached renderings cost now (for tests and metrics).
    var cachedBytes: Int { entries.bytes }
}

extension Response {
    /// A JSON response of already rendered `bytes`; `revision` adds `ETag: "<revision>"`.
    static func json(
        rendered bytes: ByteBuffer, status: HTTPResponse.Status = .ok, revision: Int? = nil, headers: HTTPFields = [:]
    ) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        if let revision { fields[.eTag] = ETag.make(revision) }
        return Response(status: status, headers: fields, body: .init(byteBuffer: bytes))
    }

    /// A JSON response of `value`; `revision` adds `ETag: "<revision>"`.
    static func json(
        _ value: some Encodable, status: HTTPResponse.Status = .ok, revision: Int? = nil, headers: HTTPFields = [:]
    ) throws -> Response {
        json(rendered: try ResponseEncoding.bytes(value), status: status, revision: revision, headers: headers)
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
