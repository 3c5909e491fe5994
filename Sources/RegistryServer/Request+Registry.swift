import Foundation
import Hummingbird
import NIOCore
import RegistryAPI
import RegistryCore

extension Request {
    /// Decodes a JSON body of at most `maxBytes`: 415 without a JSON content type, 413 when too large, 400 when
    /// malformed or invalid. An empty body decodes as `{}` when `allowEmpty` is set.
    func decodeJSON<T: Decodable>(_ type: T.Type, maxBytes: Int, allowEmpty: Bool = false) async throws -> T {
        if let length = headers[.contentLength].flatMap(Int.init), length > maxBytes {
            throw RegistryError(.payloadTooLarge, "The request body is larger than \(maxBytes) bytes.")
        }
        let contentType = headers[.contentType]
        if contentType != nil || !allowEmpty {
            guard let contentType, Self.isJSON(contentType) else {
                throw RegistryError(
                    .unsupportedMediaType, "The request body must be sent with Content-Type: application/json.")
            }
        }
        let buffer = try await ByteStream(body).collect(upTo: maxBytes)
        if buffer.readableBytes == 0 {
            guard allowEmpty else { throw RegistryError(.malformedJSON, "The request body is empty.") }
            return try JSONCoding.decode(T.self, from: Array("{}".utf8))
        }
        return try JSONCoding.decode(T.self, from: buffer.readableBytesView)
    }

    /// Whether `contentType` names JSON: `application/json` or any `application/*+json`, parameters ignored.
    static func isJSON(_ contentType: String) -> Bool {
        let media =
            contentType.split(separator: ";", maxSplits: 1).first.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            } ?? ""
        return media == "application/json" || (media.hasPrefix("application/") && media.hasSuffix("+json"))
    }

    /// The revision from `If-Match`; 428 when absent, 400 when it is not a revision ETag.
    func requiredIfMatch() throws -> Int {
        guard let header = headers[.ifMatch] else {
            throw RegistryError(
                .preconditionRequired, "This change needs an If-Match header with the resource's current ETag.")
        }
        guard let revision = ETag.revision(from: header) else {
            throw RegistryError.invalidArgument(
                "If-Match must hold one ETag such as \"7\", as returned by the resource.", field: "If-Match")
        }
        return revision
    }

    /// A query parameter, nil when absent or empty.
    func query(_ name: String) -> String? {
        guard let value = uri.queryParameters[name[...]].map(String.init), !value.isEmpty else { return nil }
        return value
    }

    /// An integer query parameter; 400 when present but not an integer in `range`.
    func intQuery(_ name: String, in range: ClosedRange<Int> = 0...Int.max) throws -> Int? {
        guard let text = query(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw RegistryError.invalidArgument(
                "Query parameter '\(name)' must be an integer between \(range.lowerBound) and \(range.upperBound).",
                field: name)
        }
        return value
    }

    /// The page size from `?limit=`, clamped to 1…`PageLimit.maximum` (default `PageLimit.default`).
    func pageLimit() throws -> Int {
        PageLimit.clamp(try intQuery("limit", in: 1...Int.max))
    }

    /// The bearer secret from `Authorization`, nil when there is none.
    var bearerToken: String? {
        guard let header = headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}

extension Parameters {
    /// A percent-decoded path parameter; the router only matches when it is present.
    func required(_ name: String) -> String {
        let raw = get(name) ?? ""
        return raw.contains("%") ? (raw.removingPercentEncoding ?? raw) : raw
    }
}
