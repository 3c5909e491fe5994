import Crypto
import Foundation

/// Signatures over model versions: a DSSE envelope around an in-toto statement whose subjects are the version's
/// files and their digests, and whose predicate names the manifest digest (the shape OpenSSF model-signing uses).
public enum ArtifactSigning {
    public static let payloadType = "application/vnd.in-toto+json"
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://model_signing/signature/v1.0"

    /// The in-toto statement for `manifest` stored under `manifestDigest`.
    public static func statement(for manifest: Manifest, manifestDigest: Digest) -> Statement {
        Statement(
            type: statementType,
            subject: manifest.files.map { Statement.Subject(name: $0.path, digest: ["sha256": $0.digest.hex]) },
            predicateType: predicateType,
            predicate: Statement.Predicate(manifestDigest: manifestDigest.description, files: manifest.files.count))
    }

    /// Signs `manifest` with `key` and returns the envelope as compact JSON text.
    public static func sign(manifest: Manifest, manifestDigest: Digest, with key: SigningKey) throws -> String {
        let payload = try JSONCoding.encode(statement(for: manifest, manifestDigest: manifestDigest))
        let signature = try key.sign(preAuthenticationEncoding(payloadType: payloadType, payload: payload))
        let envelope = Envelope(
            payloadType: payloadType, payload: Data(payload).base64EncodedString(),
            signatures: [Envelope.Signature(keyid: key.publicKey.id, sig: signature.base64EncodedString())])
        return String(decoding: try JSONCoding.encode(envelope), as: UTF8.self)
    }

    /// Checks that `envelopeText` is a valid signature by one of `trustedKeys` over exactly `manifest`.
    ///
    /// Throws `SIGNATURE_INVALID` naming what failed: the envelope's shape, an untrusted or wrong signature, or a
    /// statement whose subjects or manifest digest differ from the manifest. Returns the key that verified.
    @discardableResult
    public static func verify(
        envelope envelopeText: String, manifest: Manifest, manifestDigest: Digest, trustedKeys: [PublicKey]
    ) throws -> PublicKey {
        func invalid(_ message: String) -> RegistryError { RegistryError(.signatureInvalid, message) }
        guard let envelope = try? JSONCoding.decode(Envelope.self, from: Array(envelopeText.utf8)) else {
            throw invalid("The signature is not a DSSE envelope.")
        }
        guard envelope.payloadType == payloadType, let payload = Data(base64Encoded: envelope.payload) else {
            throw invalid("The envelope's payload is not an in-toto statement.")
        }
        let message = preAuthenticationEncoding(payloadType: envelope.payloadType, payload: Array(payload))
        var verifiedBy: PublicKey?
        for signature in envelope.signatures {
            guard let bytes = Data(base64Encoded: signature.sig) else { continue }
            for key in trustedKeys where signature.keyid == nil || signature.keyid == key.id {
                if key.isValidSignature(bytes, for: message) {
                    verifiedBy = key
                    break
                }
            }
            if verifiedBy != nil { break }
        }
        guard let key = verifiedBy else {
            throw invalid("No signature in the envelope verifies with a trusted key.")
        }
        guard let statement = try? JSONCoding.decode(Statement.self, from: Array(payload)),
            statement.type == statementType
        else {
            throw invalid("The signed payload is not an in-toto statement.")
        }
        guard statement.predicate?.manifestDigest == manifestDigest.description else {
            throw invalid("The signature was made for another manifest.")
        }
        let signed = Dictionary(
            statement.subject.map { ($0.name, $0.digest["sha256"] ?? "") }, uniquingKeysWith: { a, _ in a })
        let actual = Dictionary(manifest.files.map { ($0.path, $0.digest.hex) }, uniquingKeysWith: { a, _ in a })
        guard signed == actual else {
            let differing = Set(signed.keys).symmetricDifference(actual.keys).union(
                actual.keys.filter { signed[$0] != nil && signed[$0] != actual[$0] }
            ).sorted()
            throw RegistryError(
                .signatureInvalid,
                "The signed files differ from the manifest's: \(differing.prefix(5).joined(separator: ", ")).",
                details: ["files": .array(differing.prefix(50).map(JSONValue.string))])
        }
        return key
    }

    /// DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
    public static func preAuthenticationEncoding(payloadType: String, payload: [UInt8]) -> [UInt8] {
        let type = Array(payloadType.utf8)
        return Array("DSSEv1 \(type.count) ".utf8) + type + Array(" \(payload.count) ".utf8) + payload
    }

    public struct Envelope: Codable, Sendable, Equatable {
        public var payloadType: String
        public var payload: String
        public var signatures: [Signature]

        public struct Signature: Codable, Sendable, Equatable {
            public var keyid: String?
            public var sig: String
        }
    }

    public struct Statement: Codable, Sendable, Equatable {
        public var type: String
        public var subject: [Subject]
        public var predicateType: String
        public var predicate: Predicate?

        enum CodingKeys: String, CodingKey {
            case type = "_type"
            case subject, predicateType, predicate
        }

        public struct Subject: Codable, Sendable, Equatable {
            public var name: String
            public var digest: [String: String]
        }

        public struct Predicate: Codable, Sendable, Equatable {
            public var manifestDigest: String
            public var files: Int
        }
    }
}

/// A public key that may verify version signatures: Ed25519 or ECDSA P-256, written `ed25519:<base64>` or
/// `p256:<base64 of the X9.63 point>`.
public struct PublicKey: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, Codable { case ed25519, p256 }

    public let algorithm: Algorithm
    public let rawRepresentation: [UInt8]

    public init(algorithm: Algorithm, rawRepresentation: [UInt8]) throws {
        self.algorithm = algorithm
        self.rawRepresentation = rawRepresentation
        // Reject malformed keys at the edge rather than at verification time.
        switch algorithm {
        case .ed25519:
            _ = try Self.invalidKey { try Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation) }
        case .p256: _ = try Self.invalidKey { try P256.Signing.PublicKey(x963Representation: rawRepresentation) }
        }
    }

    public init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let algorithm = Algorithm(rawValue: String(parts[0])),
            let bytes = Data(base64Encoded: String(parts[1]))
        else {
            throw RegistryError(
                .invalidArgument, "A public key is written 'ed25519:<base64>' or 'p256:<base64>'.",
                details: ["field": "publicKey"])
        }
        try self.init(algorithm: algorithm, rawRepresentation: Array(bytes))
    }

    public var description: String { "\(algorithm.rawValue):\(Data(rawRepresentation).base64EncodedString())" }

    /// A short stable identifier: the first 16 hex digits of the SHA-256 of the key's text form.
    public var id: String { String(Hex.encode(SHA256.hash(data: Array(description.utf8))).prefix(16)) }

    public func isValidSignature(_ signature: some DataProtocol, for message: [UInt8]) -> Bool {
        switch algorithm {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation) else {
                return false
            }
            return key.isValidSignature(signature, for: message)
        case .p256:
            guard let key = try? P256.Signing.PublicKey(x963Representation: rawRepresentation),
                let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        }
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    private static func invalidKey<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            throw RegistryError(.invalidArgument, "The public key is malformed.", details: ["field": "publicKey"])
        }
    }
}

/// A private key that signs versions; written `ed25519-private:<base64>` or `p256-private:<base64>`.
public struct SigningKey: Sendable {
    public let algorithm: PublicKey.Algorithm
    private let raw: [UInt8]

    public static func generate(_ algorithm: PublicKey.Algorithm) -> SigningKey {
        switch algorithm {
        case .ed25519: SigningKey(algorithm: .ed25519, raw: Array(Curve25519.Signing.PrivateKey().rawRepresentation))
        case .p256: SigningKey(algorithm: .p256, raw: Array(P256.Signing.PrivateKey().rawRepresentation))
        }
    }

    private init(algorithm: PublicKey.Algorithm, raw: [UInt8]) {
        self.algorithm = algorithm
        self.raw = raw
    }

    public init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0].hasSuffix("-private"),
            let algorithm = PublicKey.Algorithm(rawValue: String(parts[0].dropLast("-private".count))),
            let bytes = Data(base64Encoded: String(parts[1]))
        else {
            throw RegistryError(
                .invalidArgument, "A private key is written 'ed25519-private:<base64>' or 'p256-private:<base64>'.")
        }
        self.init(algorithm: algorithm, raw: Array(bytes))
        _ = try publicKeyChecked()
    }

    /// The text form to store in a key file (keep it secret).
    public var privateText: String { "\(algorithm.rawValue)-private:\(Data(raw).base64EncodedString())" }

    public var publicKey: PublicKey {
        // A SigningKey is validated when made, so deriving its public key cannot fail.
        (try? publicKeyChecked())!
    }

    private func publicKeyChecked() throws -> PublicKey {
        switch algorithm {
        case .ed25519:
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            return try PublicKey(algorithm: .ed25519, rawRepresentation: Array(key.publicKey.rawRepresentation))
        case .p256:
            let key = try P256.Signing.PrivateKey(rawRepresentation: raw)
            return try PublicKey(algorithm: .p256, rawRepresentation: Array(key.publicKey.x963Representation))
        }
    }

    public func sign(_ message: [UInt8]) throws -> Data {
        switch algorithm {
        case .ed25519: try Curve25519.Signing.PrivateKey(rawRepresentation: raw).signature(for: message)
        case .p256: try P256.Signing.PrivateKey(rawRepresentation: raw).signature(for: message).rawRepresentation
        }
    }
}
