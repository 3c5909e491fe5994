import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

/// Two `registry serve` processes on one PostgreSQL primary with a streaming replica (`--database-replica`): a
/// write answers with `Registry-Position`, and a read through the other instance that presents it sees the write
/// even while the replica has stopped replaying (and `RegistryClient` presents it by itself); once the replica has
/// caught up it serves such reads.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct ReadReplicaProcessTests {
    static let replicaReads = #"registry_database_reads_total{served_by="replica"}"#

    @Test func aReadPresentingAWritesPositionSeesItThroughAnotherInstance() async throws {
        let (primary, replica) = try await PostgresCluster.startWithReplica(database: "registry")
        defer {
            replica.stop()
            primary.stop()
        }
        let directory = NSTemporaryDirectory() + "registry-replica-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = "mr_replica-admin-\(UUID().uuidString)"
        let arguments = [
            "--database", primary.url(database: "registry"), "--database-replica", replica.url(database: "registry"),
        ]
        let a = try await RegistryProcess(dataDirectory: directory + "/a", adminToken: admin, arguments: arguments)
        try await a.serving {
            let b = try await RegistryProcess(dataDirectory: directory + "/b", adminToken: admin, arguments: arguments)
            try await b.serving {
                func names(_ position: String?) async throws -> Set<String> {
                    let response = try await b.send(
                        .GET, "/v1/models?limit=100", token: admin,
                        headers: position.map { [("Registry-Position", $0)] } ?? [])
                    guard case .array(let items)? = response.json["items"] else { return [] }
                    return Set(items.compactMap { if case .string(let name)? = $0["name"] { name } else { nil } })
                }
                try await replica.execute("SELECT pg_wal_replay_pause()")
                let created = try await a.send(.POST, "/v1/models", token: admin, json: ["name": "written-on-a"])
                #expect(created.status == 201)
                let position = try #require(created.header("Registry-Position"), "a write answered no position")
                for _ in 0..<10 {
                    #expect(try await names(position).contains("written-on-a"), "B served a stale list")
                }
                // The client does the same by itself: clients sharing a session read their own writes anywhere.
                let session = WriteSession()
                let clientA = RegistryClient(baseURL: a.baseURL, token: admin, session: session)
                let clientB = RegistryClient(baseURL: b.baseURL, token: admin, session: session)
                _ = try await clientA.createModel("through-the-client")
                #expect(session.position != nil)
                #expect(try await clientB.models(limit: 100).items.contains { $0.name == "through-the-client" })

                try await replica.execute("SELECT pg_wal_replay_resume()")
                try await waitUntil("B's replica serves a read presenting the position") {
                    let before = try await b.metric(Self.replicaReads) ?? 0
                    let seen = try await names(position)
                    let after = try await b.metric(Self.replicaReads) ?? 0
                    return seen.contains("written-on-a") && after > before
                }
            }
        }
    }
}
