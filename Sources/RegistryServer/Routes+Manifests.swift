import Hummingbird
import RegistryCore

extension RegistryRoutes {
    struct ManifestResponse: Encodable {
        var digest: Digest
        var size: Int
    }

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
            let missing = try await missingBlobs(manifest.chunkDigests)
            guard missing.isEmpty else { throw Self.incomplete(missing, what: "Chunks of the manifest") }
            let digest = try await blobs.put(bytes: bytes)
            var headers = HTTPFields()
            headers[.location] = "/v1/manifests/\(digest)"
            return try .json(ManifestResponse(digest: digest, size: bytes.count), status: .created, headers: headers)
        }

        add(router, .get, "/v1/manifests/:digest") { request, context in
            let digest = try Digest(parsing: context.parameters.required("digest"))
            let principal = try await authenticate(request)
            try await authorizeDownload(digest, principal, request, context)
            let bytes: [UInt8]
            do {
                bytes = try await blobs.read(digest, maxBytes: configuration.maxManifestBytes)
            } catch let error as RegistryError where error.code == .blobNotFound {
                throw RegistryError(
                    .manifestNotFound, "No manifest \(digest) is stored.",
                    details: ["digest": .string(digest.description)])
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.eTag] = "\"\(digest)\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
