import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A minimal JSON-over-HTTP caller for the benchmark: it measures the server, so it stays thin.
struct BenchmarkHTTP: Sendable {
    let client: HTTPClient
    let baseURL: String
    let token: String

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer

        func json() throws -> [String: Any] {
            let data = Data(body.readableBytesView)
            return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        }

        var etagRevision: Int? {
            headers.first(name: "etag").flatMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "\"W/"))) }
        }
    }

    func send(
        _ method: HTTPMethod, _ path: String, json: Any? = nil, bytes: [UInt8]? = nil,
        headers extra: [(String, String)] = [],
        token overrideToken: String? = nil
    ) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(overrideToken ?? token)")
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        } else if let bytes {
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 8 << 20)
        return Response(status: Int(response.status.code), headers: response.headers, body: body)
    }

    /// Sends and insists on one of `expected` statuses.
    @discardableResult
    func expect(
        _ expected: Set<Int>, _ method: HTTPMethod, _ path: String, json: Any? = nil, bytes: [UInt8]? = nil,
        headers: [(String, String)] = [], token: String? = nil
    ) async throws -> Response {
        let response = try await send(method, path, json: json, bytes: bytes, headers: headers, token: token)
        guard expected.contains(response.status) else {
            throw BenchmarkFailure(
                "\(method) \(path) answered \(response.status): \(String(buffer: response.body).prefix(300))")
        }
        return response
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
