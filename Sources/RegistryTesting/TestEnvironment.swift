import Foundation

/// What the test run may assume about its machine; the one place that reads `CI`.
public enum TestEnvironment {
    /// Whether this run is CI (`CI` set to anything but empty or `false`), where a missing service fails the tests
    /// that need it instead of skipping them.
    public static var isCI: Bool {
        ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty && $0.lowercased() != "false" } ?? false
    }

    /// Whether a test that needs `service` should run: it is `available`, or this is CI (where the test then fails
    /// on the missing service). Use it in `.enabled(if:)`, so that outside CI the test is reported as skipped, never
    /// as passed; the reason is printed once per call.
    public static func runs(needing service: String, available: Bool, install hint: String) -> Bool {
        if available || isCI { return true }
        FileHandle.standardError.write(Data("SKIPPED: tests that need \(service) (\(hint)).\n".utf8))
        return false
    }
}
