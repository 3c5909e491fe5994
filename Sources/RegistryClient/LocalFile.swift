import NIOCore
import NIOPosix
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open local file, closed when the last reference goes away; reads and writes run on the NIO thread pool.
final class LocalFile: Sendable {
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { _ = close(fd) }

    static func open(_ path: String, writing: Bool = false) async throws -> LocalFile {
        try await NIOThreadPool.singleton.runIfActive {
            let flags = writing ? (O_WRONLY | O_CREAT) : O_RDONLY
            while true {
                let fd = systemOpen(path, flags | O_CLOEXEC, 0o644)
                if fd >= 0 { return LocalFile(fd: fd, path: path) }
                if errno != EINTR { throw LocalFile.error(errno, "open", path) }
            }
        }
    }

    /// Reads up to `length` bytes at `offset`; fewer only at the end of the file.
    func read(at offset: Int64, length: Int) async throws -> ByteBuffer {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            var buffer = ByteBufferAllocator().buffer(capacity: length)
            var total = 0
            while total < length {
                let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length - total) { pointer in
                    while true {
                        let result = pread(fd, pointer.baseAddress!, length - total, off_t(offset) + off_t(total))
                        if result >= 0 { return result }
                        if errno != EINTR { throw LocalFile.error(errno, "read", path) }
                    }
                }
                if count == 0 { break }
                total += count
            }
            return buffer
        }
    }

    /// Writes all of `buffer` at `offset`.
    func write(_ buffer: ByteBuffer, at offset: Int64) async throws {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            try buffer.withUnsafeReadableBytes { pointer in
                var done = 0
                while done < pointer.count {
                    let result = pwrite(
                        fd, pointer.baseAddress! + done, pointer.count - done, off_t(offset) + off_t(done))
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw LocalFile.error(errno, "write", path)
                    }
                    done += result
                }
            }
        }
    }

    func sync() async throws {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            if fsync(fd) != 0 { throw LocalFile.error(errno, "sync", path) }
        }
    }

    static func error(_ code: Int32, _ operation: String, _ path: String) -> RegistryError {
        let reason = String(cString: strerror(code))
        if code == ENOSPC { return RegistryError(.storageFull, "The disk is full: cannot \(operation) \(path).") }
        return RegistryError(
            .invalidArgument, "Cannot \(operation) \(path): \(reason).", details: ["path": .string(path)])
    }
}

private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    open(path, flags, mode)
}
