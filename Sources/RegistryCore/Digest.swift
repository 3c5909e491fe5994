import Crypto

/// A content address: `sha256:` followed by 64 lowercase hex digits.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let hex: String

    public init(hex: String) throws {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy(Self.isHex) else {
            throw RegistryError(.invalidDigest, "A digest is 'sha256:' and 64 lowercase hex digits.")
        }
        self.hex = hex
    }

    public init(parsing text: some StringProtocol) throws {
        guard text.hasPrefix("sha256:") else {
            throw RegistryError(
                .invalidDigest, "Unsupported digest '\(text.prefix(80))': expected 'sha256:<64 hex digits>'.",
                details: ["digest": .string(String(text.prefix(80)))])
        }
        try self.init(hex: String(text.dropFirst(7)))
    }

    /// The digest of `bytes`.
    public init(of bytes: some Sequence<UInt8>) {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        self.init(finalized: hasher.finalize())
    }

    public init(finalized digest: SHA256.Digest) {
        self.hex = Hex.encode(digest)
    }

    public var description: String { "sha256:\(hex)" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        try self.init(parsing: try container.decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.hex < rhs.hex }

    private static func isHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

/// Lowercase hexadecimal encoding.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
