import Synchronization

/// Where the data plane listens once it is bound, shared between the main server's routes and the data server.
final class DataPlaneEndpoint: Sendable {
    private let boundPort = Mutex<Int?>(nil)
    /// The configured override of the advertised URL, if any.
    let publicURL: String?

    /// `https` when the servers speak TLS, else `http`.
    let scheme: String

    init(publicURL: String?, scheme: String = "http") {
        var url = publicURL
        while url?.hasSuffix("/") == true { url?.removeLast() }
        self.publicURL = url
        self.scheme = scheme
    }

    /// The data server's bound port, nil when there is no separate data plane (or it is not bound yet).
    var port: Int? { boundPort.withLock { $0 } }

    func bound(to port: Int) {
        boundPort.withLock { $0 = port }
    }

    /// The artifacts base URL for a client that addressed the server as `host` (a `Host` header value, which may
    /// carry a port): the override, else the data port on that host, else the host as addressed.
    func artifactsURL(requestHost host: String) -> String {
        if let publicURL { return publicURL }
        guard let port else { return "\(scheme)://\(host)" }
        return "\(scheme)://\(Self.hostname(of: host)):\(port)"
    }

    /// `host` without a trailing `:port`; bracketed IPv6 literals keep their brackets.
    static func hostname(of host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[...close]) }
        if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon { return String(host[..<colon]) }
        return host
    }
}
