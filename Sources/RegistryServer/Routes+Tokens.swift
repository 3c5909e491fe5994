import Foundation
import Hummingbird
import RegistryAPI
import RegistryCore

extension RegistryRoutes {
    /// Bearer tokens; administrators only.
    func registerTokens(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/tokens") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            let body = try await request.decodeJSON(CreateTokenRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            try Names.validateSubject(body.subject)
            let mutation = mutation(principal, context)
            if let expiresAt = body.expiresAt, expiresAt <= mutation.time {
                throw RegistryError.invalidArgument("expiresAt must lie in the future.", field: "expiresAt")
            }
            let (token, secret) = AdminBootstrap.newToken(
                subject: body.subject, admin: body.admin ?? false, canCreateModels: body.canCreateModels ?? false,
                expiresAt: body.expiresAt, createdBy: principal.subject, time: mutation.time)
            try await metadata.createToken(token, context: mutation)
            var headers = HTTPFields()
            headers[.location] = "/v1/tokens/\(token.id)"
            return try .json(IssuedToken(token, secret: secret), status: .created, headers: headers)
        }

        add(router, .get, "/v1/tokens") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            return try .json(ItemList(items: try await metadata.tokens().map(TokenInfo.init)))
        }

        add(router, .delete, "/v1/tokens/:id") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            let id = context.parameters.required("id")
            try await metadata.revokeToken(id: id, context: mutation(principal, context))
            authenticator.forgetToken(id: id)
            return .noContent()
        }
    }
}
