/// The authenticated caller of a request.
public struct Principal: Sendable, Equatable {
    public var subject: String
    public var admin: Bool

    public init(subject: String, admin: Bool) {
        self.subject = subject
        self.admin = admin
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
