/// Which signatures a model's versions must carry: the public keys trusted to sign them, and whether a version
/// needs a signature at all before it is created or promoted.
///
/// With trusted keys, every signature a version carries must verify against one of them. With
/// `requireSignature`, a version without a verifying signature cannot be created or promoted; the policy then
/// needs at least one trusted key (`validate()`).
public struct TrustPolicy: Sendable, Equatable, Codable {
    /// The most keys one policy may trust.
    public static let maxTrustedKeys = 32

    public var requireSignature: Bool
    public var trustedKeys: [PublicKey]

    public init(requireSignature: Bool = false, trustedKeys: [PublicKey] = []) {
        self.requireSignature = requireSignature
        self.trustedKeys = trustedKeys
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        requireSignature = try container.decodeIfPresent(Bool.self, forKey: .requireSignature) ?? false
        trustedKeys = try container.decodeIfPresent([PublicKey].self, forKey: .trustedKeys) ?? []
    }

    enum CodingKeys: String, CodingKey { case requireSignature, trustedKeys }

    /// Throws `INVALID_ARGUMENT` when signatures are required but no key is trusted, or too many keys are listed.
    public func validate() throws {
        guard trustedKeys.count <= Self.maxTrustedKeys else {
            throw RegistryError.invalidArgument(
                "A trust policy lists at most \(Self.maxTrustedKeys) keys.", field: "trustPolicy.trustedKeys")
        }
        if requireSignature && trustedKeys.isEmpty {
            throw RegistryError.invalidArgument(
                "A trust policy that requires signatures needs at least one trusted key.",
                field: "trustPolicy.trustedKeys")
        }
    }

    /// The same policy with each key listed once, in first-seen order.
    public var deduplicated: TrustPolicy {
        var seen = Set<PublicKey>()
        let keys = trustedKeys.filter { seen.insert($0).inserted }
        return TrustPolicy(requireSignature: requireSignature, trustedKeys: keys)
    }

    /// Checks `signature` on a version whose manifest is `manifest` (stored under `manifestDigest`).
    ///
    /// Without a signature: throws `SIGNATURE_REQUIRED` when the policy requires one, else accepts. With one: when
    /// keys are trusted it must verify against one of them (`SIGNATURE_INVALID` otherwise); with no trusted key
    /// there is nothing to check it against and it is accepted as-is. Returns the key that verified, if any.
    @discardableResult
    public func check(signature: String?, manifest: Manifest, manifestDigest: Digest) throws -> PublicKey? {
        guard let signature else {
            if requireSignature {
                throw RegistryError(
                    .signatureRequired, "The model's trust policy requires a signature by one of its trusted keys.",
                    details: ["trustedKeys": .array(trustedKeys.map { .string($0.id) })])
            }
            return nil
        }
        guard !trustedKeys.isEmpty else { return nil }
        return try ArtifactSigning.verify(
            envelope: signature, manifest: manifest, manifestDigest: manifestDigest, trustedKeys: trustedKeys)
    }
}
