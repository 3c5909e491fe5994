import Hummingbird
import RegistryCore

extension RegistryRoutes {
    struct CreateVersionBody: Decodable, Sendable {
        var manifestDigest: Digest
        var signature: String?
        var metadata: JSONValue?
        var tags: [String: String]?
        var source: VersionSource?
    }

    struct UpdateVersionBody: Decodable, Sendable {
        var tags: [String: String]?
        var metadata: JSONValue?
        var status: VersionStatus?
        var signature: String?
    }

    struct DecisionBody: Decodable, Sendable {
        var decision: Decision
        var comment: String?
    }

    /// Versions of a model and their reviews.
    func registerVersions(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/models/:model/versions") { request, context in
            let (principal, model) = try await authorizedModel(.write, request, context)
            let body = try await request.decodeJSON(CreateVersionBody.self, maxBytes: configuration.maxJSONBodyBytes)
            try validate(metadata: body.metadata, tags: body.tags)
            try validate(signature: body.signature)
            // The manifest must be one the caller may see (its own upload, or content of a model it can read): a
            // version is otherwise a way to read another model's bytes by guessing their digest.
            guard try await visibleDigests([body.manifestDigest], to: principal).contains(body.manifestDigest) else {
                throw Self.incomplete([body.manifestDigest], what: "The manifest")
            }
            let manifest = try await completeManifest(body.manifestDigest)
            // Checked against the policy as loaded with the model; a policy change racing this request applies to
            // the versions created after it, and promotion re-checks against the current keys.
            try model.trustPolicy.check(
                signature: body.signature, manifest: manifest, manifestDigest: body.manifestDigest)
            let draft = ModelVersion(
                model: model.name, version: 0, manifestDigest: body.manifestDigest, size: manifest.totalSize,
                signature: body.signature, metadata: body.metadata ?? .emptyObject, tags: body.tags ?? [:],
                source: body.source ?? .init(), createdBy: principal.subject, createdAt: Timestamp.now())
            let version = try await metadata.createVersion(
                draft, artifacts: [body.manifestDigest] + manifest.chunkDigests, context: mutation(principal, context))
            var headers = HTTPFields()
            headers[.location] = "/v1/models/\(model.name)/versions/\(version.version)"
            return try .json(version, status: .created, revision: version.revision, headers: headers)
        }

        add(router, .get, "/v1/models/:model/versions") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let before = try PageToken.parseInt(request.query("pageToken")).map { Int($0) }
            let query = VersionQuery(
                model: model.name, status: try request.query("status").map(parseStatus),
                tag: try request.query("tag").map(Tag.init(parsing:)), before: before, limit: try request.pageLimit())
            return .json(rendered: try rendered.versionPages.bytes(query, try await metadata.versions(query)))
        }

        add(router, .get, "/v1/models/:model/versions/:version") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let number = try intParameter("version", context)
            guard let version = try await metadata.version(model: model.name, number: number) else {
                throw RegistryError.versionNotFound(model.name, number)
            }
            return .json(
                rendered: try rendered.versions.bytes(.init(model: model.name, number: number), version),
                revision: version.revision)
        }

        add(router, .patch, "/v1/models/:model/versions/:version") { request, context in
            let principal = try await authenticate(request)
            let model = try await model(context)
            let number = try intParameter("version", context)
            let body = try await request.decodeJSON(UpdateVersionBody.self, maxBytes: configuration.maxJSONBodyBytes)
            if let status = body.status, status != .archived {
                throw RegistryError.invalidArgument(
                    "Only status 'archived' can be set here; approvals decide the other states.", field: "status")
            }
            let archive = body.status == .archived
            if archive { try await require(.manage, on: model, principal, request, context) }
            if body.tags != nil || body.metadata != nil || body.signature != nil || !archive {
                try await require(.write, on: model, principal, request, context)
            }
            let revision = try request.requiredIfMatch()
            try validate(metadata: body.metadata, tags: body.tags)
            try validate(signature: body.signature)
            // The manifest never changes, so it is read outside the transaction; the keys are the ones committed
            // with the model when the change applies.
            let signed = body.signature == nil ? nil : try await versionManifest(model: model.name, number: number)
            let updated = try await metadata.updateVersion(
                model: model.name, number: number, expectedRevision: revision, context: mutation(principal, context)
            ) { version, change in
                if let signature = body.signature, let signed {
                    try change.model.trustPolicy.check(
                        signature: signature, manifest: signed.manifest, manifestDigest: signed.digest)
                    version.signature = signature
                }
                if let tags = body.tags { version.tags = tags }
                var result = Transitions.VersionChange.update
                if let metadata = body.metadata {
                    result = Transitions.changeMetadata(&version, to: metadata, policy: change.model.approvalPolicy)
                }
                if archive {
                    return try Transitions.archive(&version, stagesPointingAtIt: change.stagesPointingAtVersion)
                }
                return result
            }
            return try .json(updated, revision: updated.revision)
        }

        add(router, .post, "/v1/models/:model/versions/:version/approvals") { request, context in
            let (principal, model) = try await authorizedModel(.approve, request, context)
            let number = try intParameter("version", context)
            let revision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(DecisionBody.self, maxBytes: configuration.maxJSONBodyBytes)
            if let comment = body.comment, comment.utf8.count > 4096 {
                throw RegistryError.invalidArgument("The comment is at most 4096 bytes.", field: "comment")
            }
            let mutation = mutation(principal, context)
            let updated = try await metadata.updateVersion(
                model: model.name, number: number, expectedRevision: revision, context: mutation
            ) { version, change in
                try Transitions.decide(
                    &version, decision: body.decision, comment: body.comment, by: principal.subject,
                    policy: change.model.approvalPolicy, context: mutation)
            }
            return try .json(updated, revision: updated.revision)
        }
    }

    /// The parsed manifest `digest` after checking it and every chunk it lists are stored; 422
    /// `ARTIFACT_INCOMPLETE` with `details.missing` otherwise.
    func completeManifest(_ digest: Digest) async throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try await parsedManifest(digest)
        } catch let error as RegistryError where error.code == .blobNotFound {
            throw Self.incomplete([digest], what: "The manifest")
        }
        let missing = try await missingBlobs(manifest.chunkDigests)
        guard missing.isEmpty else { throw Self.incomplete(missing, what: "Chunks of the manifest") }
        return manifest
    }

    /// The manifest stored under `digest`, parsed once: the bytes under a digest never change, so a parsed manifest
    /// stays valid for as long as the blob exists, which every call still checks. Throws `BLOB_NOT_FOUND`.
    func parsedManifest(_ digest: Digest) async throws -> Manifest {
        if let manifest = parsedManifests.get(digest) {
            guard try await blobs.size(of: digest) != nil else {
                throw RegistryError.blobNotFound(digest)
            }
            return manifest
        }
        let manifest = try Manifest.parse(try await blobs.read(digest, maxBytes: configuration.maxManifestBytes))
        parsedManifests.put(digest, manifest)
        return manifest
    }

    /// The parsed manifest stored under `digest`; 404 `MANIFEST_NOT_FOUND` when it is not stored.
    func storedManifest(_ digest: Digest) async throws -> Manifest {
        do {
            return try await parsedManifest(digest)
        } catch let error as RegistryError where error.code == .blobNotFound {
            throw RegistryError(
                .manifestNotFound, "No manifest \(digest) is stored.", details: ["digest": .string(digest.description)])
        }
    }

    /// The manifest of version `number` of `model` and its digest; 404 `VERSION_NOT_FOUND` when there is none.
    private func versionManifest(model: String, number: Int) async throws -> (manifest: Manifest, digest: Digest) {
        guard let version = try await metadata.version(model: model, number: number) else {
            throw RegistryError.versionNotFound(model, number)
        }
        return (try await storedManifest(version.manifestDigest), version.manifestDigest)
    }

    /// Throws unless version `number` of `model` carries a signature that verifies against the model's trusted keys
    /// as they are now: `SIGNATURE_REQUIRED` without one, `SIGNATURE_INVALID` when it does not verify. A missing or
    /// unapproved version passes, so the store reports it with its own code.
    func requireTrustedSignature(model: Model, number: Int) async throws {
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

    /// Which of `digests` the blob store lacks, in their order; checks run a few at a time.
    func missingBlobs(_ digests: [Digest]) async throws -> [Digest] {
        let blobs = self.blobs
        return try await Self.concurrently(digests) { try await blobs.size(of: $0) == nil ? $0 : nil }
            .compactMap { $0 }
    }

    /// `body` applied to every digest, at most `width` at a time (a remote blob store answers each in a round
    /// trip); the results are in the order of `digests`.
    static func concurrently<T: Sendable>(
        _ digests: [Digest], width: Int = 16, _ body: @escaping @Sendable (Digest) async throws -> T
    ) async throws -> [T] {
        var results: [Int: T] = [:]
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var next = 0
            func schedule() {
                guard next < digests.count else { return }
                let index = next
                let digest = digests[index]
                next += 1
                group.addTask { (index, try await body(digest)) }
            }
            for _ in 0..<width { schedule() }
            while let (index, result) = try await group.next() {
                results[index] = result
                schedule()
            }
        }
        return digests.indices.map { results[$0]! }
    }

    static func incomplete(_ missing: [Digest], what: String) -> RegistryError {
        RegistryError(
            .artifactIncomplete, "\(what) must be uploaded first: \(missing.count) blob(s) are missing.",
            details: ["missing": .array(missing.map { .string($0.description) })])
    }

    private func parseStatus(_ text: String) throws -> VersionStatus {
        guard let status = VersionStatus(rawValue: text) else {
            throw RegistryError.invalidArgument(
                "Unknown status '\(text.prefix(40))'; expected pending, approved, rejected or archived.",
                field: "status")
        }
        return status
    }

    private func validate(signature: String?) throws {
        if let signature, signature.utf8.count > 16384 {
            throw RegistryError.invalidArgument("The signature is at most 16384 bytes.", field: "signature")
        }
    }

    private func validate(metadata: JSONValue?, tags: [String: String]?) throws {
        if let metadata, !metadata.isObject {
            throw RegistryError.invalidArgument("metadata must be a JSON object.", field: "metadata")
        }
        if let tags { try Tags.validate(tags) }
    }
}
