import Foundation
import RegistryCore
import Testing

@Suite(.timeLimit(.minutes(10))) struct AuditChainTests {
    /// A chain of `count` sealed entries.
    func chain(_ count: Int) throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        for index in 1...count {
            let draft = try AuditDraft(
                action: "model.update", target: "models/m\(index)", model: "m\(index)", before: ["n": index - 1],
                after: ["n": index])
            let context = MutationContext(actor: "actor-\(index)", requestId: "req-\(index)")
            entries.append(
                AuditChain.seal(
                    draft, sequence: Int64(index), previousHash: entries.last?.hash ?? AuditChain.genesis,
                    context: context))
        }
        return entries
    }

    func verify(_ entries: [AuditEntry], head: (sequence: Int64, hash: String)?) -> AuditChain.Verification {
        var verifier = AuditChain.Verifier()
        for entry in entries { verifier.check(entry) }
        return verifier.result(recordedHead: head)
    }

    func head(_ entries: [AuditEntry]) -> (sequence: Int64, hash: String)? {
        entries.last.map { ($0.sequence, $0.hash) }
    }

    @Test func anIntactChainVerifies() throws {
        let entries = try chain(5)
        let result = verify(entries, head: head(entries))
        #expect(result == AuditChain.Verification(ok: true, entries: 5, headHash: entries[4].hash))
        #expect(entries[0].previousHash == AuditChain.genesis)
        #expect(entries[0].hash.count == 64)
    }

    @Test func theHashCoversEveryField() throws {
        let entry = try chain(1)[0]
        let edits: [(inout AuditEntry) -> Void] = [
            { $0.sequence += 1 }, { $0.time = $0.time.addingTimeInterval(0.001) }, { $0.actor += "x" },
            { $0.action += "x" }, { $0.target += "x" }, { $0.model = nil }, { $0.before = nil }, { $0.after = "{}" },
            { $0.requestId += "x" }, { $0.previousHash = String(repeating: "1", count: 64) },
        ]
        for edit in edits {
            var altered = entry
            edit(&altered)
            #expect(AuditChain.hash(of: altered) != entry.hash)
        }
        // Length prefixes keep adjacent fields from trading characters.
        var shifted = entry
        shifted.actor = entry.actor + entry.action.prefix(1)
        shifted.action = String(entry.action.dropFirst())
        #expect(AuditChain.hash(of: shifted) != entry.hash)
    }

    @Test func anAlteredEntryIsReportedAtItsSequence() throws {
        var entries = try chain(5)
        entries[2].after = #"{"n":999}"#
        let result = verify(entries, head: head(entries))
        #expect(!result.ok)
        #expect(result.firstBadSequence == 3)
        #expect(result.entries == 2)
    }

    @Test func anAlteredEntryWithARecomputedHashBreaksTheNextLink() throws {
        var entries = try chain(5)
        entries[2].actor = "mallory"
        entries[2].hash = AuditChain.hash(of: entries[2])
        let result = verify(entries, head: head(entries))
        #expect(!result.ok)
        #expect(result.firstBadSequence == 4)
    }

    @Test func aRemovedEntryIsReportedAtTheMissingSequence() throws {
        var entries = try chain(5)
        entries.remove(at: 1)
        let result = verify(entries, head: head(entries))
        #expect(!result.ok)
        #expect(result.firstBadSequence == 2)
    }

    @Test func aTruncatedTailIsCaughtByTheRecordedHead() throws {
        let entries = try chain(5)
        let truncated = Array(entries.prefix(3))
        let result = verify(truncated, head: head(entries))
        #expect(!result.ok)
        #expect(result.firstBadSequence == 4)
        #expect(verify(truncated, head: head(truncated)).ok)
        #expect(!verify(entries, head: (5, String(repeating: "f", count: 64))).ok)
    }

    @Test func anEmptyLogVerifiesUnlessAHeadWasRecorded() throws {
        #expect(verify([], head: nil) == AuditChain.Verification(ok: true, entries: 0, headHash: AuditChain.genesis))
        let result = verify([], head: (2, String(repeating: "a", count: 64)))
        #expect(!result.ok)
        #expect(result.firstBadSequence == 1)
    }

    @Test func entriesRoundTripThroughJSONWithTheirHashIntact() throws {
        let entry = try chain(1)[0]
        let decoded = try JSONCoding.decode(AuditEntry.self, from: try JSONCoding.encode(entry))
        #expect(decoded == entry)
        #expect(AuditChain.hash(of: decoded) == entry.hash)
    }
}
