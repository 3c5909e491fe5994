import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

/// `registry gc`: deletes chunks and manifests that no version references (admins).
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete chunks and manifests that no version references.",
        discussion: """
            Blobs younger than the grace window are kept even when unreferenced, because an upload in flight \
            may be about to reference them.
            """)

    @OptionGroup var options: ClientOptions

    @Flag(help: "Report what would be deleted without deleting anything.")
    var dryRun = false

    @Option(help: "Keep unreferenced blobs modified within this many seconds (server default: 3600).")
    var graceSeconds: Int?

    func validate() throws {
        if let graceSeconds, graceSeconds < 0 { throw ValidationError("--grace-seconds cannot be negative.") }
    }

    func run() async throws {
        let report = try await options.client.collectGarbage(dryRun: dryRun, graceSeconds: graceSeconds)
        try options.print(report) { report in
            let verb = report.dryRun ? "would delete" : "deleted"
            var lines = report.deleted.map { "\(verb) \($0)" }
            lines.append(
                "\(report.dryRun ? "dry run: " : "")\(verb) \(report.deleted.count) of \(report.scanned) blobs, "
                    + "\(report.dryRun ? "would free" : "freed") \(ByteCount.format(report.freedBytes)) "
                    + "(\(report.referenced) referenced, \(report.keptYoung) unreferenced kept within the grace window, "
                    + "\(report.keptPinned) held by uploads in progress)")
            return lines.joined(separator: "\n")
        }
    }
}

/// Human-readable byte counts.
enum ByteCount {
    static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : "\(String(format: "%.1f", value)) \(units[unit])"
    }
}
