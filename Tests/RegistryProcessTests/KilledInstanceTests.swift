import Foundation
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

/// An instance on PostgreSQL killed with signal 9 in the middle of a stream of writes loses none it acknowledged:
/// every 201 is found through another instance, and the audit chain still verifies.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct KilledInstanceTests {
    @Test func noAcknowledgedWriteIsLostWhenAnInstanceIsKilledMidStream() async throws {
        let database = try await PostgresCluster.shared().makeDatabase()
        let directory = NSTemporaryDirectory() + "registry-killed-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = "mr_killed-admin-\(UUID().uuidString)"
        let victim = try await RegistryProcess(
            dataDirectory: directory + "/a", adminToken: admin, arguments: ["--database", database])
        let acknowledged = Acknowledged()
        let writers = 4
        // Each writer creates models until its connection fails (the kill); only 201s count as acknowledged.
        let stream = Task {
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in 0..<10_000 {
                            let name = "w\(writer)-\(index)"
                            guard
                                let response = try? await victim.send(
                                    .POST, "/v1/models", token: admin, json: ["name": .string(name)],
                                    checkContract: false),
                                response.status == 201
                            else { return }
                            acknowledged.names.withLock { $0.append(name) }
                        }
                    }
                }
            }
        }
        try await waitUntil("writes are flowing", timeout: .seconds(60)) {
            acknowledged.names.withLock { $0.count } >= 40
        }
        await victim.kill()
        await stream.value
        let written = acknowledged.names.withLock { $0 }

        try await RegistryProcess.with(adminToken: admin, arguments: ["--database", database]) { survivor, _ in
            var found: Set<String> = []
            var pageToken: String?
            repeat {
                let query = "/v1/models?limit=1000" + (pageToken.map { "&pageToken=\($0)" } ?? "")
                let page = try await survivor.send(.GET, query, token: admin)
                guard case .array(let items)? = page.json["items"] else { break }
                for item in items { if case .string(let name)? = item["name"] { found.insert(name) } }
                if case .string(let next)? = page.json["nextPageToken"] { pageToken = next } else { pageToken = nil }
            } while pageToken != nil
            let lost = Set(written).subtracting(found)
            #expect(lost.isEmpty, "acknowledged but lost after kill -9: \(lost.sorted().prefix(20))")
            let verified = try await survivor.send(.GET, "/v1/audit/verify", token: admin)
            #expect(verified.status == 200, "\(verified.text)")
            #expect(verified.json["ok"] == .bool(true), "\(verified.text)")
        }
    }
}

/// The names of the models whose creation was answered 201.
final class Acknowledged: Sendable {
    let names = Mutex<[String]>([])
}
