import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One keep-alive HTTP/1.1 connection driven with blocking socket calls from its own thread.
///
/// The measured phase uses this rather than AsyncHTTPClient for the same reason people measure servers with `wrk`:
/// on a 2-core machine the load generator shares the cores with the server, and an event-loop client with its task
/// hops spends about as much CPU per request as the server does. This one costs two system calls per request. It
/// still speaks real HTTP/1.1 over loopback TCP (`Content-Length` and chunked bodies, keep-alive).
final class RawHTTPConnection {
    struct Response {
        var status: Int
        var etag: String?
        var body: [UInt8]

        var etagRevision: Int? {
            etag.flatMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: "\"W/"))) }
        }
    }

    private let fd: Int32
    private let host: String
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0

    /// Connects to `baseURL` (`http://127.0.0.1:PORT`).
    init(baseURL: String) throws {
        guard let url = URL(string: baseURL), let port = url.port, let hostName = url.host else {
            throw BenchmarkFailure("cannot parse \(baseURL)")
        }
        host = "\(hostName):\(port)"
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchmarkFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(hostName)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw BenchmarkFailure("connect \(baseURL): \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends one request and reads its whole response.
    func send(
        _ method: String, _ path: String, token: String, json body: [UInt8]? = nil, headers: [(String, String)] = []
    ) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nAuthorization: Bearer \(token)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        try write(Array(head.utf8) + (body ?? []))
        return try readResponse()
    }

    private func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard written > 0 else { throw BenchmarkFailure("write: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    /// Reads more bytes into the buffer, compacting or growing it first.
    private func fill() throws {
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in
                _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
            }
            end -= start
            start = 0
        }
        if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
        guard count > 0 else { throw BenchmarkFailure("the server closed the connection") }
        end += count
    }

    /// Reads up to and including the next CRLF; returns the line without it.
    private func line() throws -> Substring {
        while true {
            if let index = buffer[start..<end].firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: buffer[start..<index], as: UTF8.self)
                start = index + 1
                return Substring(text.hasSuffix("\r") ? String(text.dropLast()) : text)
            }
            try fill()
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while end - start < count { try fill() }
        defer { start += count }
        return Array(buffer[start..<start + count])
    }

    private func readResponse() throws -> Response {
        let statusLine = try line()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw BenchmarkFailure("bad status line '\(statusLine)'")
        }
        var length = 0
        var chunked = false
        var etag: String?
        while true {
            let header = try line()
            if header.isEmpty { break }
            guard let colon = header.firstIndex(of: ":") else { continue }
            let name = header[..<colon].lowercased()
            let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length": length = Int(value) ?? 0
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "etag": etag = value
            default: break
            }
        }
        var body: [UInt8] = []
        if chunked {
            while true {
                let size = Int(try line().split(separator: ";")[0], radix: 16) ?? 0
                if size == 0 {
                    while try !line().isEmpty {}
                    break
                }
                body += try take(size)
                _ = try line()
            }
        } else if status != 204 && status != 304 {
            body = try take(length)
        }
        return Response(status: status, etag: etag, body: body)
    }
}

/// Runs `body(worker)` on `count` dedicated threads at once and returns their results in worker order, without
/// blocking a thread of the cooperative pool (the in-process server needs those).
func onThreads<Result: Sendable>(
    _ count: Int, _ body: @escaping @Sendable (Int) throws -> Result
) async throws -> [Result] {
    let slots = ThreadResults<Result>(count)
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        let group = DispatchGroup()
        for worker in 0..<count {
            group.enter()
            Thread {
                slots.results[worker] = Swift.Result { try body(worker) }
                group.leave()
            }.start()
        }
        group.notify(queue: .global()) { done.resume() }
    }
    return try slots.results.map { try $0!.get() }
}

/// One result slot per thread; each thread writes only its own, and they are read after all have joined.
private final class ThreadResults<Value>: @unchecked Sendable {
    let results: UnsafeMutableBufferPointer<Swift.Result<Value, any Error>?>

    init(_ count: Int) {
        results = .allocate(capacity: count)
        results.initialize(repeating: nil)
    }

    deinit {
        results.deinitialize()
        results.deallocate()
    }
}
