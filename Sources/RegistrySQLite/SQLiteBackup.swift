import Foundation
import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    /// Writes a consistent snapshot of the database at `source` into a new file at `destination`, with SQLite's
    /// online backup: a server may keep writing `source` meanwhile, and the snapshot is one committed state.
    public static func backup(from source: String, to destination: String) throws {
        guard FileManager.default.fileExists(atPath: source) else {
            throw RegistryError(.notFound, "There is no database at \(source).")
        }
        do {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(10)
            let reader = try DatabasePool(path: source, configuration: configuration)
            let target = try DatabaseQueue(path: destination)
            try reader.backup(to: target)
            try target.close()
            try reader.close()
        } catch {
            throw translate(error)
        }
    }
}
