import RegistryCore

extension RegistryService {
    /// Runs `attempt` (a signature check, then the change it allows) with a mutation context guarded by the trust
    /// policy the model had when it was read. A policy change that commits in between makes the store refuse the
    /// change (`TRUST_POLICY_CHANGED`) rather than let a revoked key through; the model is then read again, the
    /// caller's `permission` checked again, and `attempt` run again, three times at most.
    public func guardedByTrustPolicy<T: Sendable>(
        _ model: Model, _ permission: Permission, _ caller: Caller,
        _ attempt: (Model, MutationContext) async throws -> T
    ) async throws -> T {
        var model = model
        var retries = 0
        while true {
            do {
                return try await attempt(model, caller.mutation.checking(model.trustPolicy, of: model.name))
            } catch let error as RegistryError where error.code == .trustPolicyChanged && retries < 2 {
                retries += 1
                model = try await self.model(named: model.name)
                try await caller.require(permission, on: model)
            }
        }
    }

    /// Throws `TrustConflict` unless version `number` of `model` meets the model's trust policy as it is now, which
    /// it always does when the policy requires no signature. A missing or unapproved version passes, so the store
    /// reports it with its own code.
    public func requireTrusted(model: Model, number: Int) async throws {
        guard model.trustPolicy.requireSignature else { return }
        do {
            try await requireTrustedSignature(model: model, number: number)
        } catch let error as RegistryError where error.code == .signatureRequired || error.code == .signatureInvalid {
            throw TrustConflict(error)
        }
    }

    /// Throws unless version `number` of `model` carries a signature that verifies against the model's trusted keys
    /// as they are now: `SIGNATURE_REQUIRED` without one, `SIGNATURE_INVALID` when it does not verify. A missing or
    /// unapproved version passes, so the store reports it with its own code.
    private func requireTrustedSignature(model: Model, number: Int) async throws {
        guard let version = try await metadata.version(model: model.name, number: number),
            version.status == .approved
        else { return }
        guard let signature = version.signature else {
            throw RegistryError(
                .signatureRequired,
                "Version \(number) of '\(model.name)' is unsigned; the model's trust policy requires a signature.",
                details: ["version": .number(Double(number))])
        }
        let manifest = try await storedManifest(version.manifestDigest)
        do {
            try ArtifactSigning.verify(
                envelope: signature, manifest: manifest, manifestDigest: version.manifestDigest,
                trustedKeys: model.trustPolicy.trustedKeys)
        } catch var error as RegistryError where error.code == .signatureInvalid {
            error.message = "Version \(number) of '\(model.name)': \(error.message)"
            error.details["version"] = .number(Double(number))
            throw error
        }
    }
}
