import RegistryCore

/// Every error answer: `{"error": {"code", "message", "details"}}`.
public struct ErrorResponse: Sendable, Equatable, Codable {
    public struct Body: Sendable, Equatable, Codable {
        public var code: String
        public var message: String
        public var details: [String: JSONValue]

        public init(code: String, message: String, details: [String: JSONValue] = [:]) {
            self.code = code
            self.message = message
            self.details = details
        }

        enum CodingKeys: String, CodingKey { case code, message, details }

        /// `details` may be missing (read as empty), from a proxy or an older registry.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            code = try container.decode(String.self, forKey: .code)
            message = try container.decode(String.self, forKey: .message)
            details = try container.decodeIfPresent([String: JSONValue].self, forKey: .details) ?? [:]
        }
    }

    public var error: Body

    public init(_ error: RegistryError) {
        self.error = Body(code: error.code.rawValue, message: error.message, details: error.details)
    }

    /// The error this body reports.
    public var registryError: RegistryError {
        RegistryError(RegistryError.Code(error.code), error.message, details: error.details)
    }

    public static let schema = Schema.record([
        "error": Schema.record(["code": Schema.string, "message": Schema.string, "details": Schema.anyObject])
    ])
}
