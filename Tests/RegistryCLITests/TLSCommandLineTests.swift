import Foundation
import RegistryTesting
import Testing

/// The CLI against `registry serve --tls-cert/--tls-key` with a private certificate: refused until the CLI is told to
/// trust it with `--ca-cert` or `REGISTRY_CA_CERT`.
@Suite(.timeLimit(.minutes(10))) struct TLSCommandLineTests {
    @Test(.enabled(if: TestCertificate.shouldRun), .timeLimit(.minutes(5)))
    func theCLITrustsAPrivateCAOnlyWhenToldTo() async throws {
        let certificate = try #require(try TestCertificate.make())
        defer { try? FileManager.default.removeItem(atPath: certificate.directory) }
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        let admin = "mr_tls-cli-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: certificate.directory + "/data", adminToken: admin,
            arguments: ["--tls-cert", certificate.cert, "--tls-key", certificate.key])
        try await server.serving {
            let url = "https://127.0.0.1:\(server.port)"
            let list = ["model", "list", "--url", url, "--token", admin]

            let untrusted = try await CommandLineTests.run(binary, list, ["REGISTRY_CA_CERT": ""])
            #expect(untrusted.status != 0, "a certificate nobody vouches for is refused")
            #expect(untrusted.error.contains("UNAVAILABLE"), "\(untrusted.error)")

            let flagged = try await CommandLineTests.run(binary, list + ["--ca-cert", certificate.cert], [:])
            #expect(flagged.status == 0, "\(flagged.error)")

            let created = try await CommandLineTests.run(
                binary, ["model", "create", "secure", "--url", url, "--token", admin],
                ["REGISTRY_CA_CERT": certificate.cert])
            #expect(created.status == 0, "\(created.error)")
            let listed = try await CommandLineTests.run(binary, list, ["REGISTRY_CA_CERT": certificate.cert])
            #expect(listed.output.contains("secure"))

            let notACertificate = try await CommandLineTests.run(binary, list + ["--ca-cert", certificate.key], [:])
            #expect(notACertificate.status != 0)
            #expect(
                notACertificate.error.contains("CA certificate")
                    || notACertificate.error.contains("no PEM certificate"),
                "\(notACertificate.error)")
        }
    }
}
