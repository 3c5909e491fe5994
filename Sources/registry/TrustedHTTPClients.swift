import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// The HTTP clients of the CLI, the agent and the server's S3 store: one that trusts the system's roots, and one per
/// private CA certificate file (in PEM) that trusts it as well. They are kept for the life of the process (so they
/// never need shutting down) and give up connecting after `connectTimeout` instead of the shared client's 90 s, so a
/// refused certificate or an unreachable host is reported promptly.
enum TrustedHTTPClients {
    static let connectTimeout: TimeAmount = .seconds(10)
    private static let clients = Mutex<[String: HTTPClient]>([:])

    /// The client for `caFile` (nil: the system's roots only), made (and the file read) on first use; throws a
    /// readable error when the file holds no PEM certificate.
    static func client(trusting caFile: String?) throws -> HTTPClient {
        if let existing = clients.withLock({ $0[caFile ?? ""] }) { return existing }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw CAError("Cannot read the CA certificate \(caFile): \(error).")
            }
            guard !certificates.isEmpty else { throw CAError("\(caFile) holds no PEM certificate.") }
            tls.additionalTrustRoots = [.certificates(certificates)]
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: connectTimeout)
        let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        return clients.withLock { clients in
            if let raced = clients[caFile ?? ""] {
                try? made.syncShutdown()
                return raced
            }
            clients[caFile ?? ""] = made
            return made
        }
    }

    struct CAError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
