import AsyncHTTPClient
import NIOCore
import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// The digests among `digests` that the registry does not hold yet, in batches the server accepts.
    public func missingBlobs(_ digests: [Digest]) async throws -> [Digest] {
        var missing: [Digest] = []
        var start = 0
        while start < digests.count {
            let batch = Array(digests[start..<min(start + BlobCheck.maxDigests, digests.count)])
            var call = Call(.POST, "/v1/blobs/check")
            try call.json(BlobCheckRequest(digests: batch))
            missing += try await request(call, as: BlobCheckResult.self).missing
            start += batch.count
        }
        return missing
    }

    /// Uploads one chunk of `size` bytes; the registry verifies it hashes to `digest` (`DIGEST_MISMATCH`).
    public func putBlob(_ digest: Digest, size: Int64, body: ByteStream) async throws {
        var call = Call(.PUT, "/v1/blobs/\(digest)")
        call.headers.append(("Content-Type", "application/octet-stream"))
        call.body = .stream(body, length: .known(size))
        try await perform(call)
    }

    /// Streams a blob, or `range` of it; the stream reads from the network as it is consumed.
    public func blob(_ digest: Digest, range: Range<Int64>? = nil) async throws -> ByteStream {
        var call = Call(.GET, "/v1/blobs/\(digest)")
        if let range, !range.isEmpty {
            call.headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let response = try await send(call)
        return ByteStream(response.body)
    }

    /// The blob's size, or nil when the registry does not hold it.
    public func blobSize(_ digest: Digest) async throws -> Int64? {
        do {
            let response = try await send(Call(.HEAD, "/v1/blobs/\(digest)"))
            return response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        } catch let error as RegistryError where error.code == .blobNotFound || error.code == .notFound {
            return nil
        }
    }

    /// Uploads a manifest whose chunks are all uploaded and returns its digest.
    @discardableResult
    public func putManifest(_ manifest: Manifest) async throws -> Digest {
        var call = Call(.PUT, "/v1/manifests")
        call.body = .bytes(ByteBuffer(bytes: try JSONCoding.encode(manifest)))
        call.headers.append(("Content-Type", "application/json"))
        return try await request(call, as: BlobInfo.self).digest
    }

    /// Fetches a manifest, checks that its bytes hash to `digest`, and validates it (`MANIFEST_INVALID`).
    public func manifest(_ digest: Digest, maxBytes: Int = Manifest.defaultMaxBytes) async throws -> Manifest {
        let response = try await send(Call(.GET, "/v1/manifests/\(digest)"))
        let buffer: ByteBuffer
        do {
            buffer = try await response.body.collect(upTo: maxBytes)
        } catch {
            throw Self.transportError(error, call: nil)
        }
        let bytes = Array(buffer.readableBytesView)
        let actual = Digest(of: bytes)
        guard actual == digest else {
            throw RegistryError(
                .digestMismatch, "The manifest received hashes to \(actual), not \(digest).",
                details: ["expected": .string(digest.description), "actual": .string(actual.description)])
        }
        return try Manifest.parse(bytes)
    }
}
