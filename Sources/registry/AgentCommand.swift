import ArgumentParser
import Foundation
import Logging
import ModelServing
import RegistryClient
import RegistryCore
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// `registry agent`: the serving runtime for servers that are not written in Swift (TF Serving, Triton, TorchServe,
/// a Python process). It keeps a directory in step with a stage:
///
/// - `DIR/<version>/` holds each version it has downloaded and verified, complete before it appears;
/// - `DIR/current` is a symbolic link to the stable version's directory, replaced with one atomic rename;
/// - `DIR/rollout.json` says what to serve (`stable`, `candidate`, `weight`, `rolloutId`, `previous`), also
///   replaced atomically; the server splits traffic by its own stable hash of a request key, or asks `TrafficSplit`'s
///   documented hash for the same answer as Swift services;
/// - replaced versions stay for the grace period, so a rollback is a rename; then they are deleted.
///
/// It reports to rollouts like the library does: the candidate counts as loaded once its directory is complete.
struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep a directory in step with a stage for a server that is not written in Swift.")

    @OptionGroup var options: ClientOptions
    @Option var model: String
    @Option var stage: String
    @Option(help: "The directory to keep in step.") var dir: String
    @Option(help: "Minutes a replaced version stays for an instant rollback (10–30 in production).")
    var graceMinutes: Double = 15
    @Option(help: "This instance's name in rollout reports (default: host name and process id).") var instance: String?
    @Option var region: String?
    @Option(help: "Seconds between resolves when no watch answer comes (30–300).") var ttlSeconds: Int = 60
    @Option(help: "Seconds between reports to a rollout in progress.") var reportSeconds: Double = 5

    func validate() throws {
        // Fractions of a minute are allowed (tests and demos); a day is the most that makes sense to keep a
        // replaced model on disk, and nothing at all would make a rollback a download.
        guard graceMinutes > 0, graceMinutes <= 24 * 60 else {
            throw ValidationError("--grace-minutes must be more than 0 and at most 1440 (10–30 in production).")
        }
        guard reportSeconds > 0 else { throw ValidationError("--report-seconds must be more than 0.") }
    }

    func run() async throws {
        if !(10...30).contains(graceMinutes) {
            FileHandle.standardError.write(
                Data("agent: warning: --grace-minutes \(graceMinutes) is outside the 10–30 used in production\n".utf8))
        }
        let root = URL(fileURLWithPath: dir).standardizedFileURL
        let files = AgentDirectory(root: root, model: model, stage: stage)
        let configuration = RuntimeConfiguration(
            model: model, stage: stage, cacheDirectory: root, ttl: .seconds(ttlSeconds),
            gracePeriod: .milliseconds(Int(graceMinutes * 60_000)),
            instance: instance ?? RuntimeConfiguration.defaultInstance, region: region,
            reportInterval: .milliseconds(Int(reportSeconds * 1000)))
        let runtime = try await ModelRuntime<URL>.load(
            client: options.client, configuration: configuration,
            loader: { directory, _ in directory },
            unload: { directory in files.remove(directory) },
            published: { state, previous in files.write(state, previous: previous) })
        print("agent: \(model)@\(stage) version \(runtime.router.state.stable.version) at \(root.path)/current")
        // Follows the stage until SIGTERM or SIGINT; what the directory holds stays for the next start.
        let group = ServiceGroup(
            configuration: .init(
                services: [runtime], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "agent")))
        try await group.run()
    }
}

/// The files `registry agent` keeps: `current` and `rollout.json`, each replaced with one rename.
struct AgentDirectory: Sendable {
    let root: URL
    let model: String
    let stage: String

    struct RolloutFile: Encodable {
        var model: String
        var stage: String
        var stable: Int
        var candidate: Int?
        var weight: Double
        var rolloutId: String?
        var previous: Int?
        var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case model, stage, stable, candidate, weight, rolloutId, previous, updatedAt
        }

        /// Absent values are written as explicit nulls, so readers see every field.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(model, forKey: .model)
            try container.encode(stage, forKey: .stage)
            try container.encode(stable, forKey: .stable)
            try container.encode(candidate, forKey: .candidate)
            try container.encode(weight, forKey: .weight)
            try container.encode(rolloutId, forKey: .rolloutId)
            try container.encode(previous, forKey: .previous)
            try container.encode(updatedAt, forKey: .updatedAt)
        }
    }

    func write(_ state: ServingState<URL>, previous: Int?) {
        do {
            // rollout.json first: once `current` exists, rollout.json always does too.
            let file = RolloutFile(
                model: model, stage: stage, stable: state.stable.version, candidate: state.candidate?.version,
                weight: state.candidate == nil ? 0 : state.split.percent, rolloutId: state.rolloutId,
                previous: previous, updatedAt: Timestamp.format(Date()))
            try replace("rollout.json", with: try JSONCoding.encode(file) + [UInt8(ascii: "\n")])
            try link(current: state.stable.model.lastPathComponent)
        } catch {
            FileHandle.standardError.write(Data("agent: cannot update \(root.path): \(error)\n".utf8))
        }
    }

    /// Points `current` at `target` (a sibling directory name): a new link beside it, renamed over it.
    private func link(current target: String) throws {
        let temporary = root.appendingPathComponent(".current.\(getpid())").path
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw POSIXError(errno, "link", temporary) }
        guard rename(temporary, root.appendingPathComponent("current").path) == 0 else {
            throw POSIXError(errno, "rename", temporary)
        }
        syncDirectory()
    }

    /// Writes `name` whole: a temporary file, fsynced, renamed over it, and the directory fsynced.
    private func replace(_ name: String, with bytes: [UInt8]) throws {
        let temporary = root.appendingPathComponent(".\(name).\(getpid())").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(errno, "create", temporary) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else { throw POSIXError(errno, "write", temporary) }
        guard rename(temporary, root.appendingPathComponent(name).path) == 0 else {
            throw POSIXError(errno, "rename", temporary)
        }
        syncDirectory()
    }

    private func syncDirectory() {
        let fd = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Deletes a version whose grace period is over, and its cache marker.
    func remove(_ directory: URL) {
        try? FileManager.default.removeItem(at: directory)
        try? FileManager.default.removeItem(at: root.appendingPathComponent(".\(directory.lastPathComponent).manifest"))
    }

    struct POSIXError: Error, CustomStringConvertible {
        let description: String
        init(_ code: Int32, _ operation: String, _ path: String) {
            description = "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        }
    }
}
