import RegistryCore

extension RegistryService {
    /// What a new version is made of, as the caller sent it.
    public struct VersionDraft: Sendable {
        public var manifestDigest: Digest
        public var signature: String?
        public var metadata: JSONValue
        public var tags: [String: String]
        public var source: VersionSource

        public init(
            manifestDigest: Digest, signature: String?, metadata: JSONValue, tags: [String: String],
            source: VersionSource
        ) {
            self.manifestDigest = manifestDigest
            self.signature = signature
            self.metadata = metadata
            self.tags = tags
            self.source = source
        }
    }

    /// Creates the next version of `model` from a manifest whose every chunk is stored (`ARTIFACT_INCOMPLETE`
    /// otherwise) and, when the model's trust policy asks for one, a signature that verifies against it. The
    /// caller holds `write` on `model` and may see the manifest.
    ///
    /// The signature is checked against the policy loaded with the model: a policy change racing this request
    /// applies to the versions created after it, and promotion checks again against the keys trusted then.
    public func createVersion(_ model: Model, _ draft: VersionDraft, caller: Caller) async throws -> ModelVersion {
        let manifest = try await completeManifest(draft.manifestDigest)
        try model.trustPolicy.check(
            signature: draft.signature, manifest: manifest, manifestDigest: draft.manifestDigest)
        let version = ModelVersion(
            model: model.name, version: 0, manifestDigest: draft.manifestDigest, size: manifest.totalSize,
            signature: draft.signature, metadata: draft.metadata, tags: draft.tags, source: draft.source,
            createdBy: caller.principal.subject, createdAt: Timestamp.now())
        return try await metadata.createVersion(
            version, artifacts: [draft.manifestDigest] + manifest.chunkDigests, context: caller.mutation)
    }

    /// A change to a version's own fields; nil fields stay as they are.
    public struct VersionUpdate: Sendable {
        public var tags: [String: String]?
        public var metadata: JSONValue?
        public var signature: String?
        public var archive: Bool

        public init(tags: [String: String]?, metadata: JSONValue?, signature: String?, archive: Bool) {
            self.tags = tags
            self.metadata = metadata
            self.signature = signature
            self.archive = archive
        }
    }

    /// Applies `update` to version `number` at `expectedRevision`: a new signature must verify against the keys the
    /// model trusts when the change commits, new metadata may revoke an approval (the model's approval policy), and
    /// archiving is refused while a stage points at the version. The caller holds the roles the update needs.
    public func updateVersion(
        _ model: Model, number: Int, expectedRevision: Int, _ update: VersionUpdate, caller: Caller
    ) async throws -> ModelVersion {
        // The manifest never changes, so it is read outside the transaction.
        let signed = update.signature == nil ? nil : try await versionManifest(model: model.name, number: number)
        return try await metadata.updateVersion(
            model: model.name, number: number, expectedRevision: expectedRevision, context: caller.mutation
        ) { version, change in
            if let signature = update.signature, let signed {
                try change.model.trustPolicy.check(
                    signature: signature, manifest: signed.manifest, manifestDigest: signed.digest)
                version.signature = signature
            }
            if let tags = update.tags { version.tags = tags }
            var result = Transitions.VersionChange.update
            if let metadata = update.metadata {
                result = Transitions.changeMetadata(&version, to: metadata, policy: change.model.approvalPolicy)
            }
            if update.archive {
                return try Transitions.archive(&version, stagesPointingAtIt: change.stagesPointingAtVersion)
            }
            return result
        }
    }

    /// Records a review of version `number` at `expectedRevision` under the model's approval policy. The caller
    /// holds `approve` on `model`.
    public func review(
        _ model: Model, number: Int, expectedRevision: Int, decision: Decision, comment: String?, caller: Caller
    ) async throws -> ModelVersion {
        let mutation = caller.mutation
        return try await metadata.updateVersion(
            model: model.name, number: number, expectedRevision: expectedRevision, context: mutation
        ) { version, change in
            try Transitions.decide(
                &version, decision: decision, comment: comment, by: mutation.actor,
                policy: change.model.approvalPolicy, context: mutation)
        }
    }

    /// The manifest of version `number` of `model` and its digest; `VERSION_NOT_FOUND` when there is none.
    public func versionManifest(model: String, number: Int) async throws -> (manifest: Manifest, digest: Digest) {
        guard let version = try await metadata.version(model: model, number: number) else {
            throw RegistryError.versionNotFound(model, number)
        }
        return (try await storedManifest(version.manifestDigest), version.manifestDigest)
    }
}
