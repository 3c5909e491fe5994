import Foundation

/// Runs the `registry` executable (or any binary) to completion, for tests that drive the CLI.
public enum RegistryCommand {
    /// How a run ended: its exit status and everything it printed.
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: String
        public var error: String

        public init(status: Int32, output: String, error: String) {
            self.status = status
            self.output = output
            self.error = error
        }
    }

    /// Runs `binary` with `arguments` and the process environment plus `environment`, and waits for it.
    public static func run(_ binary: URL, _ arguments: [String], _ environment: [String: String]) async throws
        -> Outcome
    {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // On a thread of its own: reading to the end and waiting would block one of the cooperative pool's threads.
        return await offThePool {
            let out = output.fileHandleForReading.readDataToEndOfFile()
            let err = error.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Outcome(
                status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                error: String(decoding: err, as: UTF8.self))
        }
    }
}
