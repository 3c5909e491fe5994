import AsyncHTTPClient
import Foundation
import NIOCore
import RegistryBlobStorage
import RegistryCore

/// An `ObjectStorage` in an S3 bucket: the object `a/b` is `<prefix>a/b`.
///
/// A put gathers up to one part: a body that ends within it is written with one `PUT`, a longer one as a multipart
/// upload that is completed only once the body ended and aborted otherwise, so an object appears whole or not at all
/// and memory per put is bounded by one part. Versions are entity tags (`If-Match` pins one). S3 cannot change an
/// object's time without rewriting it, so a touch writes an empty marker object at `<touchPrefix>a/b` whose
/// `Last-Modified` `head` reports when it is later than the object's.
public struct S3ObjectStorage: ObjectStorage {
    /// The smallest part S3 accepts for every part but the last.
    public static let minimumPartSize = 5 << 20

    public let client: S3Client
    /// What every object's key starts with in the bucket.
    public let prefix: String
    /// What every touch marker's key starts with in the bucket.
    public let touchPrefix: String
    /// The largest object written with one `PUT`, and the part size of larger ones.
    public let partSize: Int

    /// Objects in `client`'s bucket under `prefix` (empty for the whole bucket), touch markers under `touchPrefix`;
    /// `partSize` is at least 5 MiB.
    public init(client: S3Client, prefix: String = "", touchPrefix: String = "touched/", partSize: Int = 8 << 20) {
        self.client = client
        self.prefix = prefix
        self.touchPrefix = touchPrefix
        self.partSize = max(partSize, Self.minimumPartSize)
    }

    public func put(_ key: String, body: ByteStream) async throws {
        let name = try objectName(key)
        // Up to one part is gathered here; a body that ends within it is written with one PUT.
        var gathered = ByteBufferAllocator().buffer(capacity: 0)
        var upload: MultipartUpload?
        do {
            for try await var buffer in body {
                gathered.writeBuffer(&buffer)
                while gathered.readableBytes >= partSize {
                    if upload == nil { upload = MultipartUpload(id: try await client.createMultipartUpload(name)) }
                    let part = gathered.readSlice(length: partSize)!
                    try await upload!.send(part, to: name, with: client)
                    gathered.discardReadBytes()
                }
            }
            try Task.checkCancellation()
            guard upload != nil else {
                try await client.put(name, body: gathered)
                return
            }
            if gathered.readableBytes > 0 { try await upload!.send(gathered, to: name, with: client) }
            try await client.completeMultipartUpload(name, uploadId: upload!.id, parts: upload!.etags)
        } catch {
            if let upload {
                // In a task of its own: a cancelled put must still free its parts, and its own task's requests
                // would fail at once.
                let client = client
                await Task { try? await client.abortMultipartUpload(name, uploadId: upload.id) }.value
            }
            throw error
        }
    }

    public func get(_ key: String, range: Range<Int64>?, ifVersion: String?) async throws -> StoredObject? {
        let name = try objectName(key)
        // HTTP cannot ask for no bytes, and a range that starts past the end is refused (416): answer both from
        // the object's info alone.
        if let range, range.isEmpty || range.lowerBound < 0 {
            return try await emptyRead(key, ifVersion: ifVersion)
        }
        let response: HTTPClientResponse?
        do {
            response = try await client.get(name, range: range, ifMatch: ifVersion)
        } catch is S3Client.PreconditionFailed {
            throw ObjectVersionChanged(key: key)
        } catch let error as RegistryError where error.details["status"] == .number(416) {
            return try await emptyRead(key, ifVersion: ifVersion)
        }
        guard let response else { return nil }
        // A ranged answer names the whole size in `Content-Range: bytes 0-127/<size>`.
        let size =
            response.headers.first(name: "Content-Range").flatMap { $0.split(separator: "/").last }.flatMap {
                Int64($0)
            }
            ?? response.headers.first(name: "Content-Length").flatMap { Int64($0) } ?? 0
        let info = ObjectInfo(
            size: size, version: response.headers.first(name: "ETag") ?? "",
            modified: response.headers.first(name: "Last-Modified").flatMap(S3Client.parseHTTPDate) ?? .distantPast)
        return StoredObject(info: info, body: ByteStream(response.body))
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        guard let object = try await client.head(try objectName(key)) else { return nil }
        let written = object.lastModified ?? .distantPast
        let touched = try await client.head(touchPrefix + key)?.lastModified
        return ObjectInfo(size: object.size, version: object.etag ?? "", modified: max(written, touched ?? written))
    }

    public func delete(_ key: String) async throws {
        try await client.delete(try objectName(key))
        try await client.delete(touchPrefix + key)
    }

    public func list(prefix keyPrefix: String) async throws -> [String] {
        let base = prefix + keyPrefix
        var keys: [String] = []
        var token: String?
        repeat {
            let page = try await client.list(prefix: base, continuationToken: token)
            keys += page.keys.filter { $0.hasPrefix(base) && !isMarker($0) }.map { String($0.dropFirst(prefix.count)) }
            token = page.next
        } while token != nil
        return keys
    }

    public func touch(_ key: String) async throws {
        guard try await client.head(try objectName(key)) != nil else { return }
        try await client.put(touchPrefix + key, body: ByteBuffer())
    }

    /// Aborts multipart uploads under this storage's prefix that began more than `age` ago: what a crash mid-upload
    /// leaves behind. Returns how many it aborted.
    @discardableResult
    public func abortStaleUploads(olderThan age: TimeInterval) async throws -> Int {
        let cutoff = Date().addingTimeInterval(-age)
        var aborted = 0
        for upload in try await client.pendingUploads(prefix: prefix) where (upload.initiated ?? .distantPast) < cutoff
        {
            try await client.abortMultipartUpload(upload.key, uploadId: upload.uploadId)
            aborted += 1
        }
        return aborted
    }

    // MARK: Internals

    /// The bucket key of `key`; touch markers are no objects of their own.
    private func objectName(_ key: String) throws -> String {
        try Self.validate(key)
        let name = prefix + key
        guard !isMarker(name) else {
            throw RegistryError(.invalidArgument, "'\(key)' lies among the touch markers under '\(touchPrefix)'.")
        }
        return name
    }

    private func isMarker(_ name: String) -> Bool {
        touchPrefix.hasPrefix(prefix) && name.hasPrefix(touchPrefix)
    }

    private func emptyRead(_ key: String, ifVersion: String?) async throws -> StoredObject? {
        guard let info = try await head(key) else { return nil }
        if let ifVersion, ifVersion != info.version { throw ObjectVersionChanged(key: key) }
        return StoredObject(info: info, body: .buffers([]))
    }
}

/// The parts sent so far of one multipart upload.
private struct MultipartUpload {
    let id: String
    private(set) var etags: [String] = []

    init(id: String) { self.id = id }

    mutating func send(_ part: ByteBuffer, to name: String, with client: S3Client) async throws {
        etags.append(try await client.uploadPart(name, uploadId: id, number: etags.count + 1, body: part))
    }
}
