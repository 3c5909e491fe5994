/// An error with a stable code that clients can rely on; the server maps each code to one HTTP status.
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, SCREAMING_SNAKE_CASE identifier for a kind of failure. New codes can be added without breaking clients.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
        ExpressibleByStringLiteral
    {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }

        // Input
        public static let invalidName: Code = "INVALID_NAME"
        public static let invalidArgument: Code = "INVALID_ARGUMENT"
        public static let malformedJSON: Code = "MALFORMED_JSON"
        public static let unsupportedMediaType: Code = "UNSUPPORTED_MEDIA_TYPE"
        public static let payloadTooLarge: Code = "PAYLOAD_TOO_LARGE"
        public static let invalidPageToken: Code = "INVALID_PAGE_TOKEN"
        public static let invalidDigest: Code = "INVALID_DIGEST"
        public static let invalidManifest: Code = "MANIFEST_INVALID"
        public static let rangeNotSatisfiable: Code = "RANGE_NOT_SATISFIABLE"
        // Identity
        public static let unauthenticated: Code = "UNAUTHENTICATED"
        public static let permissionDenied: Code = "PERMISSION_DENIED"
        // Resources
        public static let notFound: Code = "NOT_FOUND"
        public static let methodNotAllowed: Code = "METHOD_NOT_ALLOWED"
        public static let modelNotFound: Code = "MODEL_NOT_FOUND"
        public static let modelExists: Code = "MODEL_EXISTS"
        public static let versionNotFound: Code = "VERSION_NOT_FOUND"
        public static let stageNotFound: Code = "STAGE_NOT_FOUND"
        public static let rolloutNotFound: Code = "ROLLOUT_NOT_FOUND"
        public static let blobNotFound: Code = "BLOB_NOT_FOUND"
        public static let manifestNotFound: Code = "MANIFEST_NOT_FOUND"
        // Concurrency
        public static let revisionMismatch: Code = "REVISION_MISMATCH"
        public static let preconditionRequired: Code = "PRECONDITION_REQUIRED"
        public static let trustPolicyChanged: Code = "TRUST_POLICY_CHANGED"
        // Rules
        public static let versionNotApproved: Code = "VERSION_NOT_APPROVED"
        public static let versionInUse: Code = "VERSION_IN_USE"
        public static let invalidTransition: Code = "INVALID_TRANSITION"
        public static let selfApprovalForbidden: Code = "SELF_APPROVAL_FORBIDDEN"
        public static let alreadyDecided: Code = "ALREADY_DECIDED"
        public static let noPreviousVersion: Code = "NO_PREVIOUS_VERSION"
        public static let rolloutInProgress: Code = "ROLLOUT_IN_PROGRESS"
        // Artifacts
        public static let artifactIncomplete: Code = "ARTIFACT_INCOMPLETE"
        public static let digestMismatch: Code = "DIGEST_MISMATCH"
        public static let sizeMismatch: Code = "SIZE_MISMATCH"
        public static let signatureInvalid: Code = "SIGNATURE_INVALID"
        public static let signatureRequired: Code = "SIGNATURE_REQUIRED"
        /// A stored blob failed authentication on read: its bytes on disk were altered, truncated or reordered.
        public static let blobCorrupt: Code = "BLOB_CORRUPT"
        /// A stored blob was sealed under a master key that the keyring does not hold.
        public static let masterKeyUnknown: Code = "MASTER_KEY_UNKNOWN"
        // Operations
        public static let unavailable: Code = "UNAVAILABLE"
        /// The metadata store cannot take the request right now (its database restarting or unreachable); retry
        /// after `details.retryAfterSeconds`.
        public static let storeUnavailable: Code = "STORE_UNAVAILABLE"
        /// Too many requests of one kind from one caller or address; `details.retryAfterSeconds` says when to retry.
        public static let tooManyRequests: Code = "TOO_MANY_REQUESTS"
        public static let tokenExpired: Code = "TOKEN_EXPIRED"
        public static let tooManyInstances: Code = "TOO_MANY_INSTANCES"
        public static let internalError: Code = "INTERNAL"
        public static let storageFull: Code = "STORAGE_FULL"
    }

    public var code: Code
    public var message: String
    public var details: [String: JSONValue]

    public init(_ code: Code, _ message: String, details: [String: JSONValue] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }
}

extension RegistryError {
    public static func modelNotFound(_ model: String) -> RegistryError {
        RegistryError(.modelNotFound, "Model '\(model)' does not exist.", details: ["model": .string(model)])
    }

    public static func blobNotFound(_ digest: Digest) -> RegistryError {
        RegistryError(.blobNotFound, "No blob \(digest) is stored.", details: ["digest": .string(digest.description)])
    }

    public static func manifestNotFound(_ digest: Digest) -> RegistryError {
        RegistryError(
            .manifestNotFound, "No manifest \(digest) is stored.", details: ["digest": .string(digest.description)])
    }

    public static func versionNotFound(_ model: String, _ version: Int) -> RegistryError {
        RegistryError(
            .versionNotFound, "Model '\(model)' has no version \(version).",
            details: ["model": .string(model), "version": .number(Double(version))])
    }

    public static func stageNotFound(_ model: String, _ stage: String) -> RegistryError {
        RegistryError(
            .stageNotFound, "Model '\(model)' has no stage '\(stage)'.",
            details: ["model": .string(model), "stage": .string(stage)])
    }

    /// A stale precondition: `current` is the resource as it is now, returned to the caller in `details.current`.
    public static func revisionMismatch(expected: Int?, current: some Encodable, revision: Int) -> RegistryError {
        let expectedText = expected.map { "revision \($0)" } ?? "no existing resource"
        return RegistryError(
            .revisionMismatch,
            "The precondition expected \(expectedText) but the resource is at revision \(revision).",
            details: ["current": (try? JSONValue(encoding: current)) ?? .null])
    }

    public static func invalidArgument(_ message: String, field: String? = nil) -> RegistryError {
        RegistryError(.invalidArgument, message, details: field.map { ["field": .string($0)] } ?? [:])
    }

    init(decoding error: DecodingError) {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "the body" : "'\(text)'"
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            self.init(.malformedJSON, "The request body is not valid JSON.")
        case .dataCorrupted(let context):
            self.init(.invalidArgument, "Invalid value at \(path(context)): \(context.debugDescription)")
        case .keyNotFound(let key, let context):
            let prefix = context.codingPath.isEmpty ? "" : "\(path(context)) "
            self.init(
                .invalidArgument, "Missing required field \(prefix)'\(key.stringValue)'.",
                details: ["field": .string(key.stringValue)])
        case .typeMismatch(let type, let context):
            self.init(.invalidArgument, "Wrong type at \(path(context)): expected \(type).")
        case .valueNotFound(let type, let context):
            self.init(.invalidArgument, "Missing value at \(path(context)): expected \(type).")
        @unknown default:
            self.init(.malformedJSON, "The request body could not be decoded.")
        }
    }
}
