import Foundation
import RegistryCore

extension ServerConfiguration {
    /// `text` as a public URL the server may advertise (`--public-url`, `--public-data-url`): an absolute `http` or
    /// `https` URL with a host and no user, query or fragment, returned without trailing slashes. Throws
    /// `INVALID_ARGUMENT` naming `option` otherwise.
    public static func checkedPublicURL(_ text: String, option: String) throws -> String {
        func invalid(_ why: String) -> RegistryError {
            RegistryError.invalidArgument(
                "\(option) must be an absolute http:// or https:// URL such as https://registry.example.com: "
                    + "'\(text.prefix(200))' \(why).", field: option)
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw invalid("is not a URL")
        }
        guard scheme == "http" || scheme == "https" else { throw invalid("has the scheme '\(scheme)'") }
        guard let host = components.host, !host.isEmpty else { throw invalid("has no host") }
        guard components.user == nil, components.password == nil else { throw invalid("carries credentials") }
        guard components.query == nil else { throw invalid("has a query") }
        guard components.fragment == nil else { throw invalid("has a fragment") }
        var url = text
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// Checks `publicURL` and `publicArtifactsURL` together: each well formed, and the data URL not `http://`
    /// when the main URL is `https://` (clients refuse to send their token over cleartext).
    public static func checkedPublicURLs(
        publicURL: String?, publicDataURL: String?
    ) throws -> (publicURL: String?, publicDataURL: String?) {
        let main = try publicURL.map { try checkedPublicURL($0, option: "--public-url") }
        let data = try publicDataURL.map { try checkedPublicURL($0, option: "--public-data-url") }
        if let main, let data, main.lowercased().hasPrefix("https:"), data.lowercased().hasPrefix("http:") {
            throw RegistryError.invalidArgument(
                "--public-data-url is http:// while --public-url is https://: clients refuse to send their token "
                    + "over cleartext. Serve the data plane over https too.", field: "--public-data-url")
        }
        return (main, data)
    }
}
