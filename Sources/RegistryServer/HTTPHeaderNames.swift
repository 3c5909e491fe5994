import Hummingbird

/// `HTTPField.Name`, reached through `HTTPFields` so that no extra module import is needed.
typealias HeaderName = HTTPFields.Element.Name

extension HeaderName {
    static let requestID = HeaderName("X-Request-Id")!
}

extension HeaderName {
    /// Where a write committed (on a response), and how fresh a read must be (on a request): read-your-writes
    /// through read replicas.
    static let registryPosition = HeaderName("Registry-Position")!
}
