import Hummingbird
import RegistryAPI
import RegistryCore

/// The one place that turns `RegistryError` codes into HTTP statuses and error bodies.
enum HTTPErrorMapping {
    /// The HTTP status for `code`; unknown codes fall back on their naming convention, then on 500.
    static func status(for code: RegistryError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidName, .invalidArgument, .malformedJSON, .invalidPageToken, .invalidDigest, .invalidManifest,
            .digestMismatch, .sizeMismatch:
            .badRequest
        case .unauthenticated, .tokenExpired: .unauthorized
        case .tooManyRequests: .tooManyRequests
        case .permissionDenied, .selfApprovalForbidden: .forbidden
        case .notFound, .modelNotFound, .versionNotFound, .stageNotFound, .blobNotFound, .manifestNotFound,
            .rolloutNotFound:
            .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .modelExists, .versionNotApproved, .versionInUse, .invalidTransition, .alreadyDecided, .noPreviousVersion,
            .rolloutInProgress, .trustPolicyChanged, .tooManyInstances:
            .conflict
        case .revisionMismatch: .preconditionFailed
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .rangeNotSatisfiable: .rangeNotSatisfiable
        case .artifactIncomplete, .signatureRequired: .unprocessableContent
        case .signatureInvalid: .badRequest
        case .preconditionRequired: .preconditionRequired
        case .unavailable, .storeUnavailable: .serviceUnavailable
        case .storageFull: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        case .internalError, .blobCorrupt, .masterKeyUnknown: .internalServerError
        default:
            if code.rawValue.hasPrefix("INVALID_") {
                .badRequest
            } else if code.rawValue.hasSuffix("NOT_FOUND") {
                .notFound
            } else {
                .internalServerError
            }
        }
    }

    /// The `RegistryError` for an error Hummingbird raised itself (unknown route, oversized body, …).
    static func registryError(for error: any HTTPResponseError) -> RegistryError {
        switch error.status {
        case .notFound: RegistryError(.notFound, "No such resource.")
        case .methodNotAllowed: RegistryError(.methodNotAllowed, "This method is not allowed on this resource.")
        case .contentTooLarge: RegistryError(.payloadTooLarge, "The request body is too large.")
        case .unsupportedMediaType: RegistryError(.unsupportedMediaType, "Unsupported content type.")
        case .badRequest: RegistryError(.invalidArgument, "The request is not valid.")
        case .unauthorized: RegistryError(.unauthenticated, "Authentication is required.")
        case .forbidden: RegistryError(.permissionDenied, "Permission denied.")
        default: RegistryError(.internalError, "The server could not complete the request.")
        }
    }

    /// The error response: `{"error": {"code", "message", "details"}}` with the status of its code.
    static func response(for error: RegistryError) -> Response {
        response(for: error, status: status(for: error.code))
    }

    /// The error response with a `status` that the route chose because the code means something else there
    /// (a signature refused at promotion is a conflict, at upload a bad request).
    static func response(for error: RegistryError, status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        switch error.code {
        case .unauthenticated, .tokenExpired:
            headers[.wwwAuthenticate] = "Bearer realm=\"registry\""
        case .tooManyRequests, .unavailable, .storeUnavailable:
            if case .number(let seconds)? = error.details["retryAfterSeconds"] {
                headers[.retryAfter] = String(Int(seconds.rounded(.up)))
            }
        case .rangeNotSatisfiable:
            if case .number(let size)? = error.details["size"] {
                headers[.contentRange] = "bytes */\(Int64(size))"
            }
        case .methodNotAllowed:
            if case .string(let allow)? = error.details["allow"] {
                headers[.allow] = allow
            }
        default:
            break
        }
        let bytes =
            (try? JSONCoding.encode(ErrorResponse(error)))
            ?? Array(#"{"error":{"code":"INTERNAL","message":"","details":{}}}"#.utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
