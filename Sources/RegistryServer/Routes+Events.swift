import Hummingbird
import RegistryAPI
import RegistryCore
import ServiceLifecycle

extension RegistryRoutes {
    /// `GET /v1/events?after=&wait=&limit=`: the durable event log, with long-polling.
    func registerEvents(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/v1/events") { request, context in
            let principal = try await authenticate(request)
            var cursor: Int64 = 0
            if let text = request.query("after") {
                guard let value = Int64(text), value >= 0 else {
                    throw RegistryError.invalidArgument(
                        "after must be a cursor returned as nextCursor (a non-negative integer).", field: "after")
                }
                cursor = value
            }
            let wait = min(try request.intQuery("wait") ?? 0, configuration.maxEventWaitSeconds)
            let limit = try request.pageLimit()
            let readable = principal.admin ? nil : try await authenticator.access(of: principal).readable
            let deadline = ContinuousClock.now.advanced(by: .seconds(wait))
            let poll = { [cursor] () async throws -> Response in
                var cursor = cursor
                while true {
                    let events = try await metadata.events(after: cursor, limit: limit)
                    if let last = events.last { cursor = last.id }
                    let visible =
                        readable.map { readable in events.filter { $0.model.map(readable.contains) ?? false } }
                        ?? events
                    // A full page of invisible events: look further at once, unless the caller did not want to wait.
                    let done = !visible.isEmpty || (events.count == limit && wait == 0)
                    let remaining = deadline - ContinuousClock.now
                    if done || (events.count < limit && (remaining <= .zero || Task.isShuttingDownGracefully)) {
                        return try .json(EventPage(items: visible, nextCursor: String(cursor)))
                    }
                    if events.count < limit { try await waitForEvents(after: cursor, timeout: remaining) }
                }
            }
            // Only a request that may wait holds one of the caller's long-poll slots (429 beyond them).
            return wait > 0 ? try await longPolls.holding(principal.subject, poll) : try await poll()
        }
    }

    /// What a long-poll waits on: returns as soon as an event past `after` commits, when `timeout` runs out, or
    /// when the server begins a graceful shutdown (so open long-polls never hold it up); throws only when the
    /// request itself is cancelled.
    func waitForEvents(after: Int64, timeout: Duration) async throws {
        let metadata = self.metadata
        try? await cancelWhenGracefulShutdown {
            try await metadata.waitForEvents(after: after, timeout: timeout)
        }
        try Task.checkCancellation()
    }
}
