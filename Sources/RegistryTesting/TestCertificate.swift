import Foundation
import Testing

/// Certificates for TLS tests.
public enum TestCertificate {
    /// Whether `openssl` runs here, which `make()` needs.
    public static let opensslAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "version"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// Whether TLS tests should run: for `.enabled(if:)`, so that without openssl they are reported as skipped
    /// (and under CI run and fail).
    public static var shouldRun: Bool {
        TestEnvironment.runs(needing: "openssl", available: opensslAvailable, install: "apt-get install openssl")
    }

    /// A throwaway self-signed P-256 certificate for 127.0.0.1 made with `openssl`; nil (and a loud skip) when openssl
    /// fails outside CI, a recorded failure under CI.
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
        let ran = (try? process.run()) != nil
        if ran { process.waitUntilExit() }
        guard ran, process.terminationStatus == 0 else {
            let reason = "openssl could not make a test certificate; the TLS test cannot run"
            if TestEnvironment.isCI {
                Issue.record(Comment(rawValue: reason))
            } else {
                print("SKIPPED: \(reason)")
            }
            return nil
        }
        return (directory, directory + "/cert.pem", directory + "/key.pem")
    }
}
