import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Testing

/// Reads from a real streaming replica: a read that presents the position of a write is never served by a replica
/// that has not replayed it, reads without one avoid a replica lagging past the bound, and the replica keeps
/// serving while the primary is down.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct ReadReplicaTests {
    typealias Fixture = MetadataStoreConformance

    /// Model names as a request that only reads lists them, presenting `position`.
    func names(_ store: PostgresMetadataStore, presenting position: String?) async throws -> Set<String> {
        try await ReadConsistency.$replicaRead.withValue(ReplicaRead(minimumPosition: position)) {
            Set(try await store.models(ModelQuery(limit: 1000)).items.map(\.name))
        }
    }

    /// Creates a model as a write request does and returns the position its commit reported.
    func create(_ store: PostgresMetadataStore, _ name: String) async throws -> String {
        let commits = CommitPositions()
        try await ReadConsistency.$commits.withValue(commits) {
            _ = try await Fixture.createModel(store, Fixture.model(name))
        }
        return try #require(commits.last, "a write on a store with replicas reported no position")
    }

    @Test func readsFollowThePositionTheyPresentAndNeverUseALaggingReplica() async throws {
        let (primary, replica) = try await PostgresCluster.startWithReplica(database: "registry")
        defer {
            replica.stop()
            primary.stop()
        }
        let replicas = [try PostgresMetadataStore.Configuration(url: replica.url(database: "registry"))]
        try await PostgresMetadataStore.with(
            try .init(url: primary.url(database: "registry")), replicas: replicas
        ) { store in
            // Read-your-writes holds on every read, wherever it is served; the replica serves once it has replayed.
            let first = try await create(store, "first")
            #expect(try await names(store, presenting: first).contains("first"))
            try await waitUntil("the replica serves a read that presented the write's position") {
                let before = store.readsServed.replica
                let seen = try await names(store, presenting: first)
                return seen.contains("first") && store.readsServed.replica > before
            }

            // A replica that stops replaying is never used for a read that presents a newer position.
            try await replica.execute("SELECT pg_wal_replay_pause()")
            let second = try await create(store, "second")
            for _ in 0..<20 {
                let before = store.readsServed
                #expect(try await names(store, presenting: second).contains("second"))
                #expect(store.readsServed.replica == before.replica, "a lagging replica served a newer position")
                #expect(store.readsServed.primary == before.primary + 1)
            }
            // Nor, once it lags past the bound (2 s), for reads that present none.
            try await Task.sleep(for: .seconds(3))
            let before = store.readsServed
            #expect(try await names(store, presenting: nil).contains("second"))
            #expect(store.readsServed.replica == before.replica, "a replica lagging past the bound served a read")
            // A position the store never made is answered by the primary, not refused.
            #expect(try await names(store, presenting: "not-a-position").contains("second"))

            // Replaying again, it serves again.
            try await replica.execute("SELECT pg_wal_replay_resume()")
            try await waitUntil("the replica serves again after catching up") {
                let before = store.readsServed.replica
                let seen = try await names(store, presenting: second)
                return seen.contains("second") && store.readsServed.replica > before
            }

            // The primary down: reads keep being served by the replica, writes fail fast.
            try await primary.takeDown()
            let during = store.readsServed.replica
            #expect(try await names(store, presenting: nil) == ["first", "second"])
            #expect(store.readsServed.replica == during + 1)
            await #expect(throws: RegistryError.self) { try await create(store, "third") }
            try await primary.bringUp()
        }
    }
}
