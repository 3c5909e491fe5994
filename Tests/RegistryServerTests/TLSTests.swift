import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import RegistryClient
import RegistryCore
import RegistryServer
import Testing

/// `ServerConfiguration.tls`: both ports speak HTTPS only, with a real certificate and a real handshake.
@Suite struct TLSTests {
    @Test func bothPortsServeHTTPSOnlyAndAdvertiseHTTPSURLs() async throws {
        guard let certificate = try Self.selfSignedCertificate() else { return }
        defer { try? FileManager.default.removeItem(atPath: certificate.directory) }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate.cert)
        let key = try NIOSSLPrivateKey(file: certificate.key, format: .pem)
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        let metadata = InMemoryMetadataStore()
        let admin = TokenSecret.generate()
        _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: admin)
        var logger = Logger(label: "registry-tls-test")
        logger.logLevel = .critical
        let server = try await RegistryApplication.start(
            configuration: ServerConfiguration(port: 0, dataPort: 0, tls: tls), metadata: metadata,
            blobs: InMemoryBlobStore(), logger: logger)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(chain)
        let trusting = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: clientTLS))
        // Both are shut down whatever the checks throw, then the error (if any) is reported.
        var failure: (any Error)?
        do {
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

            // Plain HTTP on the TLS port gets no answer, and a client that does not trust the certificate refuses it.
            let plain = "http://127.0.0.1:\(server.port)/healthz"
            await #expect(throws: (any Error).self) {
                _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: plain), timeout: .seconds(5))
            }
            await #expect(throws: (any Error).self) {
                _ = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: server.baseURL + "/healthz"), timeout: .seconds(5))
            }
        } catch {
            failure = error
        }
        try await trusting.shutdown()
        await server.shutdown()
        if let failure { throw failure }
    }

    /// A throwaway self-signed P-256 certificate for 127.0.0.1 made with `openssl`; nil (and a loud skip) when openssl
    /// is missing outside CI, a failure under CI.
    static func selfSignedCertificate() throws -> (directory: String, cert: String, key: String)? {
        let directory = NSTemporaryDirectory() + "registry-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
        } catch {}
        guard process.terminationStatus == 0 else {
            let reason = "openssl could not make a test certificate; the TLS test cannot run"
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record(Comment(rawValue: reason))
            } else {
                print("SKIPPED: \(reason)")
            }
            return nil
        }
        return (directory, directory + "/cert.pem", directory + "/key.pem")
    }
}
