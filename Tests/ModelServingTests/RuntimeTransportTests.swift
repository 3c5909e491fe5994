import AsyncHTTPClient
import Foundation
import ModelServing
import NIOSSL
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

/// A `ModelRuntime` downloads from the advertised data plane with the caller's `HTTPClient`: its trust roots (the
/// CLI's and agent's `--ca-cert`) and its settings, not `HTTPClient.shared`'s.
@Suite(.timeLimit(.minutes(10))) struct RuntimeTransportTests {
    @Test(.enabled(if: TestCertificate.shouldRun), .timeLimit(.minutes(5)))
    func theRuntimeFetchesArtifactsWithTheCallersHTTPClient() async throws {
        let certificate = try #require(try TestCertificate.make())
        defer { try? FileManager.default.removeItem(atPath: certificate.directory) }
        let secret = "mr_runtime-tls-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: certificate.directory + "/data", adminToken: secret,
            arguments: ["--tls-cert", certificate.cert, "--tls-key", certificate.key, "--data-port", "0"])
        try await server.serving {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate.cert))
            let trusting = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
            var failure: (any Error)?
            do {
                let base = "https://127.0.0.1:\(server.port)"
                let admin = RegistryClient(baseURL: base, token: secret, httpClient: trusting)
                _ = try await admin.createModel("toy")
                let source = certificate.directory + "/source"
                try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
                try Data("weights v1".utf8).write(to: URL(fileURLWithPath: source + "/model.txt"))
                let pushed = try await admin.push(
                    model: "toy", files: [PushFile(path: "model.txt", url: URL(fileURLWithPath: source + "/model.txt"))]
                )
                let reviewer = try await admin.createToken(subject: "reviewer", admin: true)
                _ = try await RegistryClient(baseURL: base, token: reviewer.token, httpClient: trusting).decide(
                    model: "toy", number: 1, decision: .approve, comment: nil, revision: pushed.version.revision)
                _ = try await admin.promote(model: "toy", stage: "production", version: 1, revision: nil)
                // The data plane is another URL, so the runtime makes a client for it.
                let resolution = try #require(try await admin.resolve(model: "toy", stage: "production"))
                let artifactsURL = try #require(resolution.artifactsURL)
                #expect(artifactsURL.hasPrefix("https://127.0.0.1:") && artifactsURL != base)

                let configuration = RuntimeConfiguration(
                    model: "toy", stage: "production",
                    cacheDirectory: URL(fileURLWithPath: certificate.directory + "/cache"), watch: false,
                    backoff: (.milliseconds(100), .milliseconds(200)))
                // Without the caller's trust roots every download fails the handshake and `start` retries for ever.
                let loaded = try await withThrowingTaskGroup(of: String?.self) { group in
                    group.addTask {
                        let runtime = try await ModelRuntime.load(
                            client: admin, configuration: configuration,
                            loader: { directory, version in try TextModel(directory: directory, version: version) })
                        return runtime.router.state.stable.model.text
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(30))
                        return nil
                    }
                    let first = try await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
                #expect(loaded == "weights v1", "the runtime did not load over TLS within 30 s")
            } catch {
                failure = error
            }
            try await trusting.shutdown()
            if let failure { throw failure }
        }
    }
}
