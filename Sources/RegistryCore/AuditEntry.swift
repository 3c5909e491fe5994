import Crypto
import Foundation

/// One immutable line of the audit log, chained to the line before it by its hash.
public struct AuditEntry: Sendable, Equatable, Codable {
    /// Position in the log, from 1, without gaps.
    public var sequence: Int64
    public var time: Date
    public var actor: String
    public var action: String
    public var target: String
    public var model: String?
    /// Canonical JSON of the resource before the change (`null` when it did not exist).
    public var before: String?
    /// Canonical JSON of the resource after the change (`null` when it was removed or nothing changed).
    public var after: String?
    public var requestId: String
    public var previousHash: String
    public var hash: String

    public init(
        sequence: Int64, time: Date, actor: String, action: String, target: String, model: String?, before: String?,
        after: String?, requestId: String, previousHash: String, hash: String
    ) {
        self.sequence = sequence
        self.time = time
        self.actor = actor
        self.action = action
        self.target = target
        self.model = model
        self.before = before
        self.after = after
        self.requestId = requestId
        self.previousHash = previousHash
        self.hash = hash
    }

    enum CodingKeys: String, CodingKey {
        case sequence, time, actor, action, target, model, before, after, requestId, previousHash, hash
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(time, forKey: .time)
        try container.encode(actor, forKey: .actor)
        try container.encode(action, forKey: .action)
        try container.encode(target, forKey: .target)
        try container.encode(model, forKey: .model)
        // Before and after are served as JSON values, not as strings holding JSON.
        let decode = { (text: String?) -> JSONValue in
            guard let text else { return .null }
            return (try? JSONCoding.sharedDecoder.decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text)
        }
        try container.encode(decode(before), forKey: .before)
        try container.encode(decode(after), forKey: .after)
        try container.encode(requestId, forKey: .requestId)
        try container.encode(previousHash, forKey: .previousHash)
        try container.encode(hash, forKey: .hash)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sequence = try container.decode(Int64.self, forKey: .sequence)
        time = try container.decode(Date.self, forKey: .time)
        actor = try container.decode(String.self, forKey: .actor)
        action = try container.decode(String.self, forKey: .action)
        target = try container.decode(String.self, forKey: .target)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        let encode = { (value: JSONValue?) -> String? in
            guard let value, value != .null else { return nil }
            return String(decoding: try JSONCoding.encode(value), as: UTF8.self)
        }
        before = try encode(try container.decodeIfPresent(JSONValue.self, forKey: .before))
        after = try encode(try container.decodeIfPresent(JSONValue.self, forKey: .after))
        requestId = try container.decode(String.self, forKey: .requestId)
        previousHash = try container.decode(String.self, forKey: .previousHash)
        hash = try container.decode(String.self, forKey: .hash)
    }
}

/// What a mutation asks the audit log to record; the store assigns the sequence and the hashes.
public struct AuditDraft: Sendable, Equatable {
    public var action: String
    public var target: String
    public var model: String?
    public var before: String?
    public var after: String?

    public init(action: String, target: String, model: String?, before: String? = nil, after: String? = nil) {
        self.action = action
        self.target = target
        self.model = model
        self.before = before
        self.after = after
    }

    /// A draft whose before and after are canonical JSON snapshots of `before` and `after`.
    public init(
        action: String, target: String, model: String?, before: (some Encodable)?, after: (some Encodable)?
    ) throws {
        self.init(
            action: action, target: target, model: model,
            before: try before.map { String(decoding: try JSONCoding.encode($0), as: UTF8.self) },
            after: try after.map { String(decoding: try JSONCoding.encode($0), as: UTF8.self) })
    }
}

/// The hash chain over the audit log.
public enum AuditChain {
    /// The `previousHash` of the first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// Seals `draft` as entry `sequence` after the entry whose hash is `previousHash`.
    public static func seal(
        _ draft: AuditDraft, sequence: Int64, previousHash: String, context: MutationContext
    ) -> AuditEntry {
        var entry = AuditEntry(
            sequence: sequence, time: context.time, actor: context.actor, action: draft.action, target: draft.target,
            model: draft.model, before: draft.before, after: draft.after, requestId: context.requestId,
            previousHash: previousHash, hash: "")
        entry.hash = hash(of: entry)
        return entry
    }

    /// The hash an entry must carry: SHA-256 over its fields, each length-prefixed, and the previous hash.
    public static func hash(of entry: AuditEntry) -> String {
        var hasher = SHA256()
        func field(_ text: String?) {
            guard let text else {
                hasher.update(data: Array("-1:".utf8))
                return
            }
            let bytes = Array(text.utf8)
            hasher.update(data: Array("\(bytes.count):".utf8))
            hasher.update(data: bytes)
        }
        field(String(entry.sequence))
        field(String(Timestamp.milliseconds(entry.time)))
        field(entry.actor)
        field(entry.action)
        field(entry.target)
        field(entry.model)
        field(entry.before)
        field(entry.after)
        field(entry.requestId)
        field(entry.previousHash)
        return Hex.encode(hasher.finalize())
    }

    /// The result of checking the chain end to end.
    public struct Verification: Sendable, Equatable, Codable {
        public var ok: Bool
        public var entries: Int64
        public var headHash: String
        /// The first entry that was altered, inserted or removed, when `ok` is false.
        public var firstBadSequence: Int64?
        public var problem: String?

        public init(ok: Bool, entries: Int64, headHash: String, firstBadSequence: Int64? = nil, problem: String? = nil)
        {
            self.ok = ok
            self.entries = entries
            self.headHash = headHash
            self.firstBadSequence = firstBadSequence
            self.problem = problem
        }
    }

    /// Incremental verifier: feed entries in sequence order, then read `result`.
    public struct Verifier: Sendable {
        private var expectedSequence: Int64 = 1
        private var previousHash = AuditChain.genesis
        private var failure: (Int64, String)?

        public init() {}

        /// Checks the next entry; after the first failure further entries are ignored.
        public mutating func check(_ entry: AuditEntry) {
            guard failure == nil else { return }
            if entry.sequence != expectedSequence {
                let missing = expectedSequence
                failure = (missing, "entry \(missing) is missing (found \(entry.sequence) next)")
                return
            }
            if entry.previousHash != previousHash {
                failure = (entry.sequence, "entry \(entry.sequence) does not link to entry \(entry.sequence - 1)")
                return
            }
            if !TokenSecret.constantTimeEquals(AuditChain.hash(of: entry), entry.hash) {
                failure = (entry.sequence, "entry \(entry.sequence) was altered: its content does not match its hash")
                return
            }
            previousHash = entry.hash
            expectedSequence += 1
        }

        /// The verdict; `head` is the head the store recorded independently, to catch a truncated tail.
        public func result(recordedHead: (sequence: Int64, hash: String)?) -> Verification {
            if let (sequence, problem) = failure {
                return Verification(
                    ok: false, entries: expectedSequence - 1, headHash: previousHash, firstBadSequence: sequence,
                    problem: problem)
            }
            let count = expectedSequence - 1
            if let head = recordedHead, head.sequence != count || head.hash != previousHash {
                let first = min(head.sequence, count + 1)
                return Verification(
                    ok: false, entries: count, headHash: previousHash, firstBadSequence: first,
                    problem: "the log ends at entry \(count) but the recorded head is entry \(head.sequence)")
            }
            return Verification(ok: true, entries: count, headHash: previousHash)
        }
    }
}
