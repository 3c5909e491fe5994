import Foundation
import RegistryCore

extension RegistryError.Code {
    /// A client refused to follow an `artifactsURL` (and send its token there): cleartext after `https`, another
    /// host than the configured one, or not an http(s) URL. Raised by clients only; no server answers with it.
    public static let untrustedArtifactURL: RegistryError.Code = "UNTRUSTED_ARTIFACT_URL"
}

extension RegistryClient {
    /// A client with the same token, HTTP client (and so the same trust roots) and limits at `url`, the
    /// `artifactsURL` a resolve answer advertised; this client itself when `url` is nil, empty or `baseURL`.
    ///
    /// The token goes only where the caller sent it: `url` must be `https://` when `baseURL` is, and on
    /// `baseURL`'s host (any port; loopback names count as one host) or one of `allowedArtifactHosts`. Otherwise this throws `UNTRUSTED_ARTIFACT_URL`
    /// before anything is sent, so a registry behind a forged `Host` header or a misconfigured proxy cannot steer
    /// the token elsewhere.
    public func artifactClient(for url: String?) throws -> RegistryClient {
        guard var url, !url.isEmpty else { return self }
        while url.hasSuffix("/") { url.removeLast() }
        guard url != baseURL else { return self }
        try checkArtifactsURL(url)
        return RegistryClient(
            baseURL: url, token: token, httpClient: httpClient, timeout: timeout, maxResponseBytes: maxResponseBytes,
            allowedArtifactHosts: allowedArtifactHosts)
    }

    /// Throws `UNTRUSTED_ARTIFACT_URL` unless this client may send its token to `url`; see `artifactClient(for:)`.
    func checkArtifactsURL(_ url: String) throws {
        let shown = String(url.prefix(200))
        func refused(_ message: String) -> RegistryError {
            RegistryError(
                .untrustedArtifactURL, message,
                details: ["artifactsURL": .string(shown), "registryURL": .string(baseURL)])
        }
        guard let target = URLComponents(string: url), let scheme = target.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = target.host.map(Self.normalizedHost), !host.isEmpty,
            target.user == nil, target.password == nil
        else {
            throw refused(
                "The registry at \(baseURL) advertised '\(shown)' as its artifacts URL, which is not an http(s) URL "
                    + "with a host; the client does not follow it. Check the server's --public-data-url.")
        }
        let base = URLComponents(string: baseURL)
        if base?.scheme?.lowercased() == "https" && scheme == "http" {
            throw refused(
                "The registry at \(baseURL) is reached over https but advertised the artifacts URL \(shown) over "
                    + "plain http; the client does not send its token in cleartext. Give the server an https "
                    + "--public-data-url (or --public-url).")
        }
        let configured = base?.host.map(Self.normalizedHost)
        // Loopback names are one machine: a registry configured as `localhost` may advertise `127.0.0.1`.
        let sameMachine = configured.map { Self.isLoopback($0) && Self.isLoopback(host) } ?? false
        guard
            host == configured || sameMachine
                || allowedArtifactHosts.contains(where: { Self.normalizedHost($0) == host })
        else {
            throw refused(
                "The registry at \(baseURL) advertised the artifacts URL \(shown) on another host, \(host); the "
                    + "client sends its token only to the host it was configured with. If \(host) is this registry's "
                    + "data plane, allow it with --allow-artifact-host \(host) (REGISTRY_ALLOW_ARTIFACT_HOSTS, or "
                    + "RegistryClient.allowedArtifactHosts).")
        }
    }

    /// `localhost`, `*.localhost`, `127.0.0.0/8` or `::1` (normalized).
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// A host name as compared: lowercased, without IPv6 brackets or a trailing dot.
    static func normalizedHost(_ host: String) -> String {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        return host
    }
}
