import Foundation
import RegistryClient
import RegistryTesting

/// A small model on disk: several files, one spanning several chunks, one empty, one in a subdirectory.
struct SampleModel {
    static let chunkSize = 256 * 1024

    let root: URL
    let contents: [String: [UInt8]]

    init(in root: URL) throws {
        self.root = root
        contents = [
            "weights.bin": BlobStoreConformance.pattern(3 * Self.chunkSize + 12_345, seed: 11),
            "config/model.json": Array(#"{"layers": 12}"#.utf8),
            "empty.txt": [],
            "tokenizer.txt": BlobStoreConformance.pattern(5_000, seed: 12),
        ]
        for (path, bytes) in contents {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
    }

    var files: [PushFile] {
        contents.keys.sorted().map { PushFile(path: $0, url: root.appendingPathComponent($0)) }
    }

    /// The files below `directory`, relative to it, with their bytes.
    static func read(_ directory: URL) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: directory.path) else { return [:] }
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = directory.path + "/" + relative
            if manager.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                result[relative] = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            }
        }
        return result
    }
}
