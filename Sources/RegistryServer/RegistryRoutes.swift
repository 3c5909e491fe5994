import Hummingbird
import Logging
import RegistryAPI
import RegistryCore
import RegistryService
import Synchronization

/// The registry's HTTP handlers and what they share; each area registers its routes in a `Routes+Area.swift` file.
/// Handlers stay thin: parse, authenticate, authorize, make one call (a `RegistryService` operation for anything
/// beyond a read), render.
struct RegistryRoutes: Sendable {
    typealias Handler = @Sendable (Request, RegistryRequestContext) async throws -> Response

    let configuration: ServerConfiguration
    let metadata: any MetadataStore
    let blobs: any BlobStore
    let authenticator: Authenticator
    let metrics: ServerMetrics
    let table: RouteTable
    /// Where blobs and manifests are served besides this port (advertised by resolve as `artifactsURL`).
    let dataPlane: DataPlaneEndpoint
    /// Response bytes of the hot reads, reused while the value is unchanged.
    let rendered: RenderedCaches
    /// What the routes call once they have parsed, authenticated and authorized a request.
    let service: RegistryService
    /// Open `GET /v1/events?wait=` long-polls per subject.
    let longPolls: CallerSlots
    /// Open resolve watches per subject.
    let watches: CallerSlots
    /// Where denied requests are audited, several to a store call.
    let denials: DenialAuditor

    struct RenderedCaches: Sendable {
        struct VersionKey: Hashable, Sendable {
            var model: String
            var number: Int
        }

        struct StageKey: Hashable, Sendable {
            var model: String
            var stage: String
        }

        let versions: RenderedResponses<VersionKey, ModelVersion>
        let versionPages: RenderedResponses<VersionQuery, Page<ModelVersion>>
        let resolutions: RenderedResponses<StageKey, Resolution>

        /// Three caches of at most `budget` bytes each.
        init(budget: Int) {
            versions = RenderedResponses(budget: budget)
            versionPages = RenderedResponses(budget: budget)
            resolutions = RenderedResponses(budget: budget)
        }
    }

    /// Registers every route of API v1 on `router`.
    func register(on router: Router<RegistryRequestContext>) {
        registerOperations(on: router)
        registerModels(on: router)
        registerVersions(on: router)
        registerStages(on: router)
        registerRollouts(on: router)
        registerResolve(on: router)
        registerBlobs(on: router)
        registerManifests(on: router)
        registerEvents(on: router)
        registerAudit(on: router)
        registerTokens(on: router)
        registerAdmin(on: router)
    }

    func add(
        _ router: Router<RegistryRequestContext>, _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping Handler
    ) {
        table.add(method: method, path: path)
        router.on(RouterPath(path), method: method, use: handler)
    }

    // MARK: Shared steps

    func authenticate(_ request: Request) async throws -> Principal {
        try await authenticator.principal(for: request)
    }

    func mutation(_ principal: Principal, _ context: RegistryRequestContext) -> MutationContext {
        MutationContext(actor: principal.subject, requestId: context.requestId)
    }

    /// The model named by the `model` path parameter; 400 `INVALID_NAME`, 404 `MODEL_NOT_FOUND`.
    func model(_ context: RegistryRequestContext) async throws -> Model {
        let name = context.parameters.required("model")
        try Names.validate(name, kind: "model")
        guard let model = try await metadata.model(named: name) else { throw RegistryError.modelNotFound(name) }
        return model
    }

    /// The model from the path, after checking that the caller holds `permission` on it.
    func authorizedModel(
        _ permission: Permission, _ request: Request, _ context: RegistryRequestContext
    ) async throws -> (Principal, Model) {
        let principal = try await authenticate(request)
        let model = try await model(context)
        try await require(permission, on: model, principal, request, context)
        return (principal, model)
    }

    /// The caller of a service operation: `principal` in this request, whose refusals are audited like the routes'.
    func caller(_ principal: Principal, _ request: Request, _ context: RegistryRequestContext) -> Caller {
        let routes = self
        return Caller(principal: principal, requestId: context.requestId) { error, model in
            await routes.auditDenial(error, model: model, principal, request, context)
        }
    }

    /// Throws `PERMISSION_DENIED` unless `principal` holds `permission` on `model`; denials are audited.
    func require(
        _ permission: Permission, on model: Model, _ principal: Principal, _ request: Request,
        _ context: RegistryRequestContext
    ) async throws {
        do {
            try principal.require(permission, on: model)
        } catch let error as RegistryError {
            await auditDenial(error, model: model.name, principal, request, context)
            throw error
        }
    }

    /// Throws `PERMISSION_DENIED` unless `principal` is an admin; denials are audited.
    func requireAdmin(_ principal: Principal, _ request: Request, _ context: RegistryRequestContext) async throws {
        guard !principal.admin else { return }
        let error = RegistryError(
            .permissionDenied, "Only administrators may do this.", details: ["requiredRole": "admin"])
        await auditDenial(error, model: nil, principal, request, context)
        throw error
    }

    /// Records a denied request in the audit log (batched with concurrent denials, see `DenialAuditor`) before the
    /// caller is answered; a failure to record is logged, never shown to the caller.
    func auditDenial(
        _ error: RegistryError, model: String?, _ principal: Principal, _ request: Request,
        _ context: RegistryRequestContext
    ) async {
        var details = error.details
        details["method"] = .string(request.method.rawValue)
        details["path"] = .string(request.uri.path)
        let after: String
        do {
            after = String(decoding: try JSONCoding.encode(JSONValue.object(details)), as: UTF8.self)
        } catch {
            context.logger.error("Could not audit a denied request", metadata: ["error": "\(error)"])
            return
        }
        await denials.record(
            AuditDraft(
                action: "access.denied", target: String(request.uri.path.dropFirst(4)), model: model, before: nil,
                after: after),
            context: mutation(principal, context), logger: context.logger)
    }

    /// A positive integer path parameter such as a version number; 400 otherwise.
    func intParameter(_ name: String, _ context: RegistryRequestContext) throws -> Int {
        let text = context.parameters.required(name)
        guard let value = Int(text), value > 0 else {
            throw RegistryError.invalidArgument("'\(text.prefix(40))' is not a valid \(name) number.", field: name)
        }
        return value
    }
}
