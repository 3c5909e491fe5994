import Foundation
import Hummingbird
import RegistryCore

extension RegistryRoutes {
    struct CreateTokenBody: Decodable, Sendable {
        var subject: String
        var admin: Bool?
        var canCreateModels: Bool?
        var expiresAt: Date?
    }

    /// The new token; `token` is the secret, shown only in this response.
    struct CreatedToken: Encodable {
        var id: String
        var subject: String
        var admin: Bool
        var canCreateModels: Bool
        var expiresAt: Date?
        var token: String
        var createdAt: Date
    }

    struct TokenList: Encodable {
        var items: [AccessToken]
    }

    /// Bearer tokens; administrators only.
    func registerTokens(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/tokens") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            let body = try await request.decodeJSON(CreateTokenBody.self, maxBytes: configuration.maxJSONBodyBytes)
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
            return try .json(
                CreatedToken(
                    id: token.id, subject: token.subject, admin: token.admin,
                    canCreateModels: token.canCreateModels, expiresAt: token.expiresAt, token: secret,
                    createdAt: token.createdAt),
                status: .created, headers: headers)
        }

        add(router, .get, "/v1/tokens") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            return try .json(TokenList(items: try await metadata.tokens()))
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
