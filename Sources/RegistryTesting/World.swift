import RegistryCore
import Testing

/// A model `demo` with one token per role, an approved version 1 and stage `production` at version 1.
public struct World: Sendable {
    public let registry: any RegistryEndpoint
    /// Token secrets by caller: `admin`, each of `roles` (granted that role on `demo`) and `stranger` (no grant).
    public var tokens: [String: String]
    public let manifest: Digest
    public let chunk: [UInt8]

    public static let roles = ["owner", "writer", "approver", "deployer", "reader", "serving"]

    public static func make(_ registry: some RegistryEndpoint) async throws -> World {
        var tokens: [String: String] = ["admin": registry.adminToken]
        for subject in roles + ["stranger"] {
            tokens[subject] = try await registry.token(for: subject, canCreateModels: subject == "owner")
        }
        let created = try await registry.send(
            .POST, "/v1/models", token: tokens["owner"], json: ["name": "demo", "description": "a test model"])
        guard created.status == 201 else { throw TestFailure("model: \(created.status) \(created.text)") }
        let grants: [JSONValue] = roles.map { ["subject": .string($0), "role": .string($0)] }
        let acl = try await registry.send(
            .PUT, "/v1/models/demo/acl", token: tokens["owner"], json: ["grants": .array(grants)],
            headers: [("If-Match", "\"1\"")])
        guard acl.status == 200 else { throw TestFailure("acl: \(acl.status) \(acl.text)") }
        let chunk = Array("weights of the demo model".utf8)
        let manifest = try await registry.upload(["model.bin": chunk], token: tokens["writer"]!)
        let version = try await registry.send(
            .POST, "/v1/models/demo/versions", token: tokens["writer"],
            json: ["manifestDigest": .string(manifest.description)])
        guard version.status == 201 else { throw TestFailure("version: \(version.status) \(version.text)") }
        let approval = try await registry.send(
            .POST, "/v1/models/demo/versions/1/approvals", token: tokens["approver"], json: ["decision": "approve"],
            headers: [("If-Match", "\"1\"")])
        guard approval.status == 200 else { throw TestFailure("approval: \(approval.status) \(approval.text)") }
        let stage = try await registry.send(
            .PUT, "/v1/models/demo/stages/production", token: tokens["deployer"], json: ["version": .number(1)],
            headers: [("If-None-Match", "*")])
        guard stage.status == 200 else { throw TestFailure("stage: \(stage.status) \(stage.text)") }
        return World(registry: registry, tokens: tokens, manifest: manifest, chunk: chunk)
    }

    /// Creates and approves a new version of `demo` with the given content; returns its number.
    public func approvedVersion(_ content: String) async throws -> Int {
        let manifest = try await registry.upload(["model.bin": Array(content.utf8)], token: tokens["writer"]!)
        let version = try await registry.send(
            .POST, "/v1/models/demo/versions", token: tokens["writer"],
            json: ["manifestDigest": .string(manifest.description)])
        guard version.status == 201, let number = version.int("version") else {
            throw TestFailure("version: \(version.status) \(version.text)")
        }
        let approval = try await registry.send(
            .POST, "/v1/models/demo/versions/\(number)/approvals", token: tokens["approver"],
            json: ["decision": "approve"], headers: [("If-Match", "\"1\"")])
        guard approval.status == 200 else { throw TestFailure("approval: \(approval.status) \(approval.text)") }
        return number
    }

    /// Starts a rollout of `version` on `production` that moves only by hand; returns its id.
    public func manualRollout(of version: Int) async throws -> String {
        let stage = try await registry.send(.GET, "/v1/models/demo/stages/production", token: tokens["reader"])
        let started = try await registry.send(
            .POST, "/v1/models/demo/stages/production/rollouts", token: tokens["deployer"],
            json: ["version": .number(Double(version)), "autoAdvance": false],
            headers: [("If-Match", stage.header("ETag") ?? "")])
        guard started.status == 201, case .string(let id)? = started.json["id"] else {
            throw TestFailure("rollout: \(started.status) \(started.text)")
        }
        return id
    }
}
