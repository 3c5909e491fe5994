import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// `registry serve` on PostgreSQL while the database crashes and comes back: writes answer 503
/// `STORE_UNAVAILABLE` with `Retry-After` at once instead of hanging, reads already cached keep being served, nothing
/// is half-written, the instance recovers by itself within seconds of the database's return (the store-level test
/// bounds that tighter), and a SIGTERM during the outage still stops it.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct DatabaseOutageTests {
    @Test func writesFailFastReadsAreServedAndTheInstanceRecoversByItself() async throws {
        let cluster = try await PostgresCluster.start()
        defer { cluster.stop() }
        try await cluster.execute("CREATE DATABASE registry")
        try await RegistryProcess.with(arguments: ["--database", cluster.url(database: "registry")]) { server, _ in
            let admin = server.adminToken
            #expect(try await server.send(.POST, "/v1/models", token: admin, json: ["name": "steady"]).status == 201)
            #expect(try await server.send(.GET, "/v1/models/steady", token: admin).status == 200)

            try await cluster.takeDown()
            let read = try await server.send(.GET, "/v1/models/steady", token: admin)
            #expect(read.status == 200, "a cached read failed during the outage: \(read.status) \(read.text)")
            for attempt in 0..<3 {
                let started = ContinuousClock.now
                let write = try await server.send(
                    .POST, "/v1/models", token: admin, json: ["name": .string("during-\(attempt)")])
                let took = ContinuousClock.now - started
                #expect(write.status == 503 && write.errorCode == "STORE_UNAVAILABLE", "\(write.status) \(write.text)")
                #expect(write.header("Retry-After") != nil)
                #expect(took < .seconds(6), "a write took \(took) to fail with the database down")
            }

            try await cluster.bringUp()
            let back = ContinuousClock.now
            var created = false
            while !created, ContinuousClock.now - back < .seconds(60) {
                let write = try await server.send(.POST, "/v1/models", token: admin, json: ["name": "after"])
                created = write.status == 201
                if !created {
                    #expect(write.status == 503, "\(write.status) \(write.text)")
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let recovery = ContinuousClock.now - back
            #expect(created && recovery < .seconds(10), "writes took \(recovery) to succeed again")
            for attempt in 0..<3 {
                #expect(try await server.send(.GET, "/v1/models/during-\(attempt)", token: admin).status == 404)
            }

            // A stop asked for while the database is away still ends the process.
            try await cluster.takeDown()
            async let pending = server.send(.POST, "/v1/models", token: admin, json: ["name": "at-shutdown"])
            try await Task.sleep(for: .milliseconds(300))
            let stopping = ContinuousClock.now
            server.signalTerminate()
            let status = await server.waitForExit()
            let stopped = ContinuousClock.now - stopping
            #expect(stopped < .seconds(15), "SIGTERM took \(stopped) to stop the server with the database down")
            #expect(status == 0)
            _ = try? await pending
        }
    }
}
