import ArgumentParser
import Foundation
import RegistryCore
import RegistryS3

/// The blob bucket of a registry that keeps its blobs in S3: `serve` and the commands that look at the blobs
/// themselves (`keys list`, `keys retire`, `backup`, `restore`) take the same options; credentials come from
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
struct S3Options: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The S3 bucket that holds the registry's blobs (the same for 'serve' and the other commands); "
                + "without it, blobs under --data-dir.",
            discussion: "Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN."))
    var s3Bucket: String?

    @Option(help: "The S3 endpoint, http(s)://host[:port] (default: AWS S3 in --s3-region).")
    var s3Endpoint: String?

    @Option(help: "The region of --s3-bucket.")
    var s3Region = "us-east-1"

    @Option(help: "The key prefix of the registry's objects in --s3-bucket.")
    var s3Prefix = ""

    @Option(help: "Also trust this PEM CA certificate for an https --s3-endpoint.")
    var s3CaCert: String?

    func validate() throws {
        if s3Bucket == nil && (s3Endpoint != nil || !s3Prefix.isEmpty || s3CaCert != nil) {
            throw ValidationError("--s3-endpoint, --s3-prefix and --s3-ca-cert need --s3-bucket.")
        }
        do {
            _ = try TrustedHTTPClients.client(trusting: s3CaCert)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The bucket's blob store, nil without `--s3-bucket`.
    func store(
        keyring: MasterKeyring,
        onCorruption: @escaping @Sendable (RegistryError) -> Void = BlobCorruption.reportToStandardError
    ) throws -> S3BlobStore? {
        try client().map { S3BlobStore(client: $0, prefix: s3Prefix, keyring: keyring, onCorruption: onCorruption) }
    }

    /// A client of the bucket, nil without `--s3-bucket`; throws without credentials in the environment.
    func client() throws -> S3Client? {
        guard let s3Bucket else { return nil }
        let environment = ProcessInfo.processInfo.environment
        guard let accessKey = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"],
            !accessKey.isEmpty, !secret.isEmpty
        else {
            throw ValidationError("--s3-bucket needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment.")
        }
        let client = try S3Client(
            location: .init(
                endpoint: s3Endpoint ?? "https://s3.\(s3Region).amazonaws.com", bucket: s3Bucket, region: s3Region),
            credentials: .init(
                accessKeyId: accessKey, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"]),
            httpClient: try TrustedHTTPClients.client(trusting: s3CaCert))
        return client
    }
}
