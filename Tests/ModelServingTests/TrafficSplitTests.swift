import ModelServing
import Testing

@Suite(.timeLimit(.minutes(10))) struct TrafficSplitTests {
    static let keys = (0..<100_000).map { "user-\($0)" }

    @Test(arguments: [5.0, 25.0, 50.0])
    func theShareOfKeysMatchesTheWeightWithinOnePoint(_ percent: Double) {
        for salt in [UInt64(0), TrafficSplit.salt(forRollout: "r-1"), TrafficSplit.salt(forRollout: "r-2")] {
            let split = TrafficSplit(percent: percent, salt: salt)
            let stringShare = Double(Self.keys.filter { split.routesToCandidate($0) }.count) / Double(Self.keys.count)
            #expect(abs(stringShare * 100 - percent) <= 1, "string keys: \(stringShare * 100) % at \(percent) %")
            let integerShare =
                Double((0..<UInt64(100_000)).filter { split.routesToCandidate($0) }.count) / 100_000
            #expect(abs(integerShare * 100 - percent) <= 1, "integer keys: \(integerShare * 100) % at \(percent) %")
        }
    }

    @Test func theEdgesSendEverythingOneWay() {
        let none = TrafficSplit(percent: 0, salt: 7)
        let all = TrafficSplit(percent: 100, salt: 7)
        #expect(Self.keys.allSatisfy { !none.routesToCandidate($0) })
        #expect(Self.keys.allSatisfy { all.routesToCandidate($0) })
        #expect(TrafficSplit(percent: 250, salt: 0).weightBasisPoints == 10_000)
        #expect(TrafficSplit(percent: -3, salt: 0).weightBasisPoints == 0)
    }

    @Test func aKeyAlwaysGetsTheSameAnswer() {
        let salt = TrafficSplit.salt(forRollout: "rollout-42")
        let first = TrafficSplit(percent: 25, salt: salt)
        let again = TrafficSplit(percent: 25, salt: TrafficSplit.salt(forRollout: "rollout-42"))
        for key in Self.keys.prefix(10_000) {
            #expect(first.routesToCandidate(key) == again.routesToCandidate(key))
        }
        // Pinned values, computed independently (FNV-1a 64 then SplitMix64, in Python): the hash must never change
        // between releases, or a fleet running two releases side by side would disagree about the canary cohort.
        #expect(TrafficSplit.bucket("user-42", salt: 0) == 7_651)
        #expect(TrafficSplit.bucket(42, salt: 0) == 5_413)
        #expect(TrafficSplit.salt(forRollout: "rollout-42") == 3_667_986_947_642_446_652)
    }

    @Test func raisingTheWeightOnlyMovesKeysToTheCandidate() {
        let salt = TrafficSplit.salt(forRollout: "monotonic")
        let steps = [5.0, 25, 50, 100].map { TrafficSplit(percent: $0, salt: salt) }
        for key in Self.keys {
            let answers = steps.map { $0.routesToCandidate(key) }
            // Once a key reaches the candidate it stays there at every higher weight.
            if let first = answers.firstIndex(of: true) {
                #expect(answers[first...].allSatisfy { $0 }, "\(key): \(answers)")
            }
        }
    }

    @Test func eachRolloutPicksADifferentCohort() {
        let first = TrafficSplit(percent: 5, salt: TrafficSplit.salt(forRollout: "rollout-a"))
        let second = TrafficSplit(percent: 5, salt: TrafficSplit.salt(forRollout: "rollout-b"))
        let both = Self.keys.filter { first.routesToCandidate($0) && second.routesToCandidate($0) }.count
        // Independent 5 % cohorts overlap in about 0.25 % of keys, not 5 %.
        #expect(Double(both) / Double(Self.keys.count) < 0.006)
    }
}
