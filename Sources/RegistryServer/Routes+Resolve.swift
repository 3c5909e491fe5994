import Foundation
import Hummingbird
import RegistryCore

extension RegistryRoutes {
    struct ResolveResponse: Encodable, Equatable, Sendable {
        struct Target: Encodable, Equatable, Sendable {
            var version: Int
            var manifestDigest: Digest
            var size: Int64
        }

        var model: String
        var stage: String
        var revision: Int
        var stable: Target
        var candidate: JSONValue = .null
        var rolloutId: JSONValue = .null
        var ttlSeconds: Int
        /// The base URL to fetch blobs and manifests from (the data-plane port, or this server).
        var artifactsURL: String
    }

    /// `GET /v1/resolve/{model}/{stage}`: what a serving system should load, cacheable for `ttlSeconds`.
    func registerResolve(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/v1/resolve/:model/:stage") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let name = try stageName(context)
            guard let stage = try await metadata.stage(model: model.name, name: name) else {
                throw RegistryError.stageNotFound(model.name, name)
            }
            let etag = "\"r\(stage.revision)-v\(stage.version)\""
            var headers = HTTPFields()
            headers[.eTag] = etag
            headers[.cacheControl] = "max-age=\(configuration.resolveTTLSeconds)"
            if let candidates = request.headers[.ifNoneMatch],
                candidates.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag })
            {
                return Response(status: .notModified, headers: headers)
            }
            guard let version = try await metadata.version(model: model.name, number: stage.version) else {
                throw RegistryError.versionNotFound(model.name, stage.version)
            }
            let body = ResolveResponse(
                model: model.name, stage: name, revision: stage.revision,
                stable: .init(version: version.version, manifestDigest: version.manifestDigest, size: version.size),
                ttlSeconds: configuration.resolveTTLSeconds,
                artifactsURL: dataPlane.artifactsURL(requestHost: Self.requestHost(request, configuration)))
            return .json(rendered: try rendered.resolutions.bytes(.init(model: model.name, stage: name), body), headers: headers)
        }
    }

    /// The authority the client addressed (`Host`), or the configured host and port when it sent none.
    static func requestHost(_ request: Request, _ configuration: ServerConfiguration) -> String {
        if let authority = request.head.authority, !authority.isEmpty { return authority }
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        return "\(host):\(configuration.port)"
    }
}
