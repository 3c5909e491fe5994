import Foundation
import NIOCore
import RegistryCore
import Synchronization

/// Reports transfer progress as `(bytesDone, bytesTotal)`; called from any task.
public typealias TransferProgress = @Sendable (_ bytesDone: Int64, _ bytesTotal: Int64) -> Void

/// Checks a pulled version before its files are handed over (signature, policy); throwing stops the pull.
public typealias PullVerification = @Sendable (_ manifest: Manifest, _ manifestDigest: Digest) async throws -> Void

/// Signs a pushed manifest before its version is created; returns the `signature` sent with the version.
public typealias PushSigner = @Sendable (_ manifest: Manifest, _ manifestDigest: Digest) async throws -> String

/// What a push did: the new version, its manifest, and how much actually travelled.
public struct PushResult: Sendable {
    public var version: ModelVersion
    public var manifestDigest: Digest
    public var manifest: Manifest
    /// Distinct chunks the manifest lists.
    public var chunkCount: Int
    /// Chunks that were missing on the registry and were uploaded.
    public var uploadedChunks: Int
    public var uploadedBytes: Int64
}

/// What a pull wrote, and how much of it travelled in this run.
public struct PullResult: Sendable, Codable {
    public var version: Int
    public var manifestDigest: Digest
    public var files: Int
    public var bytes: Int64
    /// Distinct chunks the manifest lists.
    public var chunkCount: Int
    /// Chunks downloaded by this run.
    public var fetchedChunks: Int
    public var fetchedBytes: Int64
    /// Chunks an earlier, interrupted pull had already written and this run did not fetch again.
    public var resumedChunks: Int
}

/// One local file to push and the path it gets in the manifest (relative, `/`-separated).
public struct PushFile: Sendable {
    public var path: String
    public var url: URL

    public init(path: String, url: URL) {
        self.path = path
        self.url = url
    }
}

extension RegistryClient {
    /// Where one chunk's bytes are in a local file.
    struct ChunkLocation: Sendable {
        var digest: Digest
        var size: Int64
        var path: String
        var offset: Int64
    }

    /// The size of sequential reads while hashing: large enough to amortize thread hops, small enough to stay flat.
    static let readSize = 8 * 1024 * 1024

    /// The absolute path of manifest path `relative` inside `root`; throws `MANIFEST_INVALID` if it escapes.
    static func contained(_ relative: String, in root: String) throws -> String {
        let components = relative.split(separator: "/", omittingEmptySubsequences: false)
        let path = (root + "/" + relative as NSString).standardizingPath
        guard !relative.hasPrefix("/"), components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
            path.hasPrefix(root + "/")
        else {
            throw RegistryError(
                .invalidManifest, "The manifest path '\(relative.prefix(200))' would leave the destination.",
                details: ["path": .string(String(relative.prefix(200)))])
        }
        return path
    }

    static func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.invalidArgument("Cannot create the directory \(path): \(error.localizedDescription)")
        }
    }

    static func rename(_ from: String, to: String) throws {
        guard Foundation.rename(from, to) == 0 else {
            throw RegistryError.invalidArgument("Cannot move \(from) to \(to): \(String(cString: strerror(errno))).")
        }
    }

    /// Runs `body` for each element with at most `concurrency` running at once; the first error cancels the rest.
    static func forEach<Element: Sendable>(
        _ elements: [Element], concurrency: Int, _ body: @escaping @Sendable (Element) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < elements.count && next < concurrency {
                let element = elements[next]
                group.addTask { try await body(element) }
                next += 1
            }
            while try await group.next() != nil {
                if next < elements.count {
                    let element = elements[next]
                    group.addTask { try await body(element) }
                    next += 1
                }
            }
        }
    }
}

/// Adds up transferred bytes from concurrent tasks and reports the running total.
final class ProgressCounter: Sendable {
    private let done = Mutex<Int64>(0)
    let total: Int64
    let report: TransferProgress?

    init(total: Int64, report: TransferProgress?) {
        self.total = total
        self.report = report
        report?(0, total)
    }

    func add(_ bytes: Int64) {
        guard bytes > 0 else { return }
        let now = done.withLock { value -> Int64 in
            value += bytes
            return value
        }
        report?(now, total)
    }
}
