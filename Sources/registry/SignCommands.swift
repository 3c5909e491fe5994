import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

/// `registry sign MODEL:VERSION --key FILE`: signs a version's manifest and attaches the signature to it.
struct Sign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a version's manifest (DSSE envelope over an in-toto statement) and attach the signature.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL:VERSION.") var reference: String
    @Option(help: "The private key file (from 'registry keys generate').") var key: String

    func validate() throws { _ = try KeyFiles.version(reference) }

    func run() async throws {
        let (model, number) = try KeyFiles.version(reference)
        let signingKey = try KeyFiles.signingKey(at: key)
        let client = options.client
        let version = try await client.version(model: model, number: number)
        let manifest = try await client.manifest(version.manifestDigest)
        let signature = try ArtifactSigning.sign(
            manifest: manifest, manifestDigest: version.manifestDigest, with: signingKey)
        let signed = try await client.setSignature(
            model: model, number: number, revision: version.revision, signature: signature)
        try options.print(signed) { version in
            "signed \(version.model) version \(version.version) with key \(signingKey.publicKey.id)"
        }
    }
}

/// `registry verify MODEL:VERSION|MODEL@STAGE [--key FILE.pub…]`: checks a version's signature.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a version's signature against the given keys or the model's trusted keys.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL:VERSION or MODEL@STAGE (the version the stage serves).") var reference: String
    @Option(name: .customLong("key"), help: "A trusted public key file (repeatable; default: the model's keys).")
    var keys: [String] = []

    struct Verified: Encodable {
        var model: String
        var version: Int
        var manifestDigest: Digest
        var keyId: String
        var key: PublicKey
    }

    func validate() throws { _ = try KeyFiles.reference(reference) }

    func run() async throws {
        let trusted = try keys.map(KeyFiles.publicKey(at:))
        let client = options.client
        let (model, number): (String, Int)
        switch try KeyFiles.reference(reference) {
        case .version(let name, let version):
            (model, number) = (name, version)
        case .stage(let name, let stage):
            guard let resolution = try await client.resolve(model: name, stage: stage) else {
                throw RegistryError(.internalError, "The registry answered 'not modified' to an unconditional resolve.")
            }
            (model, number) = (name, resolution.stable.version)
        }
        let (version, key) = try await client.verifySignature(model: model, number: number, keys: trusted)
        let verified = Verified(
            model: model, version: version.version, manifestDigest: version.manifestDigest, keyId: key.id, key: key)
        try options.print(verified) { verified in
            "verified \(verified.model) version \(verified.version) (manifest \(verified.manifestDigest)): "
                + "signed by key \(verified.keyId)"
        }
    }
}

/// Reading key files and version references for the signing commands.
enum KeyFiles {
    enum Reference {
        case stage(model: String, stage: String)
        case version(model: String, number: Int)
    }

    /// `MODEL@STAGE` or `MODEL:VERSION`.
    static func reference(_ text: String) throws -> Reference {
        if let at = text.firstIndex(of: "@") {
            return .stage(model: String(text[..<at]), stage: String(text[text.index(after: at)...]))
        }
        let (model, number) = try version(text)
        return .version(model: model, number: number)
    }

    /// `MODEL:VERSION`.
    static func version(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let number = Int(text[text.index(after: colon)...]), number > 0
        else {
            throw ValidationError("Name the version as MODEL:VERSION (or MODEL@STAGE where a stage is allowed).")
        }
        return (String(text[..<colon]), number)
    }

    /// The private key in `path`, written as `SigningKey.privateText`.
    static func signingKey(at path: String) throws -> SigningKey {
        let text = try contents(of: path)
        if (try? PublicKey(parsing: text)) != nil {
            throw ValidationError("\(path) holds a public key; signing needs the private key file.")
        }
        do {
            return try SigningKey(parsing: text)
        } catch {
            throw ValidationError("\(path) does not hold a private key ('ed25519-private:…' or 'p256-private:…').")
        }
    }

    /// The public key in `path`, written as `PublicKey.description`.
    static func publicKey(at path: String) throws -> PublicKey {
        let text = try contents(of: path)
        if (try? SigningKey(parsing: text)) != nil {
            throw ValidationError("\(path) holds a private key; give its public key (\(path).pub) instead.")
        }
        do {
            return try PublicKey(parsing: text)
        } catch {
            throw ValidationError("\(path) does not hold a public key ('ed25519:…' or 'p256:…').")
        }
    }

    private static func contents(of path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 64 * 1024 else {
            throw ValidationError("Cannot read the key file \(path).")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// What `push --sign-key` and `pull --verify-key` hand to the transfer engine.
enum SignatureOptions {
    /// Signs a pushed manifest with the private key in `keyFile`.
    static func signer(keyFile: String) throws -> PushSigner {
        let key = try KeyFiles.signingKey(at: keyFile)
        return { manifest, digest in try ArtifactSigning.sign(manifest: manifest, manifestDigest: digest, with: key) }
    }

    /// The check `pull` runs before it moves files into place: a signature by one of the keys in `keyFiles`, or
    /// by one of the model's trusted keys when the model requires signatures; nil when neither asks for one.
    static func pullVerification(
        _ client: RegistryClient, model: String, version: Int? = nil, stage: String? = nil, keyFiles: [String]
    ) async throws -> PullVerification? {
        var keys = try keyFiles.map(KeyFiles.publicKey(at:))
        if keys.isEmpty {
            let policy = try await client.model(model).trustPolicy
            guard policy.requireSignature else { return nil }
            keys = policy.trustedKeys
        }
        return client.signatureVerifier(model: model, version: version, stage: stage, trustedKeys: keys)
    }
}
