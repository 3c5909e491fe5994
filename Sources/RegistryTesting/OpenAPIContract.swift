import Foundation
import RegistryCore
import Synchronization
import Testing

/// Checks responses against the OpenAPI document the server serves at `/openapi.json`, so that a field the server
/// sends but the document does not describe (or describes but the server never sends) fails a test instead of
/// surprising a client generated from the document.
///
/// It understands the part of JSON Schema the registry's document uses: `type` (one or a list, with `null`),
/// `properties`, `required`, `additionalProperties`, `items`, `minItems`/`maxItems`, `enum`, `oneOf`/`anyOf`,
/// `$ref` to `#/components/schemas/…`, `minimum`/`maximum`/`exclusiveMinimum`, `pattern` and the `date-time` format.
public struct OpenAPIContract: Sendable {
    public let document: JSONValue
    private let operations: [Operation]

    struct Operation: Sendable {
        var method: String
        /// The path template split at `/`; `{name}` segments match any one segment.
        var segments: [String]
        var responses: [String: JSONValue]
        /// Whether the operation overrides the document's bearer requirement with `security: []`.
        var isPublic: Bool
    }

    public init(document: JSONValue) {
        self.document = document
        var operations: [Operation] = []
        if case .object(let paths)? = document["paths"] {
            for (path, item) in paths {
                guard case .object(let methods) = item else { continue }
                for (method, operation) in methods {
                    guard case .object(let responses)? = operation["responses"] else { continue }
                    operations.append(
                        Operation(
                            method: method.uppercased(), segments: path.split(separator: "/").map(String.init),
                            responses: responses, isPublic: operation["security"] == .array([])))
                }
            }
        }
        // Literal segments win over parameters (`/v1/blobs/check` before `/v1/blobs/{digest}`).
        func parameters(_ operation: Operation) -> Int { operation.segments.filter { $0.hasPrefix("{") }.count }
        self.operations = operations.sorted { parameters($0) < parameters($1) }
    }

    /// Every operation of the document as `METHOD /path/{template}`.
    public var operationNames: Set<String> {
        Set(operations.map { "\($0.method) /" + $0.segments.joined(separator: "/") })
    }

    /// The operations that need a token, as method and path template.
    public var protectedOperations: [(method: String, path: String)] {
        operations.filter { !$0.isPublic }.map { ($0.method, "/" + $0.segments.joined(separator: "/")) }
    }

    /// The problems of one response, empty when it matches the document: an undocumented status, or a JSON body
    /// that breaks the schema documented for its status. Non-JSON bodies are checked for their status only; a path
    /// the document does not describe is not part of the contract (an unknown route's 404 or 405 is tested apart).
    public func problems(method: String, path: String, status: Int, contentType: String?, body: [UInt8]) -> [String] {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        let segments = route.split(separator: "/").map(String.init)
        let method = method == "HEAD" ? "GET" : method
        guard
            let operation = operations.first(where: { operation in
                operation.method == method && operation.segments.count == segments.count
                    && zip(operation.segments, segments).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
            })
        else { return [] }
        guard let response = operation.responses[String(status)] ?? operation.responses["default"] else {
            return ["\(method) \(route): status \(status) is not documented"]
        }
        guard !body.isEmpty, let contentType, contentType.hasPrefix("application/json"), method != "HEAD" else {
            return []
        }
        guard let schema = response["content"]?["application/json"]?["schema"] else {
            return ["\(method) \(route) \(status): a JSON body where the document describes none"]
        }
        let value: JSONValue
        do {
            value = try JSONCoding.decode(JSONValue.self, from: body)
        } catch {
            return ["\(method) \(route) \(status): the body is not JSON"]
        }
        return validate(value, against: schema, at: "$").map { "\(method) \(route) \(status): \($0)" }
    }

    /// The ways `value` breaks `schema`, each with the JSON path where it does.
    public func validate(_ value: JSONValue, against schema: JSONValue, at path: String) -> [String] {
        guard case .object(let rules) = schema else { return [] }
        if case .string(let reference)? = rules["$ref"] {
            let name = reference.replacingOccurrences(of: "#/components/schemas/", with: "")
            guard let target = document["components"]?["schemas"]?[name] else {
                return ["\(path): unknown \(reference)"]
            }
            return validate(value, against: target, at: path)
        }
        var problems: [String] = []
        for key in ["oneOf", "anyOf"] {
            guard case .array(let options)? = rules[key] else { continue }
            let matching = options.filter { validate(value, against: $0, at: path).isEmpty }.count
            if matching == 0 || (key == "oneOf" && matching > 1) {
                problems.append("\(path): matches \(matching) of the \(options.count) schemas of \(key)")
            }
        }
        if let type = rules["type"] {
            let allowed: [String] =
                switch type {
                case .string(let one): [one]
                case .array(let many): many.compactMap { if case .string(let name) = $0 { name } else { nil } }
                default: []
                }
            guard allowed.contains(where: { Self.has(value, type: $0) }) else {
                let documented = allowed.joined(separator: " or ")
                return problems + ["\(path): \(Self.describe(value)) where the document says \(documented)"]
            }
        }
        if case .array(let options)? = rules["enum"], !options.contains(value) {
            problems.append("\(path): \(Self.describe(value)) is not one of the documented values")
        }
        switch value {
        case .object(let members):
            if case .array(let required)? = rules["required"] {
                for case .string(let name) in required where members[name] == nil {
                    problems.append("\(path): documented as always present, '\(name)' is missing")
                }
            }
            let properties: [String: JSONValue]
            if case .object(let declared)? = rules["properties"] { properties = declared } else { properties = [:] }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let property = properties[name] {
                    problems += validate(member, against: property, at: "\(path).\(name)")
                } else if let additional = rules["additionalProperties"] {
                    if additional == .bool(false) {
                        problems.append("\(path): '\(name)' is not in the document")
                    } else {
                        problems += validate(member, against: additional, at: "\(path).\(name)")
                    }
                }
            }
        case .array(let items):
            if case .number(let most)? = rules["maxItems"], Double(items.count) > most {
                problems.append("\(path): \(items.count) items, at most \(Int(most)) documented")
            }
            if case .number(let least)? = rules["minItems"], Double(items.count) < least {
                problems.append("\(path): \(items.count) items, at least \(Int(least)) documented")
            }
            if let item = rules["items"] {
                for (index, element) in items.enumerated() {
                    problems += validate(element, against: item, at: "\(path)[\(index)]")
                }
            }
        case .number(let number):
            if case .number(let minimum)? = rules["minimum"], number < minimum {
                problems.append("\(path): \(number) is below the documented minimum \(minimum)")
            }
            if case .number(let minimum)? = rules["exclusiveMinimum"], number <= minimum {
                problems.append("\(path): \(number) is not above the documented minimum \(minimum)")
            }
            if case .number(let maximum)? = rules["maximum"], number > maximum {
                problems.append("\(path): \(number) is above the documented maximum \(maximum)")
            }
        case .string(let text):
            if case .string(let pattern)? = rules["pattern"], !Self.matches(text, pattern) {
                problems.append("\(path): '\(text.prefix(80))' does not match \(pattern)")
            }
            if rules["format"] == .string("date-time"), !Self.matches(text, Self.dateTime) {
                problems.append("\(path): '\(text.prefix(80))' is not an RFC 3339 date-time")
            }
        default:
            break
        }
        return problems
    }

    static func has(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object),
            ("number", .number):
            true
        case ("integer", .number(let number)): number.rounded() == number
        default: false
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "the boolean \(flag)"
        case .number(let number): "the number \(number)"
        case .string(let text): "the string '\(text.prefix(40))'"
        case .array(let items): "an array of \(items.count)"
        case .object: "an object"
        }
    }

    /// RFC 3339 date-time, as the server writes it (fractional seconds optional).
    static let dateTime = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"#

    /// Compiled patterns by source: every response of every test is checked, so a pattern is compiled once.
    private static let patterns = Mutex<[String: NSRegularExpression]>([:])

    static func matches(_ text: String, _ pattern: String) -> Bool {
        let expression = patterns.withLock { cache -> NSRegularExpression? in
            if let compiled = cache[pattern] { return compiled }
            let compiled = try? NSRegularExpression(pattern: pattern)
            cache[pattern] = compiled
            return compiled
        }
        guard let expression else { return false }
        return expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

extension OpenAPIContract {
    /// The document `endpoint` serves, fetched once per process (every registry of one build serves the same one).
    public static func served(by endpoint: some RegistryEndpoint) async throws -> OpenAPIContract {
        if let contract = cache.withLock({ $0 }) { return contract }
        let response = try await endpoint.send(.GET, "/openapi.json", token: nil, checkContract: false)
        guard response.status == 200 else { throw TestFailure("/openapi.json: \(response.status)") }
        let contract = OpenAPIContract(document: try JSONCoding.decode(JSONValue.self, from: response.body))
        cache.withLock { $0 = contract }
        return contract
    }

    private static let cache = Mutex<OpenAPIContract?>(nil)

    /// Records an issue for every way `response` to `method path` breaks the document `endpoint` serves.
    public static func check(
        _ response: TestResponse, method: String, path: String, endpoint: some RegistryEndpoint,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let contract = try await served(by: endpoint)
        for problem in contract.problems(
            method: method, path: path, status: response.status, contentType: response.header("Content-Type"),
            body: response.body)
        {
            Issue.record("Contract: \(problem)", sourceLocation: sourceLocation)
        }
    }
}
