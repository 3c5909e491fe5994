import RegistryCore

/// A page of the event log and the cursor that continues after it.
public struct EventPage: Sendable, Equatable, Codable {
    public var items: [Event]
    public var nextCursor: String

    public init(items: [Event], nextCursor: String) {
        self.items = items
        self.nextCursor = nextCursor
    }
}
