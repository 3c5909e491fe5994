import Hummingbird
import Logging
import RegistryCore
import Synchronization

/// The registry's HTTP handlers and what they share; each area registers its routes in a `Routes+Area.swift` file.
/// Handlers stay thin: parse, authorize, call the store, render.
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
    /// Manifests already read and parsed, by digest (see `parsedManifest`).
    let parsedManifests: ManifestCache
    /// Open `GET /v1/events?wait=` long-polls per subject.
    let longPolls: CallerSlots
    /// Open resolve watches per subject.
    let watches: CallerSlots
    /// Where denied requests are audited, several to a store call.
    let denials: DenialAuditor

    /// Parsed manifests by digest, bounded by their estimated size in memory.
    final class ManifestCache: Sendable {
        private let entries: ByteBudgetCache<Digest, Manifest>

        init(budget: Int) {
            entries = ByteBudgetCache(budget: budget)
        }

        func get(_ digest: Digest) -> Manifest? { entries.get(digest) }

        func put(_ digest: Digest, _ manifest: Manifest) {
            entries.put(digest, manifest, cost: Self.estimatedBytes(manifest))
        }

        /// The bytes the cached manifests are estimated to hold now.
        var bytes: Int { entries.bytes }

        /// Roughly what `manifest` occupies in memory: its strings and arrays, about its encoded JSON size.
        static func estimatedBytes(_ manifest: Manifest) -> Int {
            // A digest is a 64-character String (a heap allocation of about 96 bytes) plus its inline part.
            let digest = 112
            var total = 128
            for file in manifest.files {
                total += 64 + file.path.utf8.count + digest + file.chunks.count * (digest + 8)
            }
            for (key, value) in manifest.annotations ?? [:] { total += 64 + key.utf8.count + value.utf8.count }
            return total
        }
    }

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
        let resolutions: RenderedResponses<StageKey, ResolveResponse>

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

    /// Runs `attempt` (a signature check, then the change it allows) with a mutation context guarded by the trust
    /// policy the model had when it was read. A policy change that commits in between makes the store refuse the
    /// change (`TRUST_POLICY_CHANGED`) rather than let a revoked key through; the model is then read again, the
    /// permission checked again, and `attempt` run again, three times at most.
    func guardedByTrustPolicy<T>(
        _ model: Model, _ permission: Permission, _ principal: Principal, _ request: Request,
        _ context: RegistryRequestContext, _ attempt: (Model, MutationContext) async throws -> T
    ) async throws -> T {
        var model = model
        var retries = 0
        while true {
            do {
                return try await attempt(model, mutation(principal, context).checking(model.trustPolicy, of: model.name))
            } catch let error as RegistryError where error.code == .trustPolicyChanged && retries < 2 {
                retries += 1
                model = try await self.model(context)
                try await require(permission, on: model, principal, request, context)
            }
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
