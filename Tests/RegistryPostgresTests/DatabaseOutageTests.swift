import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Testing

/// The database stopping under a running store, as a primary crash or restart does: calls fail fast with
/// `STORE_UNAVAILABLE` (never hang), and the store recovers by itself once the database is back.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct DatabaseOutageTests {
    typealias Fixture = MetadataStoreConformance

    @Test func callsFailFastWhileTheDatabaseIsDownAndSucceedSoonAfterItReturns() async throws {
        let cluster = try await PostgresCluster.start()
        defer { cluster.stop() }
        try await cluster.execute("CREATE DATABASE registry")
        try await PostgresMetadataStore.with(try .init(url: cluster.url(database: "registry"), poolSize: 4)) {
            store in
            try await Fixture.createModel(store, Fixture.model("outage"))
            try await cluster.takeDown()
            // Long enough for a connection pool's back-off to grow past 10 s (it would take that long to recover).
            let outageEnd = ContinuousClock.now + .seconds(30)
            var attempts = 0
            while ContinuousClock.now < outageEnd {
                let started = ContinuousClock.now
                do {
                    _ = try await Fixture.createVersion(store, "outage")
                    Issue.record("a write succeeded with the database down")
                } catch let error as RegistryError {
                    #expect(error.code == .storeUnavailable, "\(error)")
                }
                let took = ContinuousClock.now - started
                #expect(took < .seconds(5), "a call hung for \(took) with the database down")
                attempts += 1
                try await Task.sleep(for: .milliseconds(200))
            }
            try await cluster.bringUp()
            let back = ContinuousClock.now
            var recovered: Duration?
            while ContinuousClock.now - back < .seconds(90) {
                do {
                    _ = try await Fixture.createVersion(store, "outage")
                    recovered = ContinuousClock.now - back
                    break
                } catch let error as RegistryError where error.code == .storeUnavailable {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let after = try #require(recovered, "the store did not recover within 90 s of the database's return")
            #expect(after < .seconds(3), "the store took \(after) to recover after the database came back")
        }
    }
}
