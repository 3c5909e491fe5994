import RegistryCore

extension RegistryClient {
    /// The server's Prometheus text exposition (`GET /metrics`).
    public func metricsText() async throws -> String {
        var call = Call(.GET, "/metrics")
        call.headers.append(("Accept", "text/plain"))
        let buffer = try await collect(try await send(call))
        return String(buffer: buffer)
    }
}
