import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// Manifests: validated JSON documents stored in the blob store under their own digest.
    func registerManifests(on router: Router<RegistryRequestContext>) {
        add(router, .put, "/v1/manifests") { request, context in
            let principal = try await authenticate(request)
            try await authorizeUpload(principal, request, context)
            guard let contentType = request.headers[.contentType], Request.isJSON(contentType) else {
                throw RegistryError(
                    .unsupportedMediaType,
                    "A manifest is sent as application/json or \(Manifest.mediaType).")
            }
            let limit = configuration.maxManifestBytes
            if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
                throw RegistryError(.payloadTooLarge, "A manifest is at most \(limit) bytes.")
            }
            let buffer = try await ByteStream(request.body).collect(upTo: limit)
            let bytes = Array(buffer.readableBytesView)
            let manifest = try Manifest.parse(bytes)
            // Chunks the caller cannot see count as missing, so a manifest cannot probe for other models' content.
            let chunks = manifest.chunkDigests
            let absent = Set(try await service.missingBlobs(chunks))
            let visible = try await visibleDigests(chunks.filter { !absent.contains($0) }, to: principal)
            let missing = chunks.filter { !visible.contains($0) }
            guard missing.isEmpty else { throw RegistryService.incomplete(missing, what: "Chunks of the manifest") }
            let digest = try await blobs.put(bytes: bytes)
            try await pinUploads([digest], by: principal)
            var headers = HTTPFields()
            headers[.location] = "/v1/manifests/\(digest)"
            return try .json(BlobInfo(digest: digest, size: Int64(bytes.count)), status: .created, headers: headers)
        }

        add(router, .get, "/v1/manifests/:digest") { request, context in
            let principal = try await authenticate(request)
            let digest = try Digest(parsing: context.parameters.required("digest"))
            do {
                try await authorizeDownload(digest, principal, request, context)
            } catch let error as RegistryError where error.code == .blobNotFound {
                throw RegistryError.manifestNotFound(digest)
            }
            let bytes: [UInt8]
            do {
                bytes = try await blobs.read(digest, maxBytes: configuration.maxManifestBytes)
            } catch let error as RegistryError where error.code == .blobNotFound || error.code == .payloadTooLarge {
                throw RegistryError.manifestNotFound(digest)
            }
            // Chunks share the blob store: a digest whose bytes are no manifest is not served as one. A stored manifest
            // that decodes but breaks a rule (it can only have been planted behind the API) is served as it is, so
            // that clients refuse it with MANIFEST_INVALID instead of being told it does not exist.
            guard (try? JSONCoding.decode(Manifest.self, from: bytes)) != nil else {
                throw RegistryError.manifestNotFound(digest)
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.eTag] = "\"\(digest)\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
