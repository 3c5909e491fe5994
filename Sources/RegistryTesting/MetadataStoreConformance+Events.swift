import Foundation
import RegistryCore
import Synchronization
import Testing

extension MetadataStoreConformance {
    static let eventCases: [ConformanceCase] = [
        ConformanceCase("eachMutationPublishesItsEventsInOrder") { store in
            let ctx = context("alice")
            _ = try await store.createModel(model("fraud"), context: ctx)
            try await createVersion(store, "fraud")
            try await decide(store, "fraud", 1)
            try await promote(store, "fraud", "production", to: 1)
            let events = try await allEvents(store)
            #expect(
                events.map(\.type) == [
                    EventType.modelCreated, EventType.versionCreated, EventType.versionApprovalRecorded,
                    EventType.versionApproved, EventType.stagePromoted,
                ])
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.id < $1.id })
            #expect(events.allSatisfy { $0.model == "fraud" })
            #expect(events.first?.time == ctx.time)
            #expect(events.first?.data["name"] == "fraud")
            #expect(events[1].data["version"] == .number(1))
            #expect(events[1].data["status"] == "pending")
        },
        ConformanceCase("eventsAfterACursorAreBoundedAndOrdered") { store in
            for name in ["a", "b", "c", "d", "e"] { try await createModel(store, model(name)) }
            let all = try await store.events(after: 0, limit: 100)
            #expect(all.count == 5)
            let ids = all.map(\.id)
            let page = try await store.events(after: ids[1], limit: 2)
            #expect(page.map(\.id) == [ids[2], ids[3]])
            #expect(page.map(\.model) == ["c", "d"])
            #expect(try await store.events(after: ids[4], limit: 10).isEmpty)
            #expect(try await store.events(after: 0, limit: 1).map(\.id) == [ids[0]])
        },
        ConformanceCase("waitingReturnsOnceAnEventCommits") { store in
            try await createModel(store, model("a"))
            let cursor = try #require(try await store.events(after: 0, limit: 10).last?.id)
            // Correctness, not speed: the bound is seconds, far beyond any scheduling delay on a loaded machine,
            // and the timeout is three times the bound, so a missed wake-up (a wait that lasts until its timeout)
            // cannot pass for a late one.
            let bound = Duration.seconds(90)
            let timeout = Duration.seconds(300)
            let clock = ContinuousClock()
            let start = clock.now
            // An event already past the cursor answers at once.
            try await store.waitForEvents(after: cursor - 1, timeout: timeout)
            #expect(clock.now - start < bound, "an event already past the cursor does not wait for the timeout")

            let returned = Mutex<ContinuousClock.Instant?>(nil)
            let (started, starting) = AsyncStream<Void>.makeStream()
            let waiter = Task {
                starting.yield()
                try await store.waitForEvents(after: cursor, timeout: timeout)
                returned.withLock { $0 = clock.now }
            }
            for await _ in started { break }
            // The protocol does not show when a wait has parked, so the wait is given a second to do so. Whether it
            // has or not, a correct store passes (an event committed before the wait parks answers it at once);
            // the second only makes sure a store whose commits do not wake parked waits is caught.
            try await Task.sleep(for: .seconds(1))
            #expect(returned.withLock { $0 } == nil, "the wait does not return before an event commits")
            let committing = clock.now
            try await createModel(store, model("b"))
            try await waiter.value
            let woken = try #require(returned.withLock { $0 })
            #expect(woken - committing < bound, "the wait returns once the event commits, not at its timeout")
            #expect(try await store.events(after: cursor, limit: 10).map(\.model) == ["b"])
        },
        ConformanceCase("waitingWithoutNewEventsReturnsAfterTheTimeout") { store in
            try await createModel(store, model("a"))
            let cursor = try #require(try await store.events(after: 0, limit: 10).last?.id)
            let clock = ContinuousClock()
            let start = clock.now
            try await store.waitForEvents(after: cursor, timeout: .milliseconds(200))
            #expect(clock.now - start >= .milliseconds(150), "without an event the wait lasts until its timeout")
            #expect(try await store.events(after: cursor, limit: 10).isEmpty)
        },
    ]

    static let concurrencyCases: [ConformanceCase] = [
        ConformanceCase("concurrentVersionCreationNumbersDenselyFromOne") { store in
            try await createModel(store, model("fraud"))
            let numbers = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<50 {
                    group.addTask { try await createVersion(store, "fraud", by: "writer-\(index)").version }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(numbers.sorted() == Array(1...50))
            let listed = try await store.versions(VersionQuery(model: "fraud", limit: 100))
            #expect(listed.items.map(\.version) == Array((1...50).reversed()))
            #expect(try await allEvents(store).filter { $0.type == EventType.versionCreated }.count == 50)
            let verification = try await store.verifyAudit()
            #expect(verification.ok)
            #expect(verification.entries == 51)
        },
        ConformanceCase("concurrentPromotionsAtOneRevisionLetExactlyOneWin") { store in
            try await createModel(store, model("fraud"))
            try await approvedVersion(store, "fraud")
            try await approvedVersion(store, "fraud")
            try await promote(store, "fraud", "production", to: 1, .absent)
            let outcomes = try await withThrowingTaskGroup(of: RegistryError.Code?.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        do {
                            _ = try await store.promote(
                                model: "fraud", stage: "production", precondition: .revision(1), version: 2,
                                reason: "race \(index)", context: context("deployer-\(index)"))
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
            let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 100)
            #expect(history.items.count == 2)
            #expect(history.items.last?.toVersion == 2)
            #expect(try await store.stage(model: "fraud", name: "production")?.revision == 2)
            #expect(try await store.verifyAudit().ok)
        },
    ]
}
