import Foundation
import RegistryCore

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive `flock` on `DIR/LOCK`, held for the life of the process, so two servers never share a data directory.
final class DataDirectoryLock {
    private let descriptor: Int32

    init(directory: String) throws {
        let path = directory + "/LOCK"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw RegistryError(.internalError, "Cannot open \(path): \(String(cString: strerror(errno))).")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw RegistryError(
                .unavailable, "Another registry process is using the data directory \(directory); stop it first.")
        }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
