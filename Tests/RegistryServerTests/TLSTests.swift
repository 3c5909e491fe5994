import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import RegistryClient
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

/// `ServerConfiguration.tls`: both ports speak HTTPS only, with a real certificate and a real handshake.
@Suite(.timeLimit(.minutes(10))) struct TLSTests {
    @Test(.enabled(if: TestCertificate.shouldRun), .timeLimit(.minutes(5)))
    func bothPortsServeHTTPSOnlyAndAdvertiseHTTPSURLs() async throws {
        let certificate = try #require(try TestCertificate.make())
        defer { try? FileManager.default.removeItem(atPath: certificate.directory) }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate.cert)
        let key = try NIOSSLPrivateKey(file: certificate.key, format: .pem)
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(chain)
        let trusting = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: clientTLS))
        // The client is shut down whatever the checks throw, then the error (if any) is reported.
        var failure: (any Error)?
        do {
            try await TestRegistry.with(configuration: ServerConfiguration(port: 0, dataPort: 0, tls: tls)) {
                registry in
                let server = registry.server
                let admin = registry.adminToken
                #expect(server.baseURL.hasPrefix("https://127.0.0.1:"))
                #expect(server.dataBaseURL.hasPrefix("https://127.0.0.1:"))
                // The typed client works over TLS on both ports.
                let client = RegistryClient(baseURL: server.baseURL, token: admin, httpClient: trusting)
                _ = try await client.createModel("secure")
                #expect(try await client.model("secure").name == "secure")
                let bytes = Array("weights over TLS".utf8)
                let digest = Digest(of: bytes)
                let data = RegistryClient(baseURL: server.dataBaseURL, token: admin, httpClient: trusting)
                try await data.putBlob(digest, size: Int64(bytes.count), body: .bytes(bytes))
                var received: [UInt8] = []
                for try await piece in try await data.blob(digest) { received += piece.readableBytesView }
                #expect(received == bytes)

                // Plain HTTP on the TLS port gets no answer, and a client that does not trust the certificate
                // refuses it.
                let plain = "http://127.0.0.1:\(server.port)/healthz"
                await #expect(throws: (any Error).self) {
                    _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: plain), timeout: .seconds(5))
                }
                await #expect(throws: (any Error).self) {
                    _ = try await HTTPClient.shared.execute(
                        HTTPClientRequest(url: server.baseURL + "/healthz"), timeout: .seconds(5))
                }
            }
        } catch {
            failure = error
        }
        try await trusting.shutdown()
        if let failure { throw failure }
    }
}
