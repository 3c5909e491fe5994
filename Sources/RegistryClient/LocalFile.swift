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
        try await open(path, flags: writing ? (O_WRONLY | O_CREAT) : O_RDONLY)
    }

    /// Opens `path` with the `open(2)` `flags` (`O_CLOEXEC` is added; created files get mode 0644).
    static func open(_ path: String, flags: Int32) async throws -> LocalFile {
        try await NIOThreadPool.singleton.runIfActive {
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

    /// Fills `buffer` (up to `length` bytes) from `offset` and returns how many bytes it holds; fewer only at the end
    /// of the file.
    func read(into buffer: ReadBuffer, at offset: Int64, length: Int? = nil) async throws -> Int {
        let wanted = min(length ?? buffer.capacity, buffer.capacity)
        return try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            var total = 0
            while total < wanted {
                let result = pread(
                    fd, buffer.memory.baseAddress! + total, wanted - total, off_t(offset) + off_t(total))
                if result < 0 {
                    if errno == EINTR { continue }
                    throw LocalFile.error(errno, "read", path)
                }
                if result == 0 { break }
                total += result
            }
            buffer.count = total
            return total
        }
    }

    /// Appends `bytes` with one `write(2)` (the file is opened with `O_APPEND`, so concurrent appends do not mix).
    func append(_ bytes: [UInt8]) async throws {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            try bytes.withUnsafeBytes { pointer in
                var done = 0
                while done < pointer.count {
                    let result = systemWrite(fd, pointer.baseAddress! + done, pointer.count - done)
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw LocalFile.error(errno, "append to", path)
                    }
                    done += result
                }
            }
        }
    }

    /// Sets the file's length (growing it sparsely).
    func truncate(to length: Int64) async throws {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            if ftruncate(fd, off_t(length)) != 0 { throw LocalFile.error(errno, "resize", path) }
        }
    }

    /// The file's current length.
    func length() async throws -> Int64 {
        try await NIOThreadPool.singleton.runIfActive { [fd, path] in
            var info = stat()
            if fstat(fd, &info) != 0 { throw LocalFile.error(errno, "inspect", path) }
            return Int64(info.st_size)
        }
    }

    /// Fsyncs the directory at `path`, so that renames and creations inside it survive a crash.
    static func syncDirectory(_ path: String) async throws {
        let directory = try await open(path, flags: O_RDONLY | O_DIRECTORY)
        try await directory.sync()
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

private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

/// A reusable block of raw memory for sequential reads; one pipeline stage uses it at a time.
final class ReadBuffer: @unchecked Sendable {  // handed between stages by awaiting; never shared concurrently
    let memory: UnsafeMutableRawBufferPointer
    var count = 0

    init(capacity: Int) {
        memory = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { memory.deallocate() }

    var capacity: Int { memory.count }

    /// The bytes read last.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: memory[0..<count]) }
}
