import Hummingbird
import RegistryCore

extension RegistryRoutes {
    /// The audit log (admins, or owners for their model's entries) and its end-to-end verification (admins).
    func registerAudit(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/v1/audit") { request, context in
            let principal = try await authenticate(request)
            var modelName: String?
            if let name = request.query("model") {
                try Names.validate(name, kind: "model")
                guard let model = try await metadata.model(named: name) else { throw RegistryError.modelNotFound(name) }
                try await require(.manage, on: model, principal, request, context)
                modelName = name
            } else {
                try await requireAdmin(principal, request, context)
            }
            var after = Int64(try request.intQuery("after") ?? 0)
            if let token = try PageToken.parseInt(request.query("pageToken")) { after = token }
            let page = try await metadata.auditEntries(
                AuditQuery(model: modelName, after: after, limit: try request.pageLimit()))
            return try .json(page)
        }

        add(router, .get, "/v1/audit/verify") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            return try .json(try await metadata.verifyAudit())
        }
    }
}
