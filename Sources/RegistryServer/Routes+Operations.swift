import Hummingbird
import RegistryCore

extension RegistryRoutes {
    /// `/healthz`, `/readyz`, `/metrics` and `/openapi.json`; all public.
    func registerOperations(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/healthz") { _, _ in
            try .json(["status": "ok"])
        }
        add(router, .get, "/readyz") { _, context in
            do {
                try await metadata.ping()
            } catch {
                context.logger.warning("Readiness check failed", metadata: ["error": "\(error)"])
                throw RegistryError(.unavailable, "The metadata store is not reachable.")
            }
            return try .json(["status": "ready"])
        }
        add(router, .get, "/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        add(router, .get, "/openapi.json") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: OpenAPIDocument.bytes))
        }
    }
}
