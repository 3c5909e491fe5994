import RegistryCore

/// What checking one stored blob's header found, without reading its payload: what a backup, a restore or a key
/// retirement can break is the header (its key fields), never the sealed segments.
public enum BlobHeaderCheck: Sendable, Equatable {
    /// The header is valid, the blob has the size it implies, and the data key unwraps under `keyId`.
    case opens(keyId: String)
    /// The header is valid and the blob has the size it implies; no keyring was given to try its key with.
    case wellFormed(keyId: String)
    /// There is no such blob.
    case missing
    /// The header is not valid, or the blob's size is not the one it implies.
    case malformed(reason: String)
    /// The keyring holds no key `keyId`.
    case keyUnknown(keyId: String)
    /// The keyring holds a key `keyId`, but the wrapped data key does not open with it.
    case keyDoesNotOpen(keyId: String)

    /// The key id the header names, when it could be read.
    public var keyId: String? {
        switch self {
        case .opens(let id), .wellFormed(let id), .keyUnknown(let id), .keyDoesNotOpen(let id): id
        case .missing, .malformed: nil
        }
    }

    /// Checks the first bytes of a stored blob (`header`, at least 128 of them) and its total `size` (nil: unknown,
    /// which is malformed); with `keys`, unwraps its data key (one AES-GCM open of 32 bytes).
    public init(header bytes: [UInt8], size: Int64?, keys: MasterKeyring?) {
        let header: BlobFileHeader
        do {
            header = try BlobFileHeader(parsing: bytes)
        } catch {
            self = .malformed(reason: "its header is invalid: \(error.reason)")
            return
        }
        guard size == header.fileSize else {
            self = .malformed(
                reason: "it holds \(size.map(String.init) ?? "?") bytes where its header implies \(header.fileSize)")
            return
        }
        guard let keys else {
            self = .wellFormed(keyId: header.keyId)
            return
        }
        guard let master = try? keys.key(id: header.keyId) else {
            self = .keyUnknown(keyId: header.keyId)
            return
        }
        guard (try? header.dataKey(using: master)) != nil else {
            self = .keyDoesNotOpen(keyId: header.keyId)
            return
        }
        self = .opens(keyId: header.keyId)
    }
}
