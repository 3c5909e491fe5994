import RegistryCore

/// `GET /v1/events`: a page of the event log and the cursor that continues after it.
public struct EventPage: Sendable, Equatable, Codable {
    public var items: [Event]
    /// The id of the last event looked at (also of events the caller may not see), as a string cursor.
    public var nextCursor: String

    public init(items: [Event], nextCursor: String) {
        self.items = items
        self.nextCursor = nextCursor
    }

    public static let schema = Schema.record([
        "items": ["type": "array", "items": Schema.ref("Event")], "nextCursor": Schema.string,
    ])
}
