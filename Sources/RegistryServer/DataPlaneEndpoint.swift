import NIOCore
import Synchronization

/// The URLs the server advertises (resolve's `artifactsURL`), shared between the main server's routes and the data
/// server. They come from configuration and from the ports the servers are bound to, never from a request's `Host`
/// header: a forged `Host` must not steer clients (and their tokens) elsewhere.
final class DataPlaneEndpoint: Sendable {
    private let boundPort = Mutex<Int?>(nil)
    /// `--public-url`: how clients reach the main port (behind a proxy, or under a DNS name).
    let publicURL: String?
    /// `--public-data-url`: how clients reach the data plane.
    let publicDataURL: String?
    /// `https` when the servers speak TLS, else `http`.
    let scheme: String
    /// The configured listening address and main port.
    let host: String
    let mainPort: Int

    init(publicURL: String?, publicDataURL: String?, scheme: String = "http", host: String = "127.0.0.1", port: Int = 0)
    {
        self.publicURL = publicURL.map(Self.trimmed)
        self.publicDataURL = publicDataURL.map(Self.trimmed)
        self.scheme = scheme
        self.host = host
        self.mainPort = port
    }

    convenience init(configuration: ServerConfiguration) {
        self.init(
            publicURL: configuration.publicURL, publicDataURL: configuration.publicArtifactsURL,
            scheme: configuration.scheme, host: configuration.host, port: configuration.port)
    }

    /// The data server's bound port, nil when there is no separate data plane (or it is not bound yet).
    var dataPort: Int? { boundPort.withLock { $0 } }

    func bound(to port: Int) {
        boundPort.withLock { $0 = port }
    }

    /// The artifacts base URL: `--public-data-url`, else `--public-url` (the main port serves blobs too), else the
    /// bound data port (or the main port) on the configured host. `local` is the server's own end of the connection
    /// the request came in on: its port is the main port as bound (the configuration may say 0), and its address
    /// stands in for a wildcard listening address (`0.0.0.0`, `::`), which no client can connect to.
    func artifactsURL(local: SocketAddress?) -> String {
        if let publicDataURL { return publicDataURL }
        if let publicURL { return publicURL }
        var name = host
        if Self.isWildcard(host), let address = local?.ipAddress { name = address }
        if name.contains(":") { name = "[\(name)]" }
        let port = dataPort ?? local?.port ?? mainPort
        return "\(scheme)://\(name):\(port)"
    }

    static func isWildcard(_ host: String) -> Bool {
        ["", "0.0.0.0", "::", "[::]", "*"].contains(host)
    }

    private static func trimmed(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}
