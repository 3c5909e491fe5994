import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

#if canImport(Glibc)
    import Glibc
#endif

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
    @Flag(
        help: ArgumentHelp(
            "Follow symbolic links inside the pushed directories.",
            discussion: "By default a link is refused, naming it, so that nothing outside a directory is uploaded "
                + "by accident; with this flag links are followed wherever they point."))
    var followSymlinks = false

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
        let files = try Self.collect(paths, followSymlinks: followSymlinks)
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
    ///
    /// A symbolic link inside a directory is refused, naming it, unless `followSymlinks`: a link planted in a model
    /// directory (`weights.bin -> ~/.ssh/id_ed25519`) would otherwise upload whatever it points at. With
    /// `followSymlinks` links are followed wherever they point (a Hugging Face snapshot links into `../../blobs`);
    /// a link back to a directory being walked is refused as a cycle. Anything but regular files and directories
    /// (a FIFO, a socket, a device) is refused. A file argument that is itself a link is followed: it was named.
    static func collect(_ paths: [String], followSymlinks: Bool = false) throws -> [PushFile] {
        var files: [PushFile] = []
        for argument in paths {
            let url = URL(fileURLWithPath: argument).standardizedFileURL
            var info = stat()
            guard stat(url.path, &info) == 0 else {
                throw RegistryError.invalidArgument("\(argument) does not exist.", field: "paths")
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                guard info.st_mode & S_IFMT == S_IFREG else {
                    throw RegistryError.invalidArgument("\(argument) is not a regular file.", field: "paths")
                }
                files.append(PushFile(path: url.lastPathComponent, url: url))
                continue
            }
            var walk = DirectoryWalk(root: url.path, followSymlinks: followSymlinks)
            try walk.visit("", identity: info)
            files += walk.found.sorted().map { PushFile(path: $0, url: url.appendingPathComponent($0)) }
        }
        return files
    }

    /// The regular files under one pushed directory, by their path relative to it.
    private struct DirectoryWalk {
        let root: String
        let followSymlinks: Bool
        var found: [String] = []
        /// The directories being walked (this one and its parents), by device and inode, so that a link to a
        /// parent cannot make the walk go round.
        var entered = Set<[UInt64]>()

        init(root: String, followSymlinks: Bool) {
            self.root = root
            self.followSymlinks = followSymlinks
        }

        mutating func visit(_ relative: String, identity: stat) throws {
            let path = relative.isEmpty ? root : root + "/" + relative
            let key = [UInt64(identity.st_dev), UInt64(identity.st_ino)]
            guard entered.insert(key).inserted else {
                throw RegistryError.invalidArgument(
                    "\(path) links back to a directory that contains it (a cycle); push cannot follow it.",
                    field: "paths")
            }
            defer { entered.remove(key) }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: path)
            } catch {
                throw RegistryError.invalidArgument(
                    "Cannot list \(path): \(error.localizedDescription)", field: "paths")
            }
            for name in names.sorted() {
                let child = relative.isEmpty ? name : relative + "/" + name
                let full = root + "/" + child
                var info = stat()
                guard lstat(full, &info) == 0 else {
                    throw RegistryError.invalidArgument(
                        "Cannot inspect \(full): \(String(cString: strerror(errno))).", field: "paths")
                }
                if info.st_mode & S_IFMT == S_IFLNK {
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?"
                    guard followSymlinks else {
                        throw RegistryError.invalidArgument(
                            "\(full) is a symbolic link (to \(target)); push does not follow links by default, so "
                                + "that nothing outside the directory is uploaded by accident. Replace the link with "
                                + "the file, or pass --follow-symlinks to upload what it points at.", field: "paths")
                    }
                    guard stat(full, &info) == 0 else {
                        throw RegistryError.invalidArgument(
                            "\(full) is a symbolic link to \(target), which does not exist.", field: "paths")
                    }
                }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: try visit(child, identity: info)
                case S_IFREG: found.append(child)
                default:
                    throw RegistryError.invalidArgument(
                        "\(full) is not a regular file or a directory (a FIFO, socket or device); push refuses it.",
                        field: "paths")
                }
            }
        }
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
            var line =
                "pulled version \(result.version): \(result.files) files, \(result.bytes) bytes into \(directory)"
            if result.resumedChunks > 0 {
                line +=
                    " (resumed: \(result.resumedChunks) chunks were already in place, fetched \(result.fetchedChunks))"
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
