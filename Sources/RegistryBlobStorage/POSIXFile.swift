import Foundation
import NIOCore
import RegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Thin, blocking POSIX file calls that report failures as `RegistryError`; callers run them off the
/// cooperative pool.
package enum POSIXFile {
    package static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        while true {
            let fd = path.withCString { systemOpen($0, flags | O_CLOEXEC, mode) }
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw error(errno, "open", path)
        }
    }

    /// Opens an existing file, or returns nil when there is none.
    package static func openIfPresent(_ path: String, flags: Int32) throws -> Int32? {
        do {
            return try open(path, flags: flags)
        } catch let error as RegistryError where error.details["errno"] == .number(Double(ENOENT)) {
            return nil
        }
    }

    /// Writes every readable byte of `buffer`, retrying short writes.
    package static func writeAll(_ fd: Int32, _ buffer: ByteBuffer, path: String) throws {
        try buffer.withUnsafeReadableBytes { pointer in
            var offset = 0
            while offset < pointer.count {
                let written = systemWrite(fd, pointer.baseAddress! + offset, pointer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw error(errno, "write", path)
                }
                offset += written
            }
        }
    }

    /// Writes every byte of `bytes` at `offset`, retrying short writes.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, offset: Int64, path: String) throws {
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if written < 0 {
                if errno == EINTR { continue }
                throw error(errno, "write", path)
            }
            done += written
        }
    }

    /// Fills `buffer` from `offset`; returns how many bytes were read, fewer only at the end of the file.
    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64, path: String)
        throws -> Int
    {
        var done = 0
        while done < buffer.count {
            let result = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw error(errno, "read", path)
            }
            if result == 0 { break }
            done += result
        }
        return done
    }

    /// The file's modification time, or nil when it does not exist.
    package static func modificationTime(_ path: String) throws -> Date? {
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw error(errno, "stat", path)
        }
        #if canImport(Darwin)
            let time = info.st_mtimespec
        #else
            let time = info.st_mtim
        #endif
        return Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
    }

    /// Sets the file's access and modification times to now; a missing file is not an error.
    package static func touch(_ path: String) throws {
        if utimensat(AT_FDCWD, path, nil, 0) != 0 && errno != ENOENT { throw error(errno, "touch", path) }
    }

    /// Reads up to `length` bytes at `offset`; returns fewer only at the end of the file.
    package static func read(_ fd: Int32, offset: Int64, length: Int, path: String) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        var total = 0
        while total < length {
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length - total) { pointer in
                while true {
                    let result = pread(fd, pointer.baseAddress!, length - total, off_t(offset) + off_t(total))
                    if result >= 0 { return result }
                    if errno == EINTR { continue }
                    throw error(errno, "read", path)
                }
            }
            if count == 0 { break }
            total += count
        }
        return buffer
    }

    package static func sync(_ fd: Int32, path: String) throws {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw error(errno, "fsync", path)
        }
    }

    /// Flushes a directory entry (after a rename) so the new name survives a crash.
    package static func syncDirectory(_ path: String) {
        guard let fd = try? open(path, flags: O_RDONLY | O_DIRECTORY) else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    package static func rename(_ from: String, to: String) throws {
        let result = from.withCString { source in to.withCString { systemRename(source, $0) } }
        if result != 0 { throw error(errno, "rename", to) }
    }

    /// Removes a file; a missing file is not an error.
    package static func unlink(_ path: String) throws {
        let result = path.withCString { systemUnlink($0) }
        if result != 0 && errno != ENOENT { throw error(errno, "unlink", path) }
    }

    /// The size of a regular file, or nil when it does not exist.
    package static func size(_ path: String) throws -> Int64? {
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw error(errno, "stat", path)
        }
        return Int64(info.st_size)
    }

    package static func size(of fd: Int32, path: String) throws -> Int64 {
        var info = stat()
        if fstat(fd, &info) != 0 { throw error(errno, "stat", path) }
        return Int64(info.st_size)
    }

    /// Maps an errno to a registry error: a full disk is `STORAGE_FULL`, anything else `INTERNAL`.
    package static func error(_ code: Int32, _ operation: String, _ path: String) -> RegistryError {
        let reason = String(cString: strerror(code))
        if code == ENOSPC || code == EDQUOT {
            return RegistryError(.storageFull, "The blob store is out of space (\(operation): \(reason)).")
        }
        return RegistryError(
            .internalError, "The blob store could not \(operation) a file: \(reason).",
            details: ["errno": .number(Double(code))])
    }
}

private func systemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32, _ mode: mode_t) -> Int32 {
    open(path, flags, mode)
}

private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}

private func systemRename(_ from: UnsafePointer<CChar>, _ to: UnsafePointer<CChar>) -> Int32 {
    rename(from, to)
}

private func systemUnlink(_ path: UnsafePointer<CChar>) -> Int32 {
    unlink(path)
}
