/// The authenticated caller of a request.
public struct Principal: Sendable, Equatable {
    public var subject: String
    public var admin: Bool
    /// Whether this caller may create models: a global permission, held by admins and by tokens issued with it.
    public var canCreateModels: Bool

    public init(subject: String, admin: Bool, canCreateModels: Bool = false) {
        self.subject = subject
        self.admin = admin
        self.canCreateModels = admin || canCreateModels
    }

    /// The caller a token authenticates.
    public init(_ token: AccessToken) {
        self.init(subject: token.subject, admin: token.admin, canCreateModels: token.canCreateModels)
    }

    /// Whether this caller holds `permission` on `model`: admins always do, others through a grant.
    public func can(_ permission: Permission, on model: Model) -> Bool {
        if admin { return true }
        return model.grants.contains { $0.subject == subject && $0.role.permissions.contains(permission) }
    }

    /// The roles this caller holds on `model`.
    public func roles(on model: Model) -> [Role] {
        model.grants.filter { $0.subject == subject }.map(\.role)
    }

    /// Throws `PERMISSION_DENIED` unless this caller holds `permission` on `model`.
    public func require(_ permission: Permission, on model: Model) throws {
        guard can(permission, on: model) else {
            throw RegistryError(
                .permissionDenied,
                "'\(subject)' needs the \(permission.leastRole.rawValue) role on model '\(model.name)' to do this.",
                details: [
                    "model": .string(model.name), "permission": .string(permission.rawValue),
                    "requiredRole": .string(permission.leastRole.rawValue),
                ])
        }
    }
}
