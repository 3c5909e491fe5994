import AsyncHTTPClient
import Foundation
import NIOSSL
import RegistryClient
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 9, item 6: the advertised `artifactsURL` comes from configuration and the bound ports, never from the
/// request's `Host`; resolve answers are private to the caller; clients send their token only where they were told.
@Suite(.timeLimit(.minutes(10))) struct TransportSecurityTests {
    @Test func aForgedHostHeaderNeverReachesTheResolveAnswerWhichIsPrivate() async throws {
        for dataPort in [nil, 0] {
            try await TestRegistry.with(configuration: .init(resolveTTLSeconds: 30, dataPort: dataPort)) { registry in
                let world = try await World.make(registry)
                let resolved = try await registry.send(
                    .GET, "/v1/resolve/demo/production", token: world.tokens["reader"],
                    headers: [("Host", "attacker.example")])
                #expect(resolved.status == 200)
                #expect(!resolved.text.contains("attacker.example"), "\(resolved.text)")
                let expected = dataPort == nil ? registry.server.baseURL : registry.server.dataBaseURL
                #expect(resolved.json["artifactsURL"] == .string(expected))
                #expect(resolved.header("Cache-Control") == "private, max-age=30")

                let unchanged = try await registry.send(
                    .GET, "/v1/resolve/demo/production", token: world.tokens["reader"],
                    headers: [("Host", "attacker.example"), ("If-None-Match", resolved.header("ETag") ?? "")])
                #expect(unchanged.status == 304)
                #expect(unchanged.header("Cache-Control") == "private, max-age=30")
            }
        }
    }

    /// Bound to a wildcard address, the server advertises the address the connection arrived on (its own end of
    /// it, which the client cannot forge), with the bound port.
    @Test func aWildcardServerAdvertisesTheAddressTheConnectionArrivedOn() async throws {
        try await TestRegistry.with(configuration: .init(host: "0.0.0.0")) { registry in
            let world = try await World.make(registry)
            let resolved = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: world.tokens["reader"],
                headers: [("Host", "attacker.example:443")])
            #expect(resolved.json["artifactsURL"] == .string("http://127.0.0.1:\(registry.server.port)"))
        }
    }

    @Test func theConfiguredPublicURLsAreAdvertised() async throws {
        var configuration = ServerConfiguration(dataPort: 0)
        configuration.publicURL = "https://registry.example.com"
        try await TestRegistry.with(configuration: configuration) { registry in
            let world = try await World.make(registry)
            let resolved = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: world.tokens["reader"],
                headers: [("Host", "attacker.example")])
            // The main port serves blobs too: without a data URL the public URL is the artifacts URL.
            #expect(resolved.json["artifactsURL"] == "https://registry.example.com")
        }
        configuration.publicArtifactsURL = "https://data.registry.example.com/"
        try await TestRegistry.with(configuration: configuration) { registry in
            let world = try await World.make(registry)
            let resolved = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: world.tokens["reader"],
                headers: [("Host", "attacker.example")])
            #expect(resolved.json["artifactsURL"] == "https://data.registry.example.com")
        }
    }

    @Test func publicURLsAreCheckedWithAClearError() throws {
        #expect(
            try ServerConfiguration.checkedPublicURL("https://r.example.com/", option: "--public-url")
                == "https://r.example.com")
        #expect(
            try ServerConfiguration.checkedPublicURL("http://10.0.0.5:8081", option: "--public-url")
                == "http://10.0.0.5:8081")
        for bad in [
            "registry.example.com", "/v1", "ftp://r.example.com", "https://", "https://r.example.com/?a=b",
            "https://r.example.com/#top", "https://user:pw@r.example.com", "",
        ] {
            #expect(throws: RegistryError.self, "\(bad)") {
                _ = try ServerConfiguration.checkedPublicURL(bad, option: "--public-url")
            }
        }
        do {
            _ = try ServerConfiguration.checkedPublicURL("ftp://x", option: "--public-data-url")
            Issue.record("an ftp URL was accepted")
        } catch let error as RegistryError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("--public-data-url") && error.message.contains("http"))
        }
        #expect(throws: RegistryError.self) {
            _ = try ServerConfiguration.checkedPublicURLs(
                publicURL: "https://r.example.com", publicDataURL: "http://data.example.com")
        }
    }

    /// A registry reached over https that advertises an `http://` artifacts URL, or one on another host, gets no
    /// token: the client refuses before connecting (a trap listening at the advertised URL sees nothing).
    @Test(.enabled(if: TestCertificate.shouldRun), .timeLimit(.minutes(5)))
    func anHTTPSClientRefusesACleartextOrForeignArtifactsURL() async throws {
        let certificate = try #require(try TestCertificate.make())
        defer { try? FileManager.default.removeItem(atPath: certificate.directory) }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate.cert)
        let key = try NIOSSLPrivateKey(file: certificate.key, format: .pem)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(chain)
        let trusting = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: clientTLS))
        let trap = try ConnectionTrap()
        var failure: (any Error)?
        for advertised in ["http://127.0.0.1:\(trap.port)", "https://data.registry.invalid:\(trap.port)"] {
            var configuration = ServerConfiguration(
                port: 0,
                tls: .makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
            configuration.publicArtifactsURL = advertised
            do {
                try await TestRegistry.with(configuration: configuration) { registry in
                    var client = RegistryClient(
                        baseURL: registry.baseURL, token: registry.adminToken, httpClient: trusting)
                    client.timeout = .seconds(60)  // generous: the suite runs on two loaded cores
                    try await Self.publishDemo(client)
                    let destination = URL(fileURLWithPath: certificate.directory + "/pulled-\(UUID().uuidString)")
                    do {
                        _ = try await client.pull(model: "demo", stage: "production", to: destination)
                        Issue.record("the pull followed \(advertised)")
                    } catch let error as RegistryError {
                        #expect(error.code == .untrustedArtifactURL, "\(error)")
                        #expect(error.message.contains(advertised), "\(error.message)")
                        #expect(
                            error.message.contains(
                                advertised.hasPrefix("http:") ? "cleartext" : "--allow-artifact-host"),
                            "\(error.message)")
                    }
                    #expect(trap.receivedConnection() == nil, "the token went to \(advertised)")
                    // Allowing the host does not allow cleartext.
                    client.allowedArtifactHosts = ["127.0.0.1", "data.registry.invalid"]
                    if advertised.hasPrefix("http:") {
                        await #expect(throws: RegistryError.self) {
                            _ = try await client.pull(model: "demo", stage: "production", to: destination)
                        }
                        #expect(trap.receivedConnection() == nil)
                    } else {
                        #expect(try client.artifactClient(for: advertised).baseURL == advertised)
                    }
                }
            } catch {
                failure = error
                break
            }
        }
        try await trusting.shutdown()
        if let failure { throw failure }
    }

    /// Over plain http the host rule holds too, `allowedArtifactHosts` lifts it for a named host, and loopback names
    /// count as one machine: a client of `localhost` follows the `127.0.0.1` URL the server advertises for the
    /// address the connection arrived on.
    @Test(.timeLimit(.minutes(5)))
    func anotherHostIsFollowedOnlyWhenAllowed() async throws {
        try await TestRegistry.with { registry in
            let port = registry.server.port
            var client = RegistryClient(baseURL: "http://localhost:\(port)", token: registry.adminToken)
            try await Self.publishDemo(client)
            let resolved = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: registry.adminToken, base: "http://localhost:\(port)")
            #expect(resolved.json["artifactsURL"] == .string("http://127.0.0.1:\(port)"))
            let destination = NSTemporaryDirectory() + "registry-hosts-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: destination) }
            let pulled = try await client.pull(
                model: "demo", stage: "production", to: URL(fileURLWithPath: destination + "/b"))
            #expect(pulled.version == 1)
            #expect(FileManager.default.contents(atPath: destination + "/b/model.txt") == Data("weights".utf8))

            for foreign in ["http://data.registry.invalid:\(port)", "http://10.0.0.7:\(port)", "ftp://localhost/"] {
                do {
                    _ = try client.artifactClient(for: foreign)
                    Issue.record("\(foreign) was followed")
                } catch let error as RegistryError {
                    #expect(error.code == .untrustedArtifactURL, "\(error)")
                }
            }
            client.allowedArtifactHosts = ["DATA.registry.invalid"]
            #expect(
                try client.artifactClient(for: "http://data.registry.invalid:9000/").baseURL
                    == "http://data.registry.invalid:9000")
            #expect(try client.artifactClient(for: "https://data.registry.invalid").token == registry.adminToken)
        }
    }

    // MARK: Helpers

    /// Model `demo` with version 1 (`model.txt`: "weights") approved by a second subject and in `production`.
    static func publishDemo(_ admin: RegistryClient) async throws {
        _ = try await admin.createModel("demo")
        let source = NSTemporaryDirectory() + "registry-demo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: source) }
        try Data("weights".utf8).write(to: URL(fileURLWithPath: source + "/model.txt"))
        let pushed = try await admin.push(
            model: "demo", files: [PushFile(path: "model.txt", url: URL(fileURLWithPath: source + "/model.txt"))])
        let reviewer = try await admin.createToken(subject: "reviewer", admin: true)
        let approver = RegistryClient(baseURL: admin.baseURL, token: reviewer.token, httpClient: admin.httpClient)
        _ = try await approver.decide(
            model: "demo", number: 1, decision: .approve, comment: nil, revision: pushed.version.revision)
        _ = try await admin.promote(model: "demo", stage: "production", version: 1, revision: nil)
    }
}

/// A TCP listener on loopback that is never served: whatever connects stays in its backlog, where the test can see
/// whether anyone came and what they sent.
final class ConnectionTrap: Sendable {
    let port: Int
    private let socket: Int32

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestFailure("cannot listen on loopback: \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        socket = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(socket) }

    /// What the first waiting connection sent (possibly nothing yet), nil when nobody connected.
    func receivedConnection() -> [UInt8]? {
        let connection = accept(socket, nil, nil)
        guard connection >= 0 else { return nil }
        defer { close(connection) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(connection, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return Array(buffer.prefix(max(0, count)))
    }
}
