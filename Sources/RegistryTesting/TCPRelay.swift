import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback TCP relay with a stable port in front of a server whose port changes: for a client that cannot be told
/// a new address (a model runtime following a registry) while the test restarts the server on port 0.
///
/// Each accepted connection is joined to a new connection to the current target; bytes flow both ways until either
/// side ends, and then the whole connection is ended (no half-close: a killed server looks like a closed connection
/// to the client).
/// It runs on threads of its own, never on the cooperative pool.
public final class TCPRelay: Sendable {
    /// The port clients connect to.
    public let port: Int
    private let listener: Int32
    private let state: Mutex<State>

    private struct State {
        var target: Int
        var open: Set<Int32> = []
        var closed = false
    }

    /// Listens on a free loopback port and relays to `target`.
    public init(to target: Int) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed: \(errno)") }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 64) == 0 else {
            Glibc.close(descriptor)
            throw TestFailure("the relay could not listen: \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        state = Mutex(State(target: target))
        Thread { [self] in acceptConnections() }.start()
    }

    /// Sends new connections to `target` from now on (open ones stay where they are).
    public func retarget(to target: Int) {
        state.withLock { $0.target = target }
    }

    /// Stops accepting and ends every open connection.
    public func close() {
        let open = state.withLock { state -> Set<Int32> in
            state.closed = true
            return state.open
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    deinit {
        Glibc.close(listener)
    }

    private func acceptConnections() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let target = state.withLock { $0.target }
            guard let server = Self.connect(to: target), register(client, server) else {
                Glibc.close(client)
                continue
            }
            let pending = Atomic<Int>(2)
            for (from, to) in [(client, server), (server, client)] {
                Thread { [self] in
                    Self.pump(from: from, to: to)
                    // The second pump to finish closes both ends.
                    if pending.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                        unregister(client, server)
                    }
                }.start()
            }
        }
    }

    private func register(_ client: Int32, _ server: Int32) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.open.formUnion([client, server])
            return true
        }
        if !accepted { Glibc.close(server) }
        return accepted
    }

    private func unregister(_ client: Int32, _ server: Int32) {
        state.withLock { $0.open.subtract([client, server]) }
        Glibc.close(client)
        Glibc.close(server)
    }

    /// Copies bytes until `from` ends or fails, then ends both directions so that the partner pump returns too.
    private static func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        outer: while true {
            let count = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            var offset = 0
            while offset < count {
                let sent = buffer.withUnsafeBytes {
                    send(to, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
                }
                if sent < 0 && errno == EINTR { continue }
                guard sent > 0 else { break outer }
                offset += sent
            }
        }
        shutdown(to, Int32(SHUT_RDWR))
        shutdown(from, Int32(SHUT_RDWR))
    }

    private static func connect(to port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            return nil
        }
        return descriptor
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
