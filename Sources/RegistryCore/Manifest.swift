/// The content-addressed description of a version's files: each file's size, digest and chunk list.
public struct Manifest: Sendable, Equatable, Codable {
    public static let mediaType = "application/vnd.swift-model-registry.manifest.v1+json"
    /// The largest manifest a registry stores and a client reads unless configured otherwise (16 MiB).
    public static let defaultMaxBytes = 16 << 20

    public var schemaVersion: Int
    public var mediaType: String?
    public var files: [File]
    public var annotations: [String: String]?

    public struct File: Sendable, Equatable, Codable {
        /// A relative path with `/` separators, no `.` or `..` components.
        public var path: String
        public var size: Int64
        /// SHA-256 of the whole file.
        public var digest: Digest
        /// The file's bytes in order; their sizes add up to `size`.
        public var chunks: [Chunk]

        public init(path: String, size: Int64, digest: Digest, chunks: [Chunk]) {
            self.path = path
            self.size = size
            self.digest = digest
            self.chunks = chunks
        }
    }

    public struct Chunk: Sendable, Equatable, Codable {
        public var digest: Digest
        public var size: Int64

        public init(digest: Digest, size: Int64) {
            self.digest = digest
            self.size = size
        }
    }

    public init(files: [File], annotations: [String: String]? = nil) {
        self.schemaVersion = 1
        self.mediaType = Manifest.mediaType
        self.files = files
        self.annotations = annotations
    }

    /// Total bytes of all files.
    public var totalSize: Int64 { files.reduce(0) { $0 + $1.size } }

    /// Every distinct chunk digest, in first-use order.
    public var chunkDigests: [Digest] {
        var seen = Set<Digest>()
        var result: [Digest] = []
        for file in files {
            for chunk in file.chunks where seen.insert(chunk.digest).inserted {
                result.append(chunk.digest)
            }
        }
        return result
    }

    /// Parses and validates manifest bytes; throws `MANIFEST_INVALID` with the reason.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONCoding.decode(Manifest.self, from: bytes)
        } catch let error as RegistryError {
            throw RegistryError(.invalidManifest, "The manifest is not valid: \(error.message)")
        }
        try manifest.validate()
        return manifest
    }

    /// Throws `MANIFEST_INVALID` unless paths are safe and unique and chunk sizes add up.
    public func validate() throws {
        func invalid(_ message: String) -> RegistryError { RegistryError(.invalidManifest, message) }
        guard schemaVersion == 1 else {
            throw invalid("Unsupported manifest schemaVersion \(schemaVersion); expected 1.")
        }
        guard !files.isEmpty else { throw invalid("A manifest lists at least one file.") }
        guard files.count <= 100_000 else { throw invalid("A manifest lists at most 100000 files.") }
        var paths = Set<String>()
        var total: Int64 = 0
        for file in files {
            let components = file.path.split(separator: "/", omittingEmptySubsequences: false)
            guard !file.path.isEmpty, file.path.utf8.count <= 1024, !file.path.hasPrefix("/"),
                components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
                !file.path.contains("\0"), !file.path.contains("\\")
            else {
                throw invalid(
                    "File path '\(file.path.prefix(200))' must be relative, without '.', '..' or empty parts.")
            }
            guard paths.insert(file.path).inserted else { throw invalid("File path '\(file.path)' appears twice.") }
            // Every chunk holds bytes, also in an empty file (which has none): sizes that add up, such as 5 and -5,
            // do not make a chunk list valid.
            guard file.size >= 0, file.chunks.allSatisfy({ $0.size > 0 }) else {
                throw invalid("File '\(file.path)' has a negative size or an empty chunk.")
            }
            guard file.size <= Self.maxTotalSize, file.chunks.allSatisfy({ $0.size <= Self.maxTotalSize }) else {
                throw invalid("File '\(file.path)' is larger than \(Self.maxTotalSize) bytes.")
            }
            // Sizes come from the client: added with overflow checks, so a forged manifest is refused, not a trap.
            var sum: Int64 = 0
            for chunk in file.chunks {
                let (next, overflow) = sum.addingReportingOverflow(chunk.size)
                guard !overflow, next <= Self.maxTotalSize else {
                    throw invalid("The chunks of '\(file.path)' add up to more than \(Self.maxTotalSize) bytes.")
                }
                sum = next
            }
            guard sum == file.size else {
                throw invalid("The chunks of '\(file.path)' add up to \(sum) bytes, but the file has \(file.size).")
            }
            total += file.size
            guard total <= Self.maxTotalSize else {
                throw invalid("The files of the manifest add up to more than \(Self.maxTotalSize) bytes.")
            }
        }
    }

    /// The most bytes a manifest may describe (1 PiB), so that no sum of its sizes can overflow.
    public static let maxTotalSize: Int64 = 1 << 50
}
