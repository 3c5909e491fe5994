import Foundation
import ModelServing
import Synchronization
import Testing

/// A stand-in model that knows whether its loading finished.
final class ToyModel: Sendable {
    let version: Int
    let loaded: Bool

    init(version: Int) {
        self.version = version
        // Loading "finishes" at the end of init; a router must never hand out an object before that.
        self.loaded = true
    }
}

/// Flags and counters the reader tasks of a test share.
final class Shared: Sendable {
    let stop = Atomic<Bool>(false)
    let failures = Atomic<Int>(0)
    let routed = Atomic<Int>(0)
}

@Suite(.timeLimit(.minutes(10))) struct ModelRouterTests {
    @Test func requestsFollowTheSplitOfTheCurrentState() {
        let stable = ServingSlot(version: 1, model: ToyModel(version: 1))
        let router = ModelRouter(ServingState(stable: stable))
        #expect((0..<1000).allSatisfy { router.route("k\($0)").version == 1 })

        let candidate = ServingSlot(version: 2, model: ToyModel(version: 2))
        let split = TrafficSplit(percent: 25, salt: TrafficSplit.salt(forRollout: "r"))
        router.publish(ServingState(stable: stable, candidate: candidate, split: split, rolloutId: "r"))
        for index in 0..<1000 {
            let key = "k\(index)"
            #expect(router.route(key).version == (split.routesToCandidate(key) ? 2 : 1))
        }
        #expect(router.state.rolloutId == "r")
    }

    @Test func aFlipUnderLoadNeverShowsAMixedOrUnloadedState() async throws {
        let v1 = ServingSlot(version: 1, model: ToyModel(version: 1))
        let v2 = ServingSlot(version: 2, model: ToyModel(version: 2))
        let rollout = ServingState(
            stable: v1, candidate: v2, split: TrafficSplit(percent: 50, salt: 99), rolloutId: "r")
        let promoted = ServingState(stable: v2)
        let router = ModelRouter(ServingState(stable: v1), reclaimDelay: .milliseconds(1))
        let shared = Shared()

        // Readers are plain threads, as in a server's request path; they never suspend.
        let readers = DispatchGroup()
        for worker in 0..<4 {
            readers.enter()
            Thread {
                var count = 0
                var key = UInt64(worker) << 40
                while !shared.stop.load(ordering: .relaxed) {
                    key &+= 1
                    let slot = router.route(key)
                    // The slot, its model and its version must agree and the model must be fully loaded.
                    if !slot.model.loaded || slot.model.version != slot.version || ![1, 2].contains(slot.version) {
                        shared.failures.wrappingAdd(1, ordering: .relaxed)
                    }
                    slot.record()
                    count += 1
                }
                shared.routed.wrappingAdd(count, ordering: .relaxed)
                readers.leave()
            }.start()
        }
        // Flip back and forth through a rollout, a promotion and a rollback, thousands of times.
        for round in 0..<3_000 {
            router.publish(rollout)
            router.publish(round % 2 == 0 ? promoted : ServingState(stable: v1))
            if round % 100 == 0 { try await Task.sleep(for: .milliseconds(1)) }
        }
        shared.stop.store(true, ordering: .relaxed)
        await withCheckedContinuation { done in readers.notify(queue: .global()) { done.resume() } }
        #expect(shared.failures.load(ordering: .relaxed) == 0)
        let total = shared.routed.load(ordering: .relaxed)
        #expect(total > 0)
        #expect(v1.counts.requests + v2.counts.requests == total, "every request was counted on exactly one slot")
    }

    @Test func aReplacedStateIsReleasedOnlyAfterTheReclaimDelay() async throws {
        let stable = ServingSlot(version: 1, model: ToyModel(version: 1))
        weak var old: ServingState<ToyModel>?
        let router: ModelRouter<ToyModel>
        do {
            let first = ServingState(stable: stable)
            old = first
            router = ModelRouter(first, reclaimDelay: .milliseconds(200))
        }
        router.publish(ServingState(stable: ServingSlot(version: 2, model: ToyModel(version: 2))))
        router.publish(ServingState(stable: stable))
        #expect(old != nil, "still held: a reader may have loaded it an instant ago")
        try await Task.sleep(for: .milliseconds(300))
        router.publish(ServingState(stable: stable))
        #expect(old == nil, "released once the delay passed")
    }

    @Test func countsAreKeptPerSlot() {
        let slot = ServingSlot(version: 3, model: ToyModel(version: 3))
        for index in 0..<10 { slot.record(failed: index % 5 == 0) }
        #expect(slot.counts.requests == 10)
        #expect(slot.counts.errors == 2)
    }
}
