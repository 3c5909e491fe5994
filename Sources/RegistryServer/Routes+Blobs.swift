import Foundation
import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// The content-addressed chunk store: check, upload (streamed), download (streamed, with ranges).
    func registerBlobs(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/blobs/check") { request, context in
            let principal = try await authenticate(request)
            try await authorizeUpload(principal, request, context)
            let body = try await request.decodeJSON(BlobCheckRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            guard body.digests.count <= BlobCheck.maxDigests else {
                throw RegistryError.invalidArgument(
                    "At most \(BlobCheck.maxDigests) digests can be checked at once.", field: "digests")
            }
            var seen = Set<Digest>()
            let digests = body.digests.filter { seen.insert($0).inserted }
            let absent = Set(try await service.missingBlobs(digests))
            // Content the caller cannot see is reported missing, as if absent: the caller proves it holds the bytes
            // by uploading them (the store keeps one copy), and learns nothing about other models' content.
            let visible = try await visibleDigests(digests.filter { !absent.contains($0) }, to: principal)
            let present = digests.filter(visible.contains)
            try await touchPresent(present, missing: [])
            try await pinUploads(present, by: principal)
            return try .json(BlobCheckResult(missing: digests.filter { !visible.contains($0) }))
        }

        add(router, .put, "/v1/blobs/:digest") { request, context in
            // Who asks comes first: without a valid token the answer is 401, whatever else is wrong.
            let principal = try await authenticate(request)
            let digest = try Digest(parsing: context.parameters.required("digest"))
            try await authorizeUpload(principal, request, context)
            let limit = configuration.maxBlobBytes
            let declared = request.headers[.contentLength].flatMap { Int64($0) }
            if let declared, declared > limit {
                throw RegistryError(.payloadTooLarge, "A chunk is at most \(limit) bytes; send larger files in chunks.")
            }
            let existed = try await blobs.size(of: digest) != nil
            let size = try await blobs.put(digest, expectedSize: declared, body: Self.limited(request.body, to: limit))
            // The bytes hashed to `digest`: the caller holds them, so they are visible to it until its upload
            // expires, and garbage collection leaves them alone meanwhile.
            try await pinUploads([digest], by: principal)
            var headers = HTTPFields()
            headers[.location] = "/v1/blobs/\(digest)"
            return try .json(
                BlobInfo(digest: digest, size: size), status: existed ? .ok : .created, headers: headers)
        }

        add(router, .get, "/v1/blobs/:digest") { request, context in
            try await download(request, context, includeBody: true)
        }

        add(router, .head, "/v1/blobs/:digest") { request, context in
            try await download(request, context, includeBody: false)
        }
    }

    private func download(
        _ request: Request, _ context: RegistryRequestContext, includeBody: Bool
    ) async throws -> Response {
        let principal = try await authenticate(request)
        let digest = try Digest(parsing: context.parameters.required("digest"))
        guard let size = try await blobs.size(of: digest) else { throw RegistryError.blobNotFound(digest) }
        try await authorizeDownload(digest, principal, request, context)
        var headers = HTTPFields()
        headers[.eTag] = "\"\(digest)\""
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        if let tags = request.headers[.ifNoneMatch], tags.contains(digest.description) {
            return Response(status: .notModified, headers: headers)
        }
        let range = try request.headers[.range].flatMap { try Self.byteRange($0, size: size) }
        let length = range.map { $0.upperBound - $0.lowerBound } ?? size
        headers[.contentLength] = String(length)
        var status = HTTPResponse.Status.ok
        if let range {
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        guard includeBody else { return Response(status: status, headers: headers) }
        let stream = try await blobs.get(digest, range: range)
        let body = ResponseBody(contentLength: Int(length)) { writer in
            for try await buffer in stream { try await writer.write(buffer) }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// The range of one `Range: bytes=a-b | a- | -n` header within `size` bytes; nil for the whole blob (no
    /// header, a multi-range or a header this server ignores). Throws `RANGE_NOT_SATISFIABLE` outside the blob.
    static func byteRange(_ header: String, size: Int64) throws -> Range<Int64>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        let unsatisfiable = RegistryError(
            .rangeNotSatisfiable, "The range \(spec) lies outside the \(size) bytes.",
            details: ["size": .number(Double(size))])
        if first.isEmpty {
            guard let suffix = Int64(last) else { return nil }
            guard suffix > 0, size > 0 else { throw unsatisfiable }
            return max(0, size - suffix)..<size
        }
        guard let start = Int64(first), start >= 0 else { return nil }
        guard start < size else { throw unsatisfiable }
        if last.isEmpty { return start..<size }
        guard let end = Int64(last), end >= start else { return nil }
        // `end` comes from the client and may be Int64.max: clamp before adding one.
        return start..<(end >= size - 1 ? size : end + 1)
    }

    /// Uploads need write permission on at least one model (or admin); denials are audited.
    func authorizeUpload(_ principal: Principal, _ request: Request, _ context: RegistryRequestContext) async throws {
        if principal.admin { return }
        if try await authenticator.access(of: principal).writesAnywhere { return }
        let error = RegistryError(
            .permissionDenied, "Uploading artifacts needs the writer role on at least one model.",
            details: ["requiredRole": "writer"])
        await auditDenial(error, model: nil, principal, request, context)
        throw error
    }

    /// Downloads need read permission on a model whose versions reference `digest`, or an open upload of the
    /// caller's own that holds it, or admin. Anyone else is told the blob does not exist, exactly as if it did not
    /// (a digest's existence is information too); the denial is audited.
    func authorizeDownload(
        _ digest: Digest, _ principal: Principal, _ request: Request, _ context: RegistryRequestContext
    ) async throws {
        if try await visibleDigests([digest], to: principal).contains(digest) { return }
        let denial = RegistryError(
            .permissionDenied, "No model the caller can read references \(digest), and no upload of its own holds it.",
            details: ["digest": .string(digest.description), "requiredRole": "reader"])
        await auditDenial(denial, model: nil, principal, request, context)
        throw RegistryError.blobNotFound(digest)
    }

    /// Which of `digests` `principal` may see: all for an admin; otherwise those its own open uploads hold and those
    /// a model it can read references.
    func visibleDigests(_ digests: [Digest], to principal: Principal) async throws -> Set<Digest> {
        if principal.admin || digests.isEmpty { return Set(digests) }
        var visible = try await metadata.uploadedDigests(digests, by: principal.subject, now: Date())
        let rest = digests.filter { !visible.contains($0) }
        guard !rest.isEmpty else { return visible }
        let readable = try await authenticator.access(of: principal).readable
        guard !readable.isEmpty else { return visible }
        let metadata = self.metadata
        let referenced = try await RegistryService.concurrently(rest) { digest in
            try await metadata.models(referencing: digest).contains(where: readable.contains) ? digest : nil
        }
        visible.formUnion(referenced.compactMap { $0 })
        return visible
    }

    /// Records that `principal` holds `digests` in an open upload (see `UploadStore`).
    func pinUploads(_ digests: [Digest], by principal: Principal) async throws {
        guard !digests.isEmpty else { return }
        try await metadata.recordUploads(
            digests, by: principal.subject, expiresAt: Date().addingTimeInterval(configuration.uploadLifetime))
    }

    /// The request body as a `ByteStream` that fails with `PAYLOAD_TOO_LARGE` past `limit` bytes.
    static func limited(_ body: RequestBody, to limit: Int64) -> ByteStream {
        ByteStream(makeNext: {
            var iterator = body.makeAsyncIterator()
            var total: Int64 = 0
            return {
                guard let buffer = try await iterator.next() else { return nil }
                total += Int64(buffer.readableBytes)
                guard total <= limit else {
                    throw RegistryError(.payloadTooLarge, "A chunk is at most \(limit) bytes.")
                }
                return buffer
            }
        })
    }
}
