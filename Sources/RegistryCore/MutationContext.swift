import Foundation

/// Who is changing something, as part of which request, and when; recorded with every change.
public struct MutationContext: Sendable, Equatable {
    public var actor: String
    public var requestId: String
    public var time: Date
    /// The trust policy a caller checked before this change (a version's signature, say); the store refuses the
    /// change with `TRUST_POLICY_CHANGED`, inside its transaction, when the model's policy is no longer this one.
    public var checkedTrustPolicy: CheckedTrustPolicy?

    public init(actor: String, requestId: String, time: Date = Timestamp.now()) {
        self.actor = actor
        self.requestId = requestId
        self.time = time
    }

    /// This context, guarded by `model`'s `policy` (see `checkedTrustPolicy`).
    public func checking(_ policy: TrustPolicy, of model: String) -> MutationContext {
        var context = self
        context.checkedTrustPolicy = CheckedTrustPolicy(model: model, policy: policy)
        return context
    }
}

/// A model's trust policy as a caller saw it when it checked a signature.
public struct CheckedTrustPolicy: Sendable, Equatable {
    public var model: String
    public var policy: TrustPolicy

    public init(model: String, policy: TrustPolicy) {
        self.model = model
        self.policy = policy
    }

    /// Throws `TRUST_POLICY_CHANGED` unless `current` (the model's committed policy) is the one checked.
    public func verify(current: TrustPolicy?) throws {
        guard current != policy else { return }
        throw RegistryError(
            .trustPolicyChanged,
            "The trust policy of '\(model)' changed while this request checked a signature against it; nothing was "
                + "changed.", details: ["model": .string(model)])
    }
}

/// A page of a list, with the token that fetches the next page (nil on the last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextPageToken: String?

    public init(items: [Item], nextPageToken: String?) {
        self.items = items
        self.nextPageToken = nextPageToken
    }
}

extension Page: Equatable where Item: Equatable {}

extension Page {
    /// A store's page from rows fetched with `LIMIT limit + 1`: the first `limit` rows, and the token of the next
    /// page (the `key` of the last kept row) when a row beyond `limit` came back.
    public init(fetched items: [Item], limit: Int, key: (Item) -> String) {
        guard items.count > limit else {
            self.init(items: items, nextPageToken: nil)
            return
        }
        let kept = Array(items.prefix(limit))
        self.init(items: kept, nextPageToken: kept.last.map { PageToken.make(key($0)) })
    }
}

extension Page {
    enum CodingKeys: String, CodingKey { case items, nextPageToken }
}

extension Page: Encodable where Item: Encodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        // The contract spells the last page as an explicit null.
        try container.encode(nextPageToken, forKey: .nextPageToken)
    }
}

extension Page: Decodable where Item: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        items = try container.decode([Item].self, forKey: .items)
        nextPageToken = try container.decodeIfPresent(String.self, forKey: .nextPageToken)
    }
}

/// Opaque page tokens: the last key of a page, wrapped so clients do not build them by hand.
public enum PageToken {
    public static func make(_ key: String) -> String {
        Data(("k:" + key).utf8).base64EncodedString()
    }

    public static func parse(_ token: String?) throws -> String? {
        guard let token, !token.isEmpty else { return nil }
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("k:")
        else {
            throw RegistryError(.invalidPageToken, "The page token is not one this registry issued.")
        }
        return String(text.dropFirst(2))
    }

    public static func parseInt(_ token: String?) throws -> Int64? {
        guard let key = try parse(token) else { return nil }
        guard let value = Int64(key) else {
            throw RegistryError(.invalidPageToken, "The page token is not one this registry issued.")
        }
        return value
    }
}
