import Foundation
import RegistryCore

/// What the registry does, beneath any transport: the rules that span a store call (trust-policy guards and their
/// retry, signature checks at creation, promotion, rollback and rollout, rollout decisions, manifest completeness,
/// resolutions), written once and called by the HTTP routes and by background services alike.
///
/// The service authorizes nothing that the caller did not already authorize: routes parse, authenticate and check the
/// caller's role on the model, then make one service call. The one check the service repeats is the role on a model
/// it had to read again (a trust-policy change raced the request), through `Caller.require`.
///
/// Stores stay persistence and transactions; `Transitions` and `RolloutRules` stay the pure rules the stores apply
/// inside a transaction. What lives here is what needs more than one store call, or the blob store too.
public struct RegistryService: Sendable {
    public let metadata: any MetadataStore
    public let blobs: any BlobStore
    public let limits: Limits
    /// Manifests already read and parsed, by digest (see `parsedManifest`).
    public let manifests: ManifestCache

    /// The bounds the service enforces on what callers send.
    public struct Limits: Sendable {
        /// Most bytes of a manifest read from the blob store.
        public var maxManifestBytes: Int
        /// Most serving instances one rollout keeps reports from (`TOO_MANY_INSTANCES` beyond).
        public var maxInstancesPerRollout: Int

        public init(maxManifestBytes: Int = Manifest.defaultMaxBytes, maxInstancesPerRollout: Int = 10_000) {
            self.maxManifestBytes = maxManifestBytes
            self.maxInstancesPerRollout = maxInstancesPerRollout
        }
    }

    public init(
        metadata: any MetadataStore, blobs: any BlobStore, limits: Limits = Limits(), manifestCacheBytes: Int = 64 << 20
    ) {
        self.metadata = metadata
        self.blobs = blobs
        self.limits = limits
        manifests = ManifestCache(budget: manifestCacheBytes)
    }

    /// The model named `name`; `MODEL_NOT_FOUND` when there is none.
    public func model(named name: String) async throws -> Model {
        guard let model = try await metadata.model(named: name) else { throw RegistryError.modelNotFound(name) }
        return model
    }
}

/// Who is asking, as the transport authenticated them, and how a refusal found inside the service is recorded.
public struct Caller: Sendable {
    public var principal: Principal
    /// The request this call serves (recorded with every change it makes).
    public var requestId: String
    /// Records a permission the service refused (the routes audit it with the request's method and path).
    public var onDenial: @Sendable (RegistryError, _ model: String) async -> Void

    public init(
        principal: Principal, requestId: String,
        onDenial: @escaping @Sendable (RegistryError, _ model: String) async -> Void = { _, _ in }
    ) {
        self.principal = principal
        self.requestId = requestId
        self.onDenial = onDenial
    }

    /// The context of a change made now on this caller's behalf.
    public var mutation: MutationContext { MutationContext(actor: principal.subject, requestId: requestId) }

    /// Throws `PERMISSION_DENIED` unless the caller holds `permission` on `model`; a refusal is recorded first.
    public func require(_ permission: Permission, on model: Model) async throws {
        do {
            try principal.require(permission, on: model)
        } catch let error as RegistryError {
            await onDenial(error, model.name)
            throw error
        }
    }
}

/// A version that the model's trust policy refuses at the moment it would take traffic (promotion, rollback, the
/// completion of a rollout): a conflict between the version and the policy, not a malformed request, so the
/// transport answers it as a conflict while keeping the refusal's own code (`SIGNATURE_REQUIRED`,
/// `SIGNATURE_INVALID`).
public struct TrustConflict: Error, Sendable {
    public var refusal: RegistryError

    public init(_ refusal: RegistryError) {
        self.refusal = refusal
    }
}
