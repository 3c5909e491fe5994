import Foundation
import RegistryCore
import Testing

@Suite(.timeLimit(.minutes(10))) struct ArtifactSigningTests {
    static let manifest = Manifest(files: [
        .init(
            path: "weights.bin", size: 3, digest: Digest(of: [1, 2, 3]),
            chunks: [.init(digest: Digest(of: [1, 2, 3]), size: 3)]),
        .init(
            path: "config.json", size: 2, digest: Digest(of: [4, 5]),
            chunks: [.init(digest: Digest(of: [4, 5]), size: 2)]),
    ])
    static let digest = Digest(of: Array("manifest".utf8))

    @Test(arguments: [PublicKey.Algorithm.ed25519, .p256])
    func aSignatureVerifiesWithItsPublicKey(_ algorithm: PublicKey.Algorithm) throws {
        let key = SigningKey.generate(algorithm)
        let envelope = try ArtifactSigning.sign(manifest: Self.manifest, manifestDigest: Self.digest, with: key)
        let verifiedBy = try ArtifactSigning.verify(
            envelope: envelope, manifest: Self.manifest, manifestDigest: Self.digest, trustedKeys: [key.publicKey])
        #expect(verifiedBy == key.publicKey)
    }

    @Test func anUntrustedKeyIsRejected() throws {
        let envelope = try ArtifactSigning.sign(
            manifest: Self.manifest, manifestDigest: Self.digest, with: .generate(.ed25519))
        let error = #expect(throws: RegistryError.self) {
            try ArtifactSigning.verify(
                envelope: envelope, manifest: Self.manifest, manifestDigest: Self.digest,
                trustedKeys: [SigningKey.generate(.ed25519).publicKey])
        }
        #expect(error?.code == .signatureInvalid)
    }

    @Test func aSignatureForOtherFilesIsRejected() throws {
        let key = SigningKey.generate(.p256)
        let envelope = try ArtifactSigning.sign(manifest: Self.manifest, manifestDigest: Self.digest, with: key)
        var other = Self.manifest
        other.files[0].digest = Digest(of: [9])
        let error = #expect(throws: RegistryError.self) {
            try ArtifactSigning.verify(
                envelope: envelope, manifest: other, manifestDigest: Self.digest, trustedKeys: [key.publicKey])
        }
        #expect(error?.code == .signatureInvalid)
        #expect(throws: RegistryError.self) {
            try ArtifactSigning.verify(
                envelope: envelope, manifest: Self.manifest, manifestDigest: Digest(of: [0]),
                trustedKeys: [key.publicKey])
        }
    }

    @Test func aTamperedPayloadIsRejected() throws {
        let key = SigningKey.generate(.ed25519)
        let text = try ArtifactSigning.sign(manifest: Self.manifest, manifestDigest: Self.digest, with: key)
        var envelope = try JSONDecoder().decode(ArtifactSigning.Envelope.self, from: Data(text.utf8))
        var payload = Array(Data(base64Encoded: envelope.payload)!)
        payload[payload.count / 2] ^= 1
        envelope.payload = Data(payload).base64EncodedString()
        let tampered = String(decoding: try JSONEncoder().encode(envelope), as: UTF8.self)
        #expect(throws: RegistryError.self) {
            try ArtifactSigning.verify(
                envelope: tampered, manifest: Self.manifest, manifestDigest: Self.digest, trustedKeys: [key.publicKey])
        }
    }

    @Test func keysRoundTripThroughTheirTextForms() throws {
        for algorithm in [PublicKey.Algorithm.ed25519, .p256] {
            let key = SigningKey.generate(algorithm)
            let parsed = try SigningKey(parsing: key.privateText)
            #expect(parsed.publicKey == key.publicKey)
            #expect(try PublicKey(parsing: key.publicKey.description) == key.publicKey)
        }
        #expect(throws: RegistryError.self) { try PublicKey(parsing: "ed25519:AAAA") }
        #expect(throws: RegistryError.self) { try PublicKey(parsing: "rsa:AAAA") }
    }
}
