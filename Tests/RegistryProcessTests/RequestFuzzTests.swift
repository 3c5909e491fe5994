import Foundation
import RegistryCore
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A request fuzz loop against a real `registry serve`: random and extreme values at every route of the served
/// `/openapi.json` (odd names and digests, overflowing integers, hostile headers, malformed and extreme JSON), with an
/// admin token and without one. After every batch the process must be alive and answer `/healthz`, and no response
/// may be a 5xx. The seed is printed; `REGISTRY_FUZZ_SEED=<seed>` replays a run.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct RequestFuzzTests {
    static let duration: Duration = .seconds(20)
    static let maxRequests = 4_000
    static let batchSize = 40
    static let workers = 4

    @Test(.timeLimit(.minutes(10)))  // its own bound is 20 s; the rest is waiting for two cores shared by every suite
    func randomAndExtremeRequestsNeitherCrashTheServerNorGet5xx() async throws {
        // Bad tokens are part of the fuzz: the per-address throttle would answer the admin's requests with 429 too.
        try await RegistryProcess.with(arguments: ["--max-auth-failures-per-minute", "0"]) { server, _ in
            try await fuzz(server)
        }
    }

    private func fuzz(_ server: RegistryProcess) async throws {
        let admin = server.adminToken
        let seed =
            ProcessInfo.processInfo.environment["REGISTRY_FUZZ_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 1...UInt64.max)
        print("RequestFuzzTests: seed \(seed) (replay with REGISTRY_FUZZ_SEED=\(seed))")

        let fixtures = try await Fixtures.seed(server)
        let routes = try await Self.routes(port: server.port)
        #expect(routes.count >= 30, "the served /openapi.json lists only \(routes.count) operations")
        var generator = FuzzGenerator(seed: seed, fixtures: fixtures, routes: routes, admin: admin)

        var findings: [String] = []
        var sent = 0
        var dropped = 0
        var timedOut = 0
        var statuses: [Int: Int] = [:]
        let start = ContinuousClock.now
        var batches = [Self.fixedCases(fixtures, admin: admin)]
        while true {
            let batch = batches.isEmpty ? generator.batch(Self.batchSize) : batches.removeFirst()
            let results = await RawHTTP.exchange(batch, port: server.port, workers: Self.workers)
            sent += batch.count
            for (request, result) in zip(batch, results) {
                switch result.status {
                case let status? where status >= 500:
                    findings.append("\(status) from \(request)\n    answered: \(result.head.prefix(300))")
                case let status?: statuses[status, default: 0] += 1
                case nil where result.timedOut: timedOut += 1
                case nil: dropped += 1
                }
            }
            guard server.isRunning, await RawHTTP.healthy(port: server.port) else {
                let suspects = zip(batch, results).filter { $0.1.status == nil }.map { "  \($0.0)" }
                Issue.record(
                    """
                    registry serve \(server.isRunning ? "stopped answering /healthz" : "died") during a batch \
                    (seed \(seed)); requests of that batch without an answer:
                    \(suspects.joined(separator: "\n"))
                    server output (tail):
                    \(server.output.suffix(3_000))
                    """)
                return
            }
            if sent >= Self.maxRequests || ContinuousClock.now - start > Self.duration { break }
        }
        let counts = statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print(
            "RequestFuzzTests: \(sent) requests in \(ContinuousClock.now - start), statuses [\(counts)], \(timedOut) "
                + "timed out (long-polls, bodies promised but not sent), \(dropped) closed without an answer")
        #expect(findings.isEmpty, "5xx answers (seed \(seed)):\n\(findings.prefix(20).joined(separator: "\n"))")
        #expect(statuses.keys.contains { (200..<300).contains($0) }, "no request succeeded: the fuzz reached nothing")
    }

    /// Every operation of the served OpenAPI document as (method, path template).
    fileprivate static func routes(port: Int) async throws -> [Route] {
        let answer = await RawHTTP.exchange([FuzzRequest(method: "GET", path: "/openapi.json")], port: port)[0]
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any], "no /openapi.json")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        return paths.flatMap { path, operations in
            operations.keys.map { Route(method: $0.uppercased(), template: path) }
        }.sorted { ($0.template, $0.method) < ($1.template, $1.method) }
    }

    /// Requests that crashed or nearly crashed the server once, sent before the random ones.
    fileprivate static func fixedCases(_ fixtures: Fixtures, admin: String) -> [FuzzRequest] {
        let auth = [("Authorization", "Bearer \(admin)")]
        let blob = "/v1/blobs/\(fixtures.blobDigest)"
        let max = "9223372036854775807"
        let rollout = "/v1/models/\(fixtures.model)/stages/\(fixtures.stage)/rollouts/\(fixtures.rolloutId)/reports"
        let hugeReport = #"{"instance": "i-1", "state": "serving", "requests": 4611686018427387904, "errors": 0}"#
        let overflowingChunks = """
            {"schemaVersion": 1, "files": [{"path": "a", "size": 1, "digest": "\(fixtures.blobDigest)", "chunks": [\
            {"digest": "\(fixtures.blobDigest)", "size": \(max)}, {"digest": "\(fixtures.blobDigest)", "size": \(max)}]}]}
            """
        var cases: [FuzzRequest] = []
        // The three integer overflows issue 9 found (Swift traps on them): a Range ending at Int64.max, manifest
        // chunk sizes adding past Int64.max, and two rollout reports with requests = 2^62.
        for method in ["GET", "HEAD"] {
            cases.append(FuzzRequest(method: method, path: blob, headers: auth + [("Range", "bytes=0-\(max)")]))
        }
        cases.append(FuzzRequest(method: "PUT", path: "/v1/manifests", headers: auth + json, body: overflowingChunks))
        for _ in 0..<2 {
            cases.append(FuzzRequest(method: "POST", path: rollout, headers: auth + json, body: hugeReport))
        }
        // More integers at the edges of Int64, where a + 1 or a - b may trap.
        for range in [
            "bytes=\(max)-", "bytes=-\(max)", "bytes=-9223372036854775808", "bytes=\(max)-\(max)",
            "bytes=9223372036854775806-\(max)", "bytes=18446744073709551615-", "bytes=-0", "bytes=1-0",
        ] {
            cases.append(FuzzRequest(method: "GET", path: blob, headers: auth + [("Range", range)]))
        }
        for ifMatch in ["\"\(max)\"", "\"-9223372036854775808\"", "\"99999999999999999999\"", "\"-1\""] {
            cases.append(
                FuzzRequest(
                    method: "PATCH", path: "/v1/models/\(fixtures.model)",
                    headers: auth + json + [("If-Match", ifMatch)],
                    body: #"{"description": "x"}"#))
        }
        for query in ["limit=\(max)", "limit=-\(max)", "after=\(max)", "after=-1", "pageToken=\(max)"] {
            cases.append(FuzzRequest(method: "GET", path: "/v1/audit?\(query)", headers: auth))
            cases.append(
                FuzzRequest(method: "GET", path: "/v1/models/\(fixtures.model)/versions?\(query)", headers: auth))
        }
        cases.append(FuzzRequest(method: "GET", path: "/v1/models/\(fixtures.model)/versions/\(max)", headers: auth))
        cases.append(FuzzRequest(method: "GET", path: "/v1/events?after=\(max)&limit=\(max)", headers: auth))
        for key in ["requests", "errors", "stableRequests", "stableErrors"] {
            let body = #"{"instance": "i-2", "state": "serving", "\#(key)": \#(max)}"#
            cases.append(FuzzRequest(method: "POST", path: rollout, headers: auth + json, body: body))
        }
        let rollouts = "/v1/models/\(fixtures.model)/stages/\(fixtures.stage)/rollouts"
        for body in [
            #"{"version": 2, "bakeSeconds": \#(max)}"#, #"{"version": 2, "instanceWindowSeconds": \#(max)}"#,
            #"{"version": 2, "minRequests": \#(max), "minInstances": \#(max)}"#, #"{"version": 2, "steps": [1e308]}"#,
        ] {
            cases.append(
                FuzzRequest(
                    method: "POST", path: rollouts, headers: auth + json + [("If-Match", "\"\(max)\"")], body: body))
        }
        cases.append(
            FuzzRequest(
                method: "POST", path: "/v1/admin/gc", headers: auth + json,
                body: #"{"dryRun": true, "graceSeconds": \#(max)}"#))
        cases.append(
            FuzzRequest(
                method: "POST", path: "/v1/admin/gc", headers: auth + json,
                body: #"{"dryRun": true, "graceSeconds": -9223372036854775808}"#))
        // Nesting deep enough to exhaust a recursive decoder's stack.
        cases.append(
            FuzzRequest(
                method: "POST", path: "/v1/models", headers: auth + json,
                body: String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)))
        cases.append(
            FuzzRequest(
                method: "POST", path: "/v1/models", headers: auth + json,
                body: String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_000)))
        return cases
    }

    private static let json = [("Content-Type", "application/json")]
}

/// A path template and method from the OpenAPI document.
private struct Route: Sendable {
    var method: String
    var template: String
}

/// One request as raw HTTP/1.1: anything may be in it, including what a well-behaved client would refuse to send.
private struct FuzzRequest: Sendable, CustomStringConvertible {
    var method: String
    var target: [UInt8]
    var headers: [Header]
    var body: [UInt8]
    /// Sent instead of the body's real length when set (a lie, a negative number, garbage); nil sends the real one.
    var contentLength: String?

    struct Header: Sendable {
        var name: String
        var value: [UInt8]
    }

    init(
        method: String, path: String, headers: [(String, String)] = [], body: String = "", contentLength: String? = nil
    ) {
        self.init(
            method: method, target: Array(path.utf8),
            headers: headers.map { Header(name: $0.0, value: Array($0.1.utf8)) },
            body: Array(body.utf8), contentLength: contentLength)
    }

    init(method: String, target: [UInt8], headers: [Header], body: [UInt8], contentLength: String? = nil) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.contentLength = contentLength
    }

    func bytes(port: Int) -> [UInt8] {
        var out =
            Array("\(method) ".utf8) + target
            + Array(" HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n".utf8)
        for header in headers { out += Array("\(header.name): ".utf8) + header.value + Array("\r\n".utf8) }
        if let contentLength {
            out += Array("Content-Length: \(contentLength)\r\n".utf8)
        } else if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            out += Array("Content-Length: \(body.count)\r\n".utf8)
        }
        return out + Array("\r\n".utf8) + body
    }

    /// A curl command line that shows what was sent (bytes that are not printable ASCII as \xNN).
    var description: String {
        func printable(_ bytes: [UInt8], limit: Int) -> String {
            var text = ""
            for byte in bytes.prefix(limit) {
                if byte >= 0x20, byte < 0x7f, byte != UInt8(ascii: "'") {
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    text += "\\x" + String(byte, radix: 16)
                }
            }
            return bytes.count > limit ? text + "…(\(bytes.count) bytes)" : text
        }
        var parts = ["curl -X \(method) 'http://127.0.0.1:$PORT\(printable(target, limit: 300))'"]
        for header in headers { parts.append("-H '\(header.name): \(printable(header.value, limit: 200))'") }
        if let contentLength { parts.append("-H 'Content-Length: \(contentLength)'") }
        if !body.isEmpty { parts.append("--data-binary '\(printable(body, limit: 300))'") }
        return parts.joined(separator: " ")
    }
}

/// Blocking HTTP/1.1 over fresh loopback sockets, on threads of its own (not the cooperative pool).
private enum RawHTTP {
    struct Result: Sendable {
        /// nil when the server closed the connection (or the wait ran out) before a status line.
        var status: Int?
        var timedOut: Bool
        var head: String
        var body: [UInt8]
    }

    /// Sends `requests` over `workers` threads at once; answers are in the order of `requests`.
    static func exchange(_ requests: [FuzzRequest], port: Int, workers: Int = 1) async -> [Result] {
        await withTaskGroup(of: [(Int, Result)].self) { group in
            for worker in 0..<max(1, workers) {
                let mine = Array(stride(from: worker, to: requests.count, by: max(1, workers)))
                group.addTask {
                    await withCheckedContinuation { continuation in
                        Thread.detachNewThread {
                            continuation.resume(returning: mine.map { ($0, perform(requests[$0], port: port)) })
                        }
                    }
                }
            }
            var results = [Result?](repeating: nil, count: requests.count)
            for await answers in group { for (index, result) in answers { results[index] = result } }
            return results.map { $0! }
        }
    }

    static func healthy(port: Int) async -> Bool {
        for _ in 0..<3 {
            if await exchange([FuzzRequest(method: "GET", path: "/healthz")], port: port)[0].status == 200 {
                return true
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    static func perform(_ request: FuzzRequest, port: Int, timeoutSeconds: Int = 3) -> Result {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return Result(status: nil, timedOut: false, head: "socket() failed", body: []) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return Result(status: nil, timedOut: false, head: "connect() failed", body: []) }
        // The server may answer (413, 400) and close before the whole request is written: keep reading regardless.
        let bytes = request.bytes(port: port)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { break }
            offset += written
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var timedOut = false
        while received.count < 4 << 20 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[0..<count]
            } else {
                if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { timedOut = true }
                break
            }
        }
        let text = String(decoding: received.prefix(2_048), as: UTF8.self)
        let headEnd = received.firstRange(of: Array("\r\n\r\n".utf8))
        let status: Int? =
            if text.hasPrefix("HTTP/1.1 "), text.count >= 12 {
                Int(text.dropFirst(9).prefix(3))
            } else {
                nil
            }
        let body = headEnd.map { Array(received[$0.upperBound...]) } ?? []
        return Result(status: status, timedOut: status == nil && timedOut, head: text, body: body)
    }
}

/// What the fuzz loop aims at besides random names: the test `World` (model `demo`, version 1 in `production`) with
/// a second approved version in a rollout that moves only by hand, and a token that exists.
private struct Fixtures: Sendable {
    var model = "demo"
    var stage = "production"
    var blobDigest: String
    var manifestDigest: String
    var rolloutId: String
    var tokenId: String

    static func seed(_ server: RegistryProcess) async throws -> Fixtures {
        let world = try await World.make(server)
        let rolloutId = try await world.manualRollout(of: try await world.approvedVersion("fuzz weights two"))
        let token = try await server.send(
            .POST, "/v1/tokens", token: server.adminToken, json: ["subject": "fuzz-extra", "admin": true])
        guard token.status == 201, case .string(let tokenId)? = token.json["id"] else {
            throw TestFailure("seeding a token: \(token.status) \(token.text)")
        }
        return Fixtures(
            blobDigest: Digest(of: world.chunk).description, manifestDigest: world.manifest.description,
            rolloutId: rolloutId, tokenId: tokenId)
    }
}

/// SplitMix64: a small seeded generator, so a failing run can be replayed from its seed.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Builds random requests: every route, odd path values, extreme query values, hostile headers and bodies.
private struct FuzzGenerator {
    var random: SeededGenerator
    let fixtures: Fixtures
    let routes: [Route]
    let admin: String

    init(seed: UInt64, fixtures: Fixtures, routes: [Route], admin: String) {
        random = SeededGenerator(state: seed)
        self.fixtures = fixtures
        self.routes = routes
        self.admin = admin
    }

    static let integers = [
        "0", "-0", "1", "-1", "2", "7", "100", "1000", "1001", "2147483647", "2147483648", "-2147483649", "4294967296",
        "9007199254740993", "9223372036854775806", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "99999999999999999999999999999999999999", "1e308", "1e400", "-1e400", "1.5", "-0.0", "0.1", "1E2", "NaN",
        "Infinity", "-Infinity", "0x10", "01", "+1", " 1", "1 ", "", "abc", "true", "null",
    ]

    static let names = [
        "fuzz-model", "production", "a", "A", "-a", ".a", "_a", "a..b", "%2e%2e", "%2E", "a%2Fb", "%2F", "%00", "a%00b",
        "%FF%FE", "%C0%AF", "%E6%A8%A1%E5%9E%8B", "a%20b", "%25", "%", "%zz", "a;b", "a%3Fb", "a%23b", "~", "null",
        String(repeating: "a", count: 128), String(repeating: "a", count: 129), String(repeating: "b", count: 8_000),
    ]

    static let headerValues: [(String, [String])] = [
        (
            "Range",
            [
                "bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=5-", "bytes=0-9223372036854775806",
                "bytes=9223372036854775807-", "bytes=-9223372036854775807", "bytes=-9223372036854775808", "bytes=1-0",
                "bytes=0-1,2-3", "bytes=abc", "bytes=--1", "bytes=18446744073709551615-", "bytes= 0-1", "items=0-1",
                "bytes=", "bytes=-", "bytes=0-99999999999999999999", "bytes=99999999999999999999-",
            ]
        ),
        (
            "If-Match",
            [
                "\"1\"", "\"0\"", "\"2\"", "\"-1\"", "\"9223372036854775807\"", "\"9223372036854775808\"", "*",
                "W/\"1\"",
                "\"1\", \"2\"", "1", "\"\"", "\"abc\"", "\"", "\"1e3\"",
            ]
        ),
        (
            "If-None-Match",
            ["*", "\"1\"", "W/\"1\"", "\"sha256:0\"", "\"\"", String(repeating: "\"x\",", count: 2_000)]
        ),
        (
            "Content-Type",
            [
                "application/json", "application/json; charset=utf-8", "application/vnd.fuzz+json", "text/plain",
                "application/octet-stream", "application/json; charset=utf-16", "",
            ]
        ),
        ("Accept", ["*/*", "application/json", "text/html", ""]),
        (
            "Authorization",
            ["Bearer", "Bearer ", "Basic YTpi", "bearer x", "Bearer \(String(repeating: "t", count: 5_000))"]
        ),
        ("Transfer-Encoding", ["chunked", "gzip", "identity"]),
        ("Expect", ["100-continue", "200-ok"]),
        ("X-Request-Id", ["", String(repeating: "r", count: 5_000), "a\tb"]),
    ]

    static let queryNames = [
        "limit", "pageToken", "wait", "after", "prefix", "tag", "status", "model", "region", "dryRun", "x",
    ]

    static let fields = [
        "name", "description", "tags", "approvalPolicy", "trustPolicy", "grants", "manifestDigest", "signature",
        "metadata", "source", "status", "decision", "comment", "version", "reason", "steps", "bakeSeconds",
        "autoAdvance", "minInstances", "quorum", "instanceWindowSeconds", "maxErrorRateIncrease", "minRequests",
        "instance", "region", "state", "requests", "errors", "stableRequests", "stableErrors", "dryRun", "graceSeconds",
        "digests", "subject", "admin", "canCreateModels", "expiresAt", "schemaVersion", "mediaType", "files",
        "annotations", "regions",
    ]

    mutating func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &random)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

    mutating func batch(_ count: Int) -> [FuzzRequest] { (0..<count).map { _ in request() } }

    mutating func request() -> FuzzRequest {
        let route = pick(routes)
        var method = route.method
        if chance(3) { method = pick(["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FUZZ"]) }
        var target = Array(fillTemplate(route.template).utf8)
        if chance(60) { target += Array(queryString().utf8) }
        if chance(2) { target += [0xFF, 0xFE, 0x80] }  // raw bytes that are not UTF-8, in the request line
        var headers: [FuzzRequest.Header] = []
        if chance(75) { headers.append(.init(name: "Authorization", value: Array("Bearer \(admin)".utf8))) }
        for (name, values) in Self.headerValues where chance(name == "Authorization" ? 4 : 12) {
            if name == "Authorization", !headers.isEmpty { continue }
            headers.append(.init(name: name, value: Array(pick(values).utf8)))
        }
        if chance(40), !headers.contains(where: { $0.name == "Range" }) {
            headers.append(.init(name: "Range", value: Array(rangeHeader().utf8)))
        }
        if chance(40), !headers.contains(where: { $0.name == "If-Match" }) {
            headers.append(.init(name: "If-Match", value: Array("\"\(pick(Self.integers))\"".utf8)))
        }
        var body: [UInt8] = []
        if ["POST", "PUT", "PATCH"].contains(method) || chance(5) {
            body = self.body()
            if !headers.contains(where: { $0.name == "Content-Type" }), chance(90) {
                headers.append(.init(name: "Content-Type", value: Array("application/json".utf8)))
            }
        }
        var contentLength: String?
        if chance(4) {
            contentLength = pick(["-1", "99999999999999999999", "abc", "0", "1", "\(body.count + 1)", "1, 2", " "])
        }
        return FuzzRequest(method: method, target: target, headers: headers, body: body, contentLength: contentLength)
    }

    mutating func fillTemplate(_ template: String) -> String {
        template.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            guard segment.hasPrefix("{") else { return String(segment) }
            switch segment {
            case "{model}", "{stage}", "{region}":
                if chance(50) { return segment == "{stage}" ? fixtures.stage : fixtures.model }
                return pick(Self.names)
            case "{version}":
                return chance(40)
                    ? pick(["1", "2"])
                    : pick(Self.integers).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "1"
            case "{digest}":
                return pick([
                    fixtures.blobDigest, fixtures.manifestDigest, fixtures.blobDigest, "sha256:" + hex(64),
                    "sha256:" + hex(64).uppercased(), "sha256:" + hex(63), "sha256:" + hex(65), "sha256:",
                    "sha512:" + hex(128),
                    "sha256%3A" + hex(64), "md5:" + hex(32), "..", pick(Self.names),
                ])
            case "{rollout}":
                return pick([
                    fixtures.rolloutId, fixtures.rolloutId, "ro_0000000000000000", "ro_ffffffffffffffff", "ro_",
                    pick(Self.names),
                ])
            case "{id}":
                return pick(["tok_" + hex(16), pick(Self.names), "0", "-1"])
            default:
                return pick(Self.names)
            }
        }.joined(separator: "/")
    }

    mutating func hex(_ count: Int) -> String {
        String((0..<count).map { _ in pick(Array("0123456789abcdef")) })
    }

    mutating func queryString() -> String {
        let pairs = (0..<Int.random(in: 1...3, using: &random)).map { _ -> String in
            let name = pick(Self.queryNames)
            let value: String =
                switch Int.random(in: 0..<4, using: &random) {
                case 0, 1: pick(Self.integers)
                case 2: pick(Self.names)
                default:
                    pick([
                        "key:value", ":", "a:", ":b", "%FF", "AAAA", String(repeating: "z", count: 10_000), "pending",
                    ])
                }
            return name + "=" + (value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value)
        }
        return "?" + pairs.joined(separator: "&")
    }

    mutating func rangeHeader() -> String {
        "bytes=" + pick(["", "-"].map { $0 + pick(Self.integers) } + [pick(Self.integers) + "-" + pick(Self.integers)])
    }

    /// A JSON-ish body: mostly an object of known field names with random values, sometimes something hostile.
    mutating func body() -> [UInt8] {
        switch Int.random(in: 0..<20, using: &random) {
        case 0: return Array((String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)).utf8)
        case 1: return Array(#"{"name": "\#(String(repeating: "x", count: 1_200_000))"}"#.utf8)  // past the JSON limit
        case 2:
            return Array(#"{"name": ""#.utf8) + [0xFF, 0xFE, 0xC0, 0xAF] + Array(#"", "description": "\ud800"}"#.utf8)
        case 3:
            return (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        case 4: return Array(pick(["", "null", "[]", "1", "\"x\"", "{", "{}}", "{\"a\":1,\"a\":2}", "\u{0}"]).utf8)
        default:
            let keys = (0..<Int.random(in: 1...5, using: &random)).map { _ in pick(Self.fields) }
            return Array(
                ("{" + keys.map { "\"\($0)\": \(value(for: $0, depth: 0))" }.joined(separator: ", ") + "}").utf8)
        }
    }

    mutating func value(for field: String, depth: Int) -> String {
        if chance(25) || depth > 3 { return anyValue(depth: depth) }
        let digest = pick([fixtures.blobDigest, fixtures.manifestDigest, "sha256:" + hex(64), "sha256:x"])
        switch field {
        case "files":
            let files = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                """
                {"path": \(pick(["\"a\"", "\"../x\"", "\"/etc/passwd\"", "\"\"", "1"])), "size": \(pick(Self.integers)), \
                "digest": "\(digest)", "chunks": \(value(for: "chunks", depth: depth + 1))}
                """
            }
            return "[" + files.joined(separator: ", ") + "]"
        case "chunks":
            let chunks = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                #"{"digest": "\#(digest)", "size": \#(pick(Self.integers))}"#
            }
            return "[" + chunks.joined(separator: ", ") + "]"
        case "grants":
            return
                #"[{"subject": \#(anyString()), "role": \#(pick(["\"reader\"", "\"owner\"", "\"serving\"", "\"god\"", "1"]))}]"#
        case "steps", "digests", "trustedKeys", "regions":
            let items = (0..<Int.random(in: 0...6, using: &random)).map { _ in
                field == "steps" ? pick(Self.integers) : (chance(50) ? "\"\(digest)\"" : anyString())
            }
            return "[" + items.joined(separator: ", ") + "]"
        case "approvalPolicy":
            return #"{"requiredApprovals": \#(pick(Self.integers)), "allowSelfApproval": \#(pick(["true", "1"]))}"#
        case "trustPolicy":
            return #"{"requireSignature": true, "trustedKeys": \#(value(for: "trustedKeys", depth: depth + 1))}"#
        case "tags", "annotations", "metadata", "source":
            return #"{\#(anyString()): \#(anyValue(depth: depth + 1))}"#
        case "state": return pick(["\"loaded\"", "\"serving\"", "\"failed\"", "\"warming\"", "0"])
        case "decision": return pick(["\"approve\"", "\"reject\"", "\"maybe\""])
        case "status": return pick(["\"archived\"", "\"approved\"", "\"\""])
        case "manifestDigest": return "\"\(digest)\""
        case "name", "subject", "instance", "region", "description", "reason", "comment", "signature", "mediaType",
            "expiresAt":
            return chance(70) ? anyString() : anyValue(depth: depth)
        default:
            return chance(70) ? pick(Self.integers.filter { !$0.isEmpty && !$0.contains(" ") }) : anyValue(depth: depth)
        }
    }

    mutating func anyString() -> String {
        pick([
            "\"fuzz-model\"", "\"\"", "\"a\"", "\"\\u0000\"", "\"\\ud800\"", "\"模型\"",
            "\"\(String(repeating: "s", count: 70_000))\"",
            "\"2999-01-01T00:00:00Z\"", "\"0000-00-00\"", "\"\\\"\"", "\"a b:c\"", "\"\(hex(64))\"",
        ])
    }

    mutating func anyValue(depth: Int) -> String {
        switch Int.random(in: 0..<7, using: &random) {
        case 0: return pick(Self.integers.filter { !$0.isEmpty && !$0.contains(" ") })
        case 1: return anyString()
        case 2: return pick(["true", "false", "null"])
        case 3: return depth > 3 ? "[]" : "[\(anyValue(depth: depth + 1)), \(anyValue(depth: depth + 1))]"
        case 4: return depth > 3 ? "{}" : #"{"\#(pick(Self.fields))": \#(anyValue(depth: depth + 1))}"#
        case 5: return String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        default: return pick(["1e999", "-1e999", "123456789012345678901234567890", "0.000000000000000000001", "-0"])
        }
    }
}
