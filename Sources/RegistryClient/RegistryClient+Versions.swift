import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// Registers an uploaded manifest as the model's next version (status `pending`).
    ///
    /// Throws `ARTIFACT_INCOMPLETE` when the manifest or one of its chunks is not uploaded.
    public func createVersion(
        model: String, manifestDigest: Digest, metadata: JSONValue? = nil, tags: [String: String]? = nil,
        source: VersionSource? = nil, signature: String? = nil
    ) async throws -> ModelVersion {
        var call = Call(.POST, "/v1/models/\(Self.escape(model))/versions")
        try call.json(
            CreateVersionRequest(
                manifestDigest: manifestDigest, signature: signature, metadata: metadata, tags: tags, source: source))
        return try await request(call)
    }

    /// One version; throws `VERSION_NOT_FOUND`.
    public func version(model: String, number: Int) async throws -> ModelVersion {
        try await request(Call(.GET, "/v1/models/\(Self.escape(model))/versions/\(number)"))
    }

    /// One page of a model's versions, newest first.
    public func versions(
        model: String, status: VersionStatus? = nil, tag: String? = nil, limit: Int? = nil, pageToken: String? = nil
    ) async throws -> Page<ModelVersion> {
        try await request(
            Call(
                .GET, "/v1/models/\(Self.escape(model))/versions",
                query: [
                    ("status", status?.rawValue), ("tag", tag), ("limit", limit.map(String.init)),
                    ("pageToken", pageToken),
                ]))
    }

    /// Replaces a version's tags and/or metadata if it is at `revision`.
    public func updateVersion(
        model: String, number: Int, revision: Int, tags: [String: String]? = nil, metadata: JSONValue? = nil
    ) async throws -> ModelVersion {
        try await patchVersion(model, number, revision, UpdateVersionRequest(tags: tags, metadata: metadata))
    }

    /// Archives a version at `revision`; throws `VERSION_IN_USE` while a stage points at it.
    public func archiveVersion(model: String, number: Int, revision: Int) async throws -> ModelVersion {
        try await patchVersion(model, number, revision, UpdateVersionRequest(status: .archived))
    }

    /// Attaches `signature` (a DSSE envelope from `ArtifactSigning.sign`) to a version at `revision`, replacing any
    /// earlier one. Throws `SIGNATURE_INVALID` when the model trusts keys and none of them made it.
    public func setSignature(
        model: String, number: Int, revision: Int, signature: String
    ) async throws -> ModelVersion {
        try await patchVersion(model, number, revision, UpdateVersionRequest(signature: signature))
    }

    /// Records the caller's approval or rejection of a version at `revision`.
    public func decide(
        model: String, number: Int, decision: Decision, comment: String? = nil, revision: Int
    ) async throws -> ModelVersion {
        var call = Call(.POST, "/v1/models/\(Self.escape(model))/versions/\(number)/approvals")
        call.ifMatch(revision)
        try call.json(DecisionRequest(decision: decision, comment: comment))
        return try await request(call)
    }

    private func patchVersion(
        _ model: String, _ number: Int, _ revision: Int, _ body: UpdateVersionRequest
    ) async throws -> ModelVersion {
        var call = Call(.PATCH, "/v1/models/\(Self.escape(model))/versions/\(number)")
        call.ifMatch(revision)
        try call.json(body)
        return try await request(call)
    }
}

extension RegistryClient {
    /// Checks that `version` carries a signature over `manifest` by one of `trustedKeys`; returns the key that made it.
    ///
    /// Throws `SIGNATURE_REQUIRED` when the version is unsigned, `SIGNATURE_INVALID` (naming the model and version)
    /// when no trusted key verifies it or it covers another manifest.
    @discardableResult
    public static func verifySignature(
        of version: ModelVersion, manifest: Manifest, trustedKeys: [PublicKey]
    ) throws -> PublicKey {
        let details: [String: JSONValue] = [
            "model": .string(version.model), "version": .number(Double(version.version)),
        ]
        guard let signature = version.signature else {
            throw RegistryError(
                .signatureRequired, "Version \(version.version) of '\(version.model)' is not signed.", details: details)
        }
        guard !trustedKeys.isEmpty else {
            throw RegistryError(
                .signatureInvalid,
                "There is no trusted key to verify version \(version.version) of '\(version.model)' with; give one.",
                details: details)
        }
        do {
            return try ArtifactSigning.verify(
                envelope: signature, manifest: manifest, manifestDigest: version.manifestDigest,
                trustedKeys: trustedKeys)
        } catch var error as RegistryError where error.code == .signatureInvalid {
            error.message = "Version \(version.version) of '\(version.model)': \(error.message)"
            error.details.merge(details) { own, _ in own }
            throw error
        }
    }

    /// Verifies the signature of version `number` of `model` against `keys`, or against the model's trusted keys
    /// when `keys` is empty; returns the version and the key that verified. Throws as `verifySignature(of:…)`.
    public func verifySignature(
        model: String, number: Int, keys: [PublicKey] = []
    ) async throws -> (version: ModelVersion, key: PublicKey) {
        let trusted = keys.isEmpty ? try await self.model(model).trustPolicy.trustedKeys : keys
        let version = try await self.version(model: model, number: number)
        let manifest = try await self.manifest(version.manifestDigest)
        return (version, try Self.verifySignature(of: version, manifest: manifest, trustedKeys: trusted))
    }

    /// A `verify` hook for `pull`: passes when a version of `model` whose manifest is the downloaded one carries a
    /// signature by one of `trustedKeys`, and throws `SIGNATURE_REQUIRED` / `SIGNATURE_INVALID` otherwise.
    ///
    /// The version is `version` when given (its manifest must be the downloaded one); otherwise the versions `stage`
    /// resolves to, then any version of the model with that manifest, newest first.
    public func signatureVerifier(
        model: String, version: Int? = nil, stage: String? = nil, trustedKeys: [PublicKey]
    ) -> @Sendable (Manifest, Digest) async throws -> Void {
        { manifest, digest in
            var failure: RegistryError?
            var tried = Set<Int>()
            func passes(_ candidate: ModelVersion) throws -> Bool {
                guard candidate.manifestDigest == digest, tried.insert(candidate.version).inserted else { return false }
                do {
                    try Self.verifySignature(of: candidate, manifest: manifest, trustedKeys: trustedKeys)
                    return true
                } catch let error as RegistryError {
                    // A signed version's verdict says more than an unsigned one's.
                    if failure == nil || error.code == .signatureInvalid { failure = error }
                    return false
                }
            }
            if let version {
                if try passes(try await self.version(model: model, number: version)) { return }
            } else {
                if let stage, let resolution = try await self.resolve(model: model, stage: stage) {
                    for target in [resolution.stable] + [resolution.candidate].compactMap({ $0 })
                    where target.manifestDigest == digest {
                        if try passes(try await self.version(model: model, number: target.version)) { return }
                    }
                }
                var pageToken: String?
                repeat {
                    let page = try await self.versions(model: model, limit: PageLimit.default, pageToken: pageToken)
                    for candidate in page.items where try passes(candidate) { return }
                    pageToken = page.nextPageToken
                } while pageToken != nil
            }
            throw failure
                ?? RegistryError(
                    .signatureInvalid, "No version of '\(model)' has the downloaded manifest \(digest).",
                    details: ["model": .string(model), "manifestDigest": .string(digest.description)])
        }
    }
}
