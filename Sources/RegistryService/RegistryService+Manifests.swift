import RegistryCore

extension RegistryService {
    /// Parsed manifests by digest, bounded by their estimated size in memory.
    public final class ManifestCache: Sendable {
        private let entries: ByteBudgetCache<Digest, Manifest>

        public init(budget: Int) {
            entries = ByteBudgetCache(budget: budget)
        }

        public func get(_ digest: Digest) -> Manifest? { entries.get(digest) }

        public func put(_ digest: Digest, _ manifest: Manifest) {
            entries.put(digest, manifest, cost: Self.estimatedBytes(manifest))
        }

        /// The bytes the cached manifests are estimated to hold now.
        public var bytes: Int { entries.bytes }

        /// Roughly what `manifest` occupies in memory: its strings and arrays, about its encoded JSON size.
        public static func estimatedBytes(_ manifest: Manifest) -> Int {
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

    /// The manifest stored under `digest`, parsed once: the bytes under a digest never change, so a parsed manifest
    /// stays valid for as long as the blob exists, which every call still checks. Throws `BLOB_NOT_FOUND`.
    public func parsedManifest(_ digest: Digest) async throws -> Manifest {
        if let manifest = manifests.get(digest) {
            guard try await blobs.size(of: digest) != nil else { throw RegistryError.blobNotFound(digest) }
            return manifest
        }
        let manifest = try Manifest.parse(try await blobs.read(digest, maxBytes: limits.maxManifestBytes))
        manifests.put(digest, manifest)
        return manifest
    }

    /// The parsed manifest stored under `digest`; `MANIFEST_NOT_FOUND` when it is not stored.
    public func storedManifest(_ digest: Digest) async throws -> Manifest {
        do {
            return try await parsedManifest(digest)
        } catch let error as RegistryError where error.code == .blobNotFound {
            throw RegistryError.manifestNotFound(digest)
        }
    }

    /// The parsed manifest `digest` after checking it and every chunk it lists are stored; `ARTIFACT_INCOMPLETE`
    /// with `details.missing` otherwise.
    public func completeManifest(_ digest: Digest) async throws -> Manifest {
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

    /// Which of `digests` the blob store lacks, in their order; checks run a few at a time.
    public func missingBlobs(_ digests: [Digest]) async throws -> [Digest] {
        let blobs = self.blobs
        return try await Self.concurrently(digests) { try await blobs.size(of: $0) == nil ? $0 : nil }
            .compactMap { $0 }
    }

    /// `body` applied to every digest, at most `width` at a time (a remote blob store answers each in a round
    /// trip); the results are in the order of `digests`.
    public static func concurrently<T: Sendable>(
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

    /// `ARTIFACT_INCOMPLETE`: `what` must be uploaded before it is used, listing the `missing` blobs.
    public static func incomplete(_ missing: [Digest], what: String) -> RegistryError {
        RegistryError(
            .artifactIncomplete, "\(what) must be uploaded first: \(missing.count) blob(s) are missing.",
            details: ["missing": .array(missing.map { .string($0.description) })])
    }
}
