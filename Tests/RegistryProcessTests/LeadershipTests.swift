import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// Two `registry serve` processes on one PostgreSQL database: exactly one runs the rollout supervisor, and when it
/// is killed with signal 9 the other takes the role within seconds.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct LeadershipTests {
    @Test func oneInstanceRunsTheSupervisorAndAnotherTakesOverWhenItIsKilled() async throws {
        let database = try await PostgresCluster.shared().makeDatabase()
        let directory = NSTemporaryDirectory() + "registry-leadership-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = "mr_leadership-admin-\(UUID().uuidString)"
        async let startA = RegistryProcess(
            dataDirectory: directory + "/a", adminToken: admin, arguments: ["--database", database])
        async let startB = RegistryProcess(
            dataDirectory: directory + "/b", adminToken: admin, arguments: ["--database", database])
        let (a, b) = try await (startA, startB)
        try await b.serving {
            try await a.serving {
                func leading(_ instance: RegistryProcess) async throws -> Bool {
                    try await instance.metric("registry_rollout_supervisor_leading") == 1
                }
                try await waitUntil("one instance leads", timeout: .seconds(30)) {
                    try await leading(a) != leading(b)
                }
                let (leader, follower) = try await leading(a) ? (a, b) : (b, a)
                // The follower stands by: it checks nothing while the leader checks every second.
                let followerChecks = try await follower.metric("registry_rollout_checks_total") ?? 0
                let leaderChecks = try await leader.metric("registry_rollout_checks_total") ?? 0
                try await leader.waitForMetric("registry_rollout_checks_total") { $0 >= leaderChecks + 2 }
                #expect(try await follower.metric("registry_rollout_checks_total") ?? 0 == followerChecks)
                #expect(try await !leading(follower))

                await leader.kill()
                let killed = ContinuousClock.now
                try await follower.waitForMetric("registry_rollout_supervisor_leading", timeout: .seconds(30)) {
                    $0 == 1
                }
                let handover = ContinuousClock.now - killed
                #expect(handover < .seconds(10), "the role took \(handover) to move")
                try await follower.waitForMetric("registry_rollout_checks_total") { $0 >= followerChecks + 2 }
            }
        }
    }
}
