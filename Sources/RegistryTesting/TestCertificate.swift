import Foundation
import Testing

/// Certificates for TLS tests.
public enum TestCertificate {
    /// A throwaway self-signed P-256 certificate for 127.0.0.1 made with `openssl`; nil (and a loud skip) when openssl
    /// is missing outside CI, a failure under CI.
    public static func make() throws -> (directory: String, cert: String, key: String)? {
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
