import Hummingbird

/// The per-request context of the registry: Hummingbird's core storage plus the request id.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The id echoed in `X-Request-Id` and recorded in audit entries; set by `RegistryMiddleware`.
    public var requestId: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestId = ""
    }

    /// Bodies are collected by the routes themselves, each with its own limit.
    public var maxUploadSize: Int { 1 << 20 }
}
