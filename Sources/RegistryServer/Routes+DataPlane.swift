import Hummingbird

extension RegistryRoutes {
    /// Registers only what the data-plane port serves: artifacts (blobs, manifests) and a liveness probe.
    func registerDataPlane(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/healthz") { _, _ in
            try .json(["status": "ok"])
        }
        registerBlobs(on: router)
        registerManifests(on: router)
    }
}
