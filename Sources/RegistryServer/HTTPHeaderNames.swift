import Hummingbird

/// `HTTPField.Name`, reached through `HTTPFields` so that no extra module import is needed.
typealias HeaderName = HTTPFields.Element.Name

extension HeaderName {
    static let requestID = HeaderName("X-Request-Id")!
}
