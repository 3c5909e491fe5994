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
    @Option(help: "Average content-defined chunk size in MiB, a power of two (chunks are ¼× to 4× of it).")
    var chunkSize = 1
    @Option(help: "Chunks uploaded at once.") var concurrency = 8
    @Option(help: "Sign the manifest with this private key file; the signature goes with the new version.")
    var signKey: String?

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("Give at least one file or directory to push.") }
        guard chunkSize > 0, chunkSize <= 64, chunkSize.nonzeroBitCount == 1, concurrency > 0, concurrency <= 64
        else {
            throw ValidationError("--chunk-size is a power of two in 1…64 MiB and --concurrency 1…64.")
        }
    }

    /// The chunker's sizes for `--chunk-size`: the default (256 KiB / 1 MiB / 4 MiB) scaled.
    var chunking: ContentDefinedChunker.Parameters {
        let average = chunkSize << 20
        return ContentDefinedChunker.Parameters(
            minimumSize: average / 4, averageSize: average, maximumSize: average * 4)
    }

    func run() async throws {
        let files = try Self.collect(paths)
        let signer = try signKey.map(SignatureOptions.signer(keyFile:))
        let display = ProgressDisplay(verb: "push")
        let result = try await options.client.push(
            model: model, files: files, chunking: chunking, concurrency: concurrency,
            metadata: try Parse.json(metadata), tags: try Parse.tags(tags), sign: signer, progress: display.callback)
        display.finish()
        try options.print(result.version) { version in
            "pushed \(version.model) version \(version.version) (\(files.count) files, \(version.size) bytes; "
                + "uploaded \(result.uploadedChunks) of \(result.chunkCount) chunks, \(result.uploadedBytes) of "
                + "\(result.manifest.totalSize) bytes)\nmanifest \(result.manifestDigest)"
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
    @Option(help: "Chunks downloaded at once.") var concurrency = 8
    @Flag(help: "Fsync every file (and the directories) before it is renamed into place.") var durable = false
    @Option(
        name: .customLong("verify-key"),
        help: "Require a signature by this public key file (repeatable); the model's policy may require one anyway.")
    var verifyKeys: [String] = []

    enum Reference {
        case stage(model: String, stage: String)
        case version(model: String, number: Int)
    }

    func validate() throws {
        _ = try parsed()
        guard concurrency > 0, concurrency <= 64 else { throw ValidationError("--concurrency is 1…64.") }
    }

    func run() async throws {
        let client = options.client
        let destination = URL(fileURLWithPath: directory)
        let display = ProgressDisplay(verb: "pull")
        let result: PullResult
        switch try parsed() {
        case .stage(let model, let stage):
            let verify = try await SignatureOptions.pullVerification(
                client, model: model, stage: stage, keyFiles: verifyKeys)
            result = try await client.pull(
                model: model, stage: stage, to: destination, concurrency: concurrency, durable: durable,
                verify: verify, progress: display.callback)
        case .version(let model, let number):
            let verify = try await SignatureOptions.pullVerification(
                client, model: model, version: number, keyFiles: verifyKeys)
            result = try await client.pull(
                model: model, version: number, to: destination, concurrency: concurrency, durable: durable,
                verify: verify, progress: display.callback)
        }
        display.finish()
        try options.print(result) { result in
            var line = "pulled version \(result.version): \(result.files) files, \(result.bytes) bytes into \(directory)"
            if result.resumedChunks > 0 {
                line += " (resumed: \(result.resumedChunks) chunks were already in place, fetched \(result.fetchedChunks))"
            }
            return line
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
