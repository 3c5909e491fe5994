import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// `registry migrate --from-sqlite DIR --to postgres://…`: an embedded registry moved into PostgreSQL serves the same
/// models, versions, stages, tokens, audit chain (same head) and events (same ids), and goes on from there.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct MigrateTests {
    @Test func anEmbeddedRegistryMovesToPostgreSQLWithItsAuditChainAndEvents() async throws {
        let database = try await PostgresCluster.shared().makeDatabase()
        let directory = NSTemporaryDirectory() + "registry-migrate-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = "mr_migrate-admin-\(UUID().uuidString)"
        let data = directory + "/data"

        // An embedded registry with a bit of everything.
        let embedded = try await RegistryProcess(dataDirectory: data, adminToken: admin)
        let (alice, before) = try await embedded.serving { () -> (String, Snapshot) in
            let alice = try await embedded.token(for: "alice", canCreateModels: true)
            #expect(try await embedded.send(.POST, "/v1/models", token: alice, json: ["name": "moved"]).status == 201)
            let access = try await embedded.send(.GET, "/v1/models/moved/acl", token: alice)
            let revision = access.header("ETag") ?? "\"1\""
            #expect(
                try await embedded.send(
                    .PUT, "/v1/models/moved/acl", token: alice,
                    json: ["grants": [["subject": "alice", "role": "owner"], ["subject": "bob", "role": "reader"]]],
                    headers: [("If-Match", revision)]
                ).status == 200)
            let manifest = try await embedded.upload(["model.bin": Array("weights".utf8)], token: alice)
            for _ in 0..<2 {
                let created = try await embedded.send(
                    .POST, "/v1/models/moved/versions", token: alice,
                    json: ["manifestDigest": .string(manifest.description)])
                #expect(created.status == 201)
            }
            let approved = try await embedded.send(
                .POST, "/v1/models/moved/versions/2/approvals", token: admin, json: ["decision": "approve"],
                headers: [("If-Match", "\"1\"")])
            #expect(approved.status == 200, "\(approved.text)")
            let promoted = try await embedded.send(
                .PUT, "/v1/models/moved/stages/production", token: admin, json: ["version": 2],
                headers: [("If-None-Match", "*")])
            #expect(promoted.status == 200, "\(promoted.text)")
            return (alice, try await Snapshot.take(embedded, admin: admin))
        }

        let migrated = try await Self.registry(["migrate", "--from-sqlite", data, "--to", database])
        #expect(migrated.status == 0, "\(migrated.output)\(migrated.error)")
        #expect(migrated.output.contains("audit chain verified"))

        let scaled = try await RegistryProcess(
            dataDirectory: data, adminToken: admin, arguments: ["--database", database])
        try await scaled.serving {
            let after = try await Snapshot.take(scaled, admin: admin)
            #expect(after.model == before.model)
            #expect(after.versions == before.versions)
            #expect(after.stage == before.stage)
            #expect(after.events == before.events)
            #expect(after.audit["entries"] == before.audit["entries"])
            #expect(after.audit["headHash"] == before.audit["headHash"])
            #expect(after.audit["ok"] == .bool(true))
            // Tokens and access lists came along; the blobs are still in the data directory.
            #expect(try await scaled.send(.GET, "/v1/models/moved", token: alice).status == 200)
            #expect(try await scaled.send(.GET, "/v1/manifests/\(before.manifest)", token: alice).status == 200)
            // It goes on: a new version, with the next event id.
            let created = try await scaled.send(
                .POST, "/v1/models/moved/versions", token: alice, json: ["manifestDigest": .string(before.manifest)])
            #expect(created.int("version") == 3)
            let events = try await scaled.send(.GET, "/v1/events?after=\(before.lastEventId)", token: admin)
            guard case .array(let items)? = events.json["items"], case .string(let next)? = items.first?["id"] else {
                Issue.record("no event after the migration: \(events.text)")
                return
            }
            #expect(Int64(next) == before.lastEventId + 1)
            #expect(before.lastEventId > 5)
        }

        // A second migration into the same database is refused and changes nothing.
        let again = try await Self.registry(["migrate", "--from-sqlite", data, "--to", database])
        #expect(again.status != 0)
        #expect((again.output + again.error).contains("already holds registry data"))
    }

    /// What a client sees of the registry, compared before and after the move.
    struct Snapshot {
        var model: JSONValue
        var versions: JSONValue
        var stage: JSONValue
        var events: JSONValue
        var audit: JSONValue
        var manifest: String
        var lastEventId: Int64

        static func take(_ registry: RegistryProcess, admin: String) async throws -> Snapshot {
            let versions = try await registry.send(.GET, "/v1/models/moved/versions?limit=100", token: admin).json
            var manifest = ""
            if case .array(let items)? = versions["items"], case .string(let digest)? = items.first?["manifestDigest"] {
                manifest = digest
            }
            let events = try await registry.send(.GET, "/v1/events?after=0&limit=1000", token: admin).json
            var lastEventId: Int64 = 0
            if case .array(let items)? = events["items"], case .string(let id)? = items.last?["id"] {
                lastEventId = Int64(id) ?? 0
            }
            return Snapshot(
                model: try await registry.send(.GET, "/v1/models/moved", token: admin).json, versions: versions,
                stage: try await registry.send(.GET, "/v1/models/moved/stages/production", token: admin).json,
                events: events["items"] ?? .null,
                audit: try await registry.send(.GET, "/v1/audit/verify", token: admin).json, manifest: manifest,
                lastEventId: lastEventId)
        }
    }

    static func registry(_ arguments: [String]) async throws -> RegistryCommand.Outcome {
        try await RegistryCommand.run(
            URL(fileURLWithPath: try RegistryProcess.binary(named: "registry")), arguments, [:])
    }
}
