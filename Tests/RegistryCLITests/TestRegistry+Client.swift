import RegistryClient
import RegistryTesting

extension TestRegistry {
    /// A typed client with the admin token.
    var admin: RegistryClient { RegistryClient(baseURL: baseURL, token: adminToken) }

    /// A typed client for a new token issued to `subject`.
    func client(for subject: String) async throws -> RegistryClient {
        let issued = try await admin.createToken(subject: subject)
        return RegistryClient(baseURL: baseURL, token: issued.token)
    }
}
