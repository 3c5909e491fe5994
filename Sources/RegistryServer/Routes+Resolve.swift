import Foundation
import Hummingbird
import NIOCore
import RegistryAPI
import RegistryCore
import RegistryService
import ServiceLifecycle

extension RegistryRoutes {
    /// `GET /v1/resolve/{model}/{stage}`: what a serving system should load, cacheable for `ttlSeconds`.
    func registerResolve(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/v1/resolve/:model/:stage") { request, context in
            let (principal, model) = try await authorizedModel(.read, request, context)
            let name = try stageName(context)
            // `wait` (seconds) makes this a watch: with an `If-None-Match` that is still current, the answer comes
            // as soon as it changes (a rollout step, an abort, a promotion), or as 304 when `wait` runs out.
            let wait =
                try request.query("wait").map { text -> Int in
                    guard let seconds = Int(text), seconds >= 0 else {
                        throw RegistryError.invalidArgument("wait must be a whole number of seconds.", field: "wait")
                    }
                    return min(seconds, configuration.maxEventWaitSeconds)
                } ?? 0
            let deadline = ContinuousClock.now.advanced(by: .seconds(wait))
            let known =
                request.headers[.ifNoneMatch].map {
                    Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                } ?? []
            // A watch holds one of the caller's watch slots while it waits (429 `TOO_MANY_REQUESTS` beyond them).
            if wait > 0 { try watches.acquire(principal.subject) }
            defer { if wait > 0 { watches.release(principal.subject) } }
            if wait > 0 { metrics.openWatches.increment() }
            defer { if wait > 0 { metrics.openWatches.decrement() } }
            while true {
                let head = wait > 0 ? try await metadata.lastEventId() : 0
                let (etag, body) = try await resolution(model: model, stage: name, local: context.localAddress)
                var headers = HTTPFields()
                headers[.eTag] = etag
                // `private`: the answer depends on the caller's token, so no shared cache may keep it for others.
                headers[.cacheControl] = "private, max-age=\(configuration.resolveTTLSeconds)"
                if !known.contains(etag) {
                    let bytes = try rendered.resolutions.bytes(.init(model: model.name, stage: name), body)
                    return .json(rendered: bytes, headers: headers)
                }
                let remaining = deadline - ContinuousClock.now
                // A graceful shutdown ends the watch with "unchanged": the watcher asks again, of another
                // instance, instead of holding this one's shutdown for up to `maxEventWaitSeconds`.
                guard remaining > .zero, !Task.isShuttingDownGracefully else {
                    return Response(status: .notModified, headers: headers)
                }
                try await waitForEvents(after: head, timeout: remaining)
            }
        }
    }

    /// What `stage` of `model` resolves to now as the API shows it, and its entity tag (which changes with every
    /// change of answer).
    func resolution(model: Model, stage name: String, local: SocketAddress?) async throws -> (String, Resolution) {
        let resolution = try await service.resolve(model: model.name, stage: name)
        let stable = resolution.stable
        let body = Resolution(
            model: model.name, stage: name, revision: resolution.stage.revision,
            stable: .init(version: stable.version, manifestDigest: stable.manifestDigest, size: stable.size),
            candidate: resolution.candidate.map {
                .init(
                    version: $0.version.version, manifestDigest: $0.version.manifestDigest, size: $0.version.size,
                    weight: $0.weight, state: $0.state.rawValue)
            },
            rolloutId: resolution.candidate?.rolloutId, ttlSeconds: configuration.resolveTTLSeconds,
            artifactsURL: dataPlane.artifactsURL(local: local))
        return (resolution.entityTag, body)
    }
}
