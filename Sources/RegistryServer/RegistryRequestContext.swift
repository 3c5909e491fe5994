import Hummingbird
import NIOCore

/// The per-request context of the registry: Hummingbird's core storage plus the request id.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The id echoed in `X-Request-Id` and recorded in audit entries; set by `RegistryMiddleware`.
    public var requestId: String
    /// The server's own end of the connection (the address and port it is bound to), nil when unknown; resolve
    /// builds `artifactsURL` from it, never from the client's `Host` header.
    public var localAddress: SocketAddress?
    /// The client's IP address (no port), for per-address limits; nil when the channel has none.
    public var clientAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestId = ""
        localAddress = source.channel.localAddress
        clientAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Bodies are collected by the routes themselves, each with its own limit.
    public var maxUploadSize: Int { 1 << 20 }
}
