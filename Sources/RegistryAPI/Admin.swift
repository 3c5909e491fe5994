import RegistryCore

/// `POST /v1/admin/gc`: a garbage collection run; nil fields take the server's defaults (no dry run, one hour).
public struct CollectGarbageRequest: Sendable, Equatable, Codable {
    public var dryRun: Bool?
    public var graceSeconds: Int?

    public init(dryRun: Bool? = nil, graceSeconds: Int? = nil) {
        self.dryRun = dryRun
        self.graceSeconds = graceSeconds
    }

    public static let schema = Schema.object([
        "dryRun": Schema.boolean, "graceSeconds": ["type": "integer", "minimum": 0],
    ])
}
