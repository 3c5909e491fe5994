import RegistryCore

/// A model's access list and the model revision it belongs to (the ETag to send when replacing it).
public struct AccessList: Sendable, Equatable, Codable {
    public var model: String?
    public var grants: [Grant]
    public var revision: Int

    public init(model: String? = nil, grants: [Grant], revision: Int) {
        self.model = model
        self.grants = grants
        self.revision = revision
    }
}
