import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Synchronization
import Testing

/// Two stores on one database, as two registry instances hold them: the classic traps of several writers on
/// PostgreSQL (event ids visible out of order, racing version numbers, lost compare-and-swap, a forked audit chain,
/// a watcher that never hears the other instance), each driven hard enough to show if it were there.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct SeveralInstancesTests {
    typealias Fixture = MetadataStoreConformance

    /// Runs `body` with two running stores on one fresh database.
    func withTwoInstances(
        _ body: @Sendable (PostgresMetadataStore, PostgresMetadataStore) async throws -> Void
    ) async throws {
        let url = try await PostgresCluster.shared().makeDatabase()
        try await PostgresMetadataStore.with(try .testing(url: url, poolSize: 12)) { a in
            try await PostgresMetadataStore.with(try .testing(url: url, poolSize: 12)) { b in
                try await body(a, b)
            }
        }
    }

    @Test func aConsumerFollowingEventsSeesEveryEventOnceWhileWritersRaceOnBothInstances() async throws {
        try await withTwoInstances { a, b in
            let writers = 8
            let versionsPerWriter = 25
            for writer in 0..<writers {
                try await Fixture.createModel(a, Fixture.model("model-\(writer)"))
            }
            let start = try await a.lastEventId()
            let done = Atomic<Bool>(false)
            // The consumer reads through both instances in turn, from wherever its cursor is, as a client behind a
            // load balancer does; an id that became visible after a larger one would be skipped for good.
            async let consumed: [Int64] = {
                var seen: [Int64] = []
                var cursor = start
                var turn = 0
                while true {
                    let finished = done.load(ordering: .acquiring)
                    let page = try await (turn % 2 == 0 ? a : b).events(after: cursor, limit: 50)
                    turn += 1
                    seen += page.map(\.id)
                    cursor = page.last?.id ?? cursor
                    if finished && page.isEmpty { return seen }
                }
            }()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        let store = writer % 2 == 0 ? a : b
                        for _ in 0..<versionsPerWriter {
                            try await Fixture.createVersion(store, "model-\(writer)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            done.store(true, ordering: .releasing)
            let seen = try await consumed
            let all = try await Fixture.allEvents(b, after: start).map(\.id)
            #expect(all.count == writers * versionsPerWriter)
            #expect(seen == all, "the consumer missed or repeated events: \(Set(all).subtracting(seen).sorted())")
        }
    }

    @Test func fiftyVersionCreationsRacingAcrossTwoInstancesAreNumberedOneToFifty() async throws {
        try await withTwoInstances { a, b in
            try await Fixture.createModel(a, Fixture.model("racer"))
            let numbers = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<50 {
                    group.addTask { try await Fixture.createVersion(index % 2 == 0 ? a : b, "racer").version }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(numbers.sorted() == Array(1...50))
            let stored = try await b.versions(VersionQuery(model: "racer", limit: 100)).items.map(\.version)
            #expect(stored == Array((1...50).reversed()))
        }
    }

    @Test func sixteenPromotionsWithOneIfMatchThroughTwoInstancesHaveOneWinner() async throws {
        try await withTwoInstances { a, b in
            try await Fixture.createModel(a, Fixture.model("fraud"))
            try await Fixture.approvedVersion(a, "fraud")
            try await Fixture.approvedVersion(b, "fraud")
            let first = try await Fixture.promote(a, "fraud", "production", to: 1)
            let outcomes = try await withThrowingTaskGroup(of: RegistryError.Code?.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        do {
                            try await Fixture.promote(
                                index % 2 == 0 ? a : b, "fraud", "production", to: 2, .revision(first.revision),
                                by: "deployer-\(index)")
                            return nil
                        } catch let error as RegistryError {
                            return error.code
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == nil }.count == 1)
            #expect(outcomes.filter { $0 == .revisionMismatch }.count == 15)
            let history = try await b.history(model: "fraud", stage: "production", after: nil, limit: 100).items
            #expect(history.map(\.toVersion) == [1, 2])
            let stage = try #require(try await a.stage(model: "fraud", name: "production"))
            #expect(stage.version == 2 && stage.revision == first.revision + 1)
        }
    }

    @Test func appendsFromBothInstancesFormOneChain() async throws {
        try await withTwoInstances { a, b in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        let store = index % 2 == 0 ? a : b
                        if index % 4 < 2 {
                            try await Fixture.createModel(store, Fixture.model("chain-\(index)"))
                        } else {
                            try await store.recordAudit(
                                AuditDraft(action: "access.denied", target: "models/chain-\(index)", model: nil),
                                context: Fixture.context("mallory-\(index)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let entries = try await Fixture.allAudit(a)
            #expect(entries.map(\.sequence) == Array(1...40))
            for (previous, entry) in zip(entries, entries.dropFirst()) {
                #expect(entry.previousHash == previous.hash, "a fork at \(entry.sequence)")
            }
            let verification = try await b.verifyAudit()
            #expect(verification.ok && verification.entries == 40, "\(verification)")
        }
    }

    @Test func aWaiterOnOneInstanceWakesWhenTheOtherCommits() async throws {
        try await withTwoInstances { a, b in
            let before = try await b.lastEventId()
            let started = ContinuousClock.now
            async let woke: Void = b.waitForEvents(after: before, timeout: .seconds(60))
            // Give the waiter time to park before the write (it returns at once if the write came first, which
            // would prove nothing).
            try await Task.sleep(for: .milliseconds(300))
            try await Fixture.createModel(a, Fixture.model("heard"))
            try await woke
            let waited = ContinuousClock.now - started
            #expect(waited < .seconds(30), "instance B heard instance A's commit only after \(waited)")
            #expect(try await b.lastEventId() > before)
        }
    }
}
