import Hummingbird
import Logging
import RegistryCore
import RegistryService

/// Wraps every route: assigns the request id, turns every error into the registry's error body, counts metrics.
struct RegistryMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    let metrics: ServerMetrics
    let routes: RouteTable
    let authFailures: AuthFailureLimiter

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        context.requestId = Self.requestId(from: request)
        context.logger[metadataKey: "request.id"] = .string(context.requestId)
        var response: Response
        let presentedToken = request.headers[.authorization] != nil
        do {
            if presentedToken { try authFailures.check(context.clientAddress) }
            response = try await Self.withConsistency(request) { try await next(request, context) }
        } catch let error as RegistryError {
            response = HTTPErrorMapping.response(for: error)
        } catch let conflict as TrustConflict {
            // A version the trust policy refuses where it would take traffic conflicts with the policy; at upload
            // the same codes mean a malformed request.
            response = HTTPErrorMapping.response(for: conflict.refusal, status: .conflict)
        } catch let error as any HTTPResponseError {
            var mapped = HTTPErrorMapping.registryError(for: error)
            if mapped.code == .notFound, let allowed = routes.allowedMethods(for: request.uri.path),
                !allowed.isEmpty
            {
                mapped = RegistryError(
                    .methodNotAllowed, "\(request.method.rawValue) is not allowed here; use \(allowed).",
                    details: ["allow": .string(allowed)])
            }
            response = HTTPErrorMapping.response(for: mapped)
        } catch is CancellationError {
            response = HTTPErrorMapping.response(for: RegistryError(.unavailable, "The server is shutting down."))
        } catch {
            context.logger.error("Unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            response = HTTPErrorMapping.response(
                for: RegistryError(.internalError, "The server could not complete the request."))
        }
        if presentedToken, response.status == .unauthorized { authFailures.recordFailure(context.clientAddress) }
        response.headers[.requestID] = context.requestId
        if request.method == .head { response = response.createHeadResponse() }
        metrics.record(
            method: request.method.rawValue, route: context.endpointPath ?? "NotFound", status: response.status.code,
            duration: ContinuousClock.now - start)
        return response
    }

    /// Runs `body` with what the store needs for read replicas: a read may be served by a replica that has replayed
    /// the `Registry-Position` it presents; a write's response carries the position of its commit.
    static func withConsistency(
        _ request: Request, _ body: () async throws -> Response
    ) async throws -> Response {
        if request.method == .get || request.method == .head {
            let read = ReplicaRead(minimumPosition: request.headers[.registryPosition])
            return try await ReadConsistency.$replicaRead.withValue(read) { try await body() }
        }
        let commits = CommitPositions()
        var response = try await ReadConsistency.$commits.withValue(commits) { try await body() }
        if let position = commits.last { response.headers[.registryPosition] = position }
        return response
    }

    /// The caller's `X-Request-Id` when it is 1–128 safe characters, otherwise a new random id.
    static func requestId(from request: Request) -> String {
        if let incoming = request.headers[.requestID], !incoming.isEmpty, incoming.utf8.count <= 128,
            incoming.utf8.allSatisfy(isSafe)
        {
            return incoming
        }
        // Two 64-bit draws: each draw from the system generator is a system call, so not one per byte.
        var generator = SystemRandomNumberGenerator()
        let (high, low) = (generator.next(), generator.next())
        return Hex.encode((0..<16).map { UInt8(truncatingIfNeeded: ($0 < 8 ? high : low) >> (8 * UInt64($0 % 8))) })
    }

    private static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: ":"):
            true
        default:
            false
        }
    }
}
