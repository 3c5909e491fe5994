import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

/// `registry push MODEL PATH…`: uploads files (directories recursively) as a new version.
struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload files as a new version of a model.")
    @OptionGroup var options: ClientOptions
    @Argument var model: String
    @Argument(help: "Files or directories; manifest paths are relative to each argument's directory.")
    var paths: [String]
    @Option(name: .customLong("tag"), help: "A tag as key=value (repeatable).") var tags: [String] = []
    @Option(help: "Free-form metadata as a JSON object.") var metadata: String?
    @Option(help: "Chunk size in MiB.") var chunkSize = 8
    @Option(help: "Chunks uploaded at once.") var concurrency = 4

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("Give at least one file or directory to push.") }
        guard chunkSize > 0, chunkSize <= 1024, concurrency > 0, concurrency <= 64 else {
            throw ValidationError("--chunk-size is 1…1024 MiB and --concurrency 1…64.")
        }
    }

    func run() async throws {
        let files = try Self.collect(paths)
        let result = try await options.client.push(
            model: model, files: files, chunkSize: chunkSize * 1024 * 1024, concurrency: concurrency,
            metadata: try Parse.json(metadata), tags: try Parse.tags(tags))
        try options.print(result.version) { version in
            "pushed \(version.model) version \(version.version) (\(files.count) files, \(version.size) bytes; "
                + "uploaded \(result.uploadedChunks) of \(result.chunkCount) chunks)\nmanifest \(result.manifestDigest)"
        }
    }

    /// The files to push: each file argument by its name, each directory's files by their path inside it.
    static func collect(_ paths: [String]) throws -> [PushFile] {
        let manager = FileManager.default
        var files: [PushFile] = []
        for argument in paths {
            let url = URL(fileURLWithPath: argument).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw RegistryError.invalidArgument("\(argument) does not exist.")
            }
            guard isDirectory.boolValue else {
                files.append(PushFile(path: url.lastPathComponent, url: url))
                continue
            }
            guard let enumerator = manager.enumerator(atPath: url.path) else { continue }
            var found: [String] = []
            while let relative = enumerator.nextObject() as? String {
                var nested: ObjCBool = false
                if manager.fileExists(atPath: url.path + "/" + relative, isDirectory: &nested), !nested.boolValue {
                    found.append(relative)
                }
            }
            files += found.sorted().map { PushFile(path: $0, url: url.appendingPathComponent($0)) }
        }
        return files
    }
}

/// `registry pull MODEL@STAGE|MODEL:VERSION DIR`: downloads and verifies one version.
struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download and verify a version into a directory.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL@STAGE or MODEL:VERSION.") var reference: String
    @Argument var directory: String
    @Option(help: "Chunks downloaded at once.") var concurrency = 4

    enum Reference {
        case stage(model: String, stage: String)
        case version(model: String, number: Int)
    }

    func validate() throws { _ = try parsed() }

    func run() async throws {
        let client = options.client
        let destination = URL(fileURLWithPath: directory)
        let result: PullResult
        switch try parsed() {
        case .stage(let model, let stage):
            result = try await client.pull(model: model, stage: stage, to: destination, concurrency: concurrency)
        case .version(let model, let number):
            result = try await client.pull(model: model, version: number, to: destination, concurrency: concurrency)
        }
        if options.json {
            try options.print(["version": result.version, "files": result.files]) { _ in "" }
        } else {
            print("pulled version \(result.version): \(result.files) files, \(result.bytes) bytes into \(directory)")
        }
    }

    private func parsed() throws -> Reference {
        if let at = reference.firstIndex(of: "@") {
            return .stage(model: String(reference[..<at]), stage: String(reference[reference.index(after: at)...]))
        }
        if let colon = reference.lastIndex(of: ":"), let number = Int(reference[reference.index(after: colon)...]) {
            return .version(model: String(reference[..<colon]), number: number)
        }
        throw ValidationError("Name what to pull as MODEL@STAGE or MODEL:VERSION.")
    }
}
