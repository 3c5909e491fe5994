import Foundation
import NIOHTTP1
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

/// Every route of `/openapi.json`, called on the real SQLite and file-system stores behind both ports, answers with
/// what the document describes: its status is documented and its JSON body matches the schema for that status,
/// with no field the document lacks and none missing that it promises.
@Suite(.timeLimit(.minutes(5))) struct ContractTests {
    /// Sends one request and checks its answer against the document; returns the answer for the next step.
    struct Tour {
        let registry: TestRegistry
        var visited: Set<String> = []

        mutating func call(
            _ method: HTTPMethod, _ path: String, token: String?, json: JSONValue? = nil, body: [UInt8]? = nil,
            headers: [(String, String)] = [], base: String? = nil, route: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> TestResponse {
            let response = try await registry.send(
                method, path, token: token, json: json, body: body, headers: headers, base: base,
                sourceLocation: sourceLocation)
            visited.insert("\(method.rawValue) \(route)")
            return response
        }
    }

    @Test func everyRouteAnswersAsTheDocumentSays() async throws {
        var configuration = ServerConfiguration(port: 0)
        configuration.dataPort = 0
        try await TestRegistry.with(.sqlite, configuration: configuration) { registry in
            let world = try await World.make(registry)
            let t = world.tokens
            var tour = Tour(registry: registry)
            let digest = world.manifest.description
            let chunk = Digest(of: world.chunk).description
            // Operations and documents.
            _ = try await tour.call(.GET, "/healthz", token: nil, route: "/healthz")
            _ = try await tour.call(.GET, "/readyz", token: nil, route: "/readyz")
            _ = try await tour.call(.GET, "/metrics", token: t["admin"], route: "/metrics")
            _ = try await tour.call(.GET, "/openapi.json", token: nil, route: "/openapi.json")
            // Models and access lists.
            _ = try await tour.call(.GET, "/v1/models?limit=1", token: t["reader"], route: "/v1/models")
            _ = try await tour.call(
                .POST, "/v1/models", token: t["owner"], json: ["name": "other", "tags": ["team": "risk"]],
                route: "/v1/models")
            _ = try await tour.call(
                .POST, "/v1/models", token: t["owner"], json: ["name": "other"], route: "/v1/models")
            let model = try await tour.call(.GET, "/v1/models/demo", token: t["reader"], route: "/v1/models/{model}")
            _ = try await tour.call(
                .PATCH, "/v1/models/demo", token: t["owner"], json: ["description": "updated"],
                headers: [("If-Match", model.header("ETag") ?? "")], route: "/v1/models/{model}")
            _ = try await tour.call(.GET, "/v1/models/missing", token: t["admin"], route: "/v1/models/{model}")
            let acl = try await tour.call(
                .GET, "/v1/models/demo/acl", token: t["owner"], route: "/v1/models/{model}/acl")
            _ = try await tour.call(
                .PUT, "/v1/models/demo/acl", token: t["owner"], json: ["grants": acl.json["grants"] ?? .array([])],
                headers: [("If-Match", "\"1\"")], route: "/v1/models/{model}/acl")
            // Versions and reviews.
            _ = try await tour.call(
                .GET, "/v1/models/demo/versions?limit=1", token: t["reader"], route: "/v1/models/{model}/versions")
            let second = try await world.approvedVersion("second")
            let third = try await tour.call(
                .POST, "/v1/models/demo/versions", token: t["writer"],
                json: [
                    "manifestDigest": .string(digest), "tags": ["stage": "candidate"], "metadata": ["auc": 0.9],
                    "source": ["runId": "r1"],
                ], route: "/v1/models/{model}/versions")
            let thirdNumber = third.int("version") ?? 0
            _ = try await tour.call(
                .PATCH, "/v1/models/demo/versions/\(thirdNumber)", token: t["writer"], json: ["tags": ["a": "b"]],
                headers: [("If-Match", third.header("ETag") ?? "")], route: "/v1/models/{model}/versions/{version}")
            _ = try await tour.call(
                .POST, "/v1/models/demo/versions/\(thirdNumber)/approvals", token: t["approver"],
                json: ["decision": "reject", "comment": "no"], headers: [("If-Match", "\"2\"")],
                route: "/v1/models/{model}/versions/{version}/approvals")
            _ = try await tour.call(
                .GET, "/v1/models/demo/versions/\(thirdNumber)", token: t["reader"],
                route: "/v1/models/{model}/versions/{version}")
            _ = try await tour.call(
                .POST, "/v1/models/demo/versions", token: t["writer"],
                json: ["manifestDigest": .string(Digest(of: [9]).description)], route: "/v1/models/{model}/versions")
            // Stages, history, rollouts and resolve.
            let stage = try await tour.call(
                .GET, "/v1/models/demo/stages/production", token: t["reader"],
                route: "/v1/models/{model}/stages/{stage}")
            let promoted = try await tour.call(
                .PUT, "/v1/models/demo/stages/production", token: t["deployer"],
                json: ["version": .number(Double(second)), "reason": "better"],
                headers: [("If-Match", stage.header("ETag") ?? "")], route: "/v1/models/{model}/stages/{stage}")
            _ = try await tour.call(
                .PUT, "/v1/models/demo/stages/production", token: t["deployer"], json: ["version": 1],
                headers: [("If-Match", "\"1\"")], route: "/v1/models/{model}/stages/{stage}")
            let back = try await tour.call(
                .POST, "/v1/models/demo/stages/production/rollback", token: t["deployer"], json: ["reason": "oops"],
                headers: [("If-Match", promoted.header("ETag") ?? "")],
                route: "/v1/models/{model}/stages/{stage}/rollback")
            _ = try await tour.call(
                .GET, "/v1/models/demo/stages/production/history", token: t["reader"],
                route: "/v1/models/{model}/stages/{stage}/history")
            let started = try await tour.call(
                .POST, "/v1/models/demo/stages/production/rollouts", token: t["deployer"],
                json: [
                    "version": .number(Double(second)), "steps": [10, 100], "autoAdvance": false, "minInstances": 1,
                ],
                headers: [("If-Match", back.header("ETag") ?? "")], route: "/v1/models/{model}/stages/{stage}/rollouts")
            let id = started.json["id"].flatMap { if case .string(let id) = $0 { id } else { nil } } ?? "missing"
            let rollouts = "/v1/models/demo/stages/production/rollouts/\(id)"
            let rolloutRoute = "/v1/models/{model}/stages/{stage}/rollouts/{rollout}"
            _ = try await tour.call(
                .GET, "/v1/models/demo/stages", token: t["reader"], route: "/v1/models/{model}/stages")
            _ = try await tour.call(
                .GET, "/v1/models/demo/stages/production", token: t["reader"],
                route: "/v1/models/{model}/stages/{stage}")
            _ = try await tour.call(
                .GET, "/v1/resolve/demo/production", token: t["serving"], route: "/v1/resolve/{model}/{stage}")
            let reported = try await tour.call(
                .POST, rollouts + "/reports", token: t["serving"],
                json: ["instance": "i-1", "region": "eu", "state": "serving", "requests": 10, "errors": 0],
                route: rolloutRoute + "/reports")
            _ = try await tour.call(.GET, rollouts, token: t["reader"], route: rolloutRoute)
            var revision = reported.header("ETag") ?? ""
            for action in ["pause", "resume", "advance", "abort"] {
                let moved = try await tour.call(
                    .POST, rollouts + "/\(action)", token: t["deployer"], json: ["reason": "tour"],
                    headers: [("If-Match", revision)], route: rolloutRoute + "/\(action)")
                revision = moved.header("ETag") ?? revision
            }
            _ = try await tour.call(
                .GET, "/v1/resolve/demo/production", token: t["serving"], route: "/v1/resolve/{model}/{stage}")
            // Blobs and manifests, on both ports.
            for base in [registry.baseURL, registry.dataBaseURL] {
                _ = try await tour.call(
                    .POST, "/v1/blobs/check", token: t["writer"], json: ["digests": [.string(chunk)]], base: base,
                    route: "/v1/blobs/check")
                _ = try await tour.call(
                    .HEAD, "/v1/blobs/\(chunk)", token: t["reader"], base: base, route: "/v1/blobs/{digest}")
                _ = try await tour.call(
                    .GET, "/v1/blobs/\(chunk)", token: t["reader"], base: base, route: "/v1/blobs/{digest}")
                _ = try await tour.call(
                    .GET, "/v1/blobs/\(chunk)", token: t["reader"], headers: [("Range", "bytes=2-5")], base: base,
                    route: "/v1/blobs/{digest}")
                _ = try await tour.call(
                    .GET, "/v1/manifests/\(digest)", token: t["reader"], base: base, route: "/v1/manifests/{digest}")
            }
            let bytes = Array("fresh chunk".utf8)
            _ = try await tour.call(
                .PUT, "/v1/blobs/\(Digest(of: bytes))", token: t["writer"], body: bytes, route: "/v1/blobs/{digest}")
            _ = try await tour.call(
                .PUT, "/v1/manifests", token: t["writer"],
                body: try JSONCoding.encode(
                    Manifest(files: [
                        .init(
                            path: "m.bin", size: Int64(bytes.count), digest: Digest(of: bytes),
                            chunks: [.init(digest: Digest(of: bytes), size: Int64(bytes.count))])
                    ])),
                headers: [("Content-Type", "application/json")], route: "/v1/manifests")
            // Events, audit, tokens, administration.
            _ = try await tour.call(.GET, "/v1/events?after=0&limit=50", token: t["admin"], route: "/v1/events")
            _ = try await tour.call(.GET, "/v1/audit?limit=50", token: t["admin"], route: "/v1/audit")
            _ = try await tour.call(.GET, "/v1/audit/verify", token: t["admin"], route: "/v1/audit/verify")
            let token = try await tour.call(
                .POST, "/v1/tokens", token: t["admin"], json: ["subject": "ci", "expiresAt": "2030-01-01T00:00:00Z"],
                route: "/v1/tokens")
            _ = try await tour.call(.GET, "/v1/tokens", token: t["admin"], route: "/v1/tokens")
            let tokenId = token.json["id"].flatMap { if case .string(let id) = $0 { id } else { nil } } ?? "missing"
            _ = try await tour.call(.DELETE, "/v1/tokens/\(tokenId)", token: t["admin"], route: "/v1/tokens/{id}")
            _ = try await tour.call(
                .POST, "/v1/admin/gc", token: t["admin"], json: ["dryRun": true], route: "/v1/admin/gc")
            // Refusals answer with the documented error body too.
            _ = try await tour.call(.GET, "/v1/models/demo", token: nil, route: "/v1/models/{model}")
            _ = try await tour.call(.GET, "/v1/models/demo", token: t["stranger"], route: "/v1/models/{model}")
            _ = try await tour.call(
                .PATCH, "/v1/models/demo", token: t["owner"], json: ["description": "x"], route: "/v1/models/{model}")
            // Every operation of the document was visited.
            let contract = try await OpenAPIContract.served(by: registry)
            #expect(
                contract.operationNames.subtracting(tour.visited).isEmpty,
                "not visited: \(contract.operationNames.subtracting(tour.visited).sorted())")
        }
    }
}

extension ContractTests {
    /// Authentication comes before input validation: a request without a token (or with an unknown one) is 401 on
    /// every protected operation, whatever its path parameters, query and body hold.
    @Test func everyProtectedOperationAnswers401BeforeLookingAtTheInput() async throws {
        try await TestRegistry.with { registry in
            let contract = try await OpenAPIContract.served(by: registry)
            #expect(contract.protectedOperations.count >= 30)
            for (method, template) in contract.protectedOperations {
                // Every parameter is invalid: a name with spaces, a digest that is none, a version that is no number.
                let path = template.replacingOccurrences(
                    of: #"\{[a-z]+\}"#, with: "NOT%20VALID", options: .regularExpression)
                for token in [nil, "not-a-token-of-this-registry-0123456789abcdef"] {
                    let response = try await registry.send(
                        HTTPMethod(rawValue: method), path + "?limit=0&wait=-1&after=x", token: token,
                        body: Array("{not json".utf8), headers: [("Content-Type", "application/json")])
                    #expect(
                        response.status == 401, "\(method) \(template) answered \(response.status) \(response.text)")
                    if method != "HEAD" { #expect(response.errorCode == "UNAUTHENTICATED") }
                }
            }
        }
    }
}

/// The contract checker itself finds what it is there to find.
@Suite(.timeLimit(.minutes(10))) struct OpenAPIContractTests {
    static let document: JSONValue = [
        "paths": [
            "/v1/things/{id}": [
                "get": [
                    "responses": [
                        "200": ["content": ["application/json": ["schema": ["$ref": "#/components/schemas/Thing"]]]]
                    ]
                ]
            ]
        ],
        "components": [
            "schemas": [
                "Thing": [
                    "type": "object", "additionalProperties": false, "required": ["id", "size"],
                    "properties": [
                        "id": ["type": "string", "pattern": "^t_[a-z]+$"], "size": ["type": "integer", "minimum": 0],
                        "when": ["type": "string", "format": "date-time"],
                        "state": ["type": "string", "enum": ["on", "off"]],
                        "parent": ["type": ["string", "null"]],
                    ],
                ]
            ]
        ],
    ]

    func problems(_ body: String, status: Int = 200, path: String = "/v1/things/t_a") -> [String] {
        OpenAPIContract(document: Self.document).problems(
            method: "GET", path: path, status: status, contentType: "application/json", body: Array(body.utf8))
    }

    @Test func aMatchingBodyHasNoProblems() {
        #expect(problems(#"{"id":"t_a","size":3,"when":"2026-11-30T10:00:00Z","state":"on","parent":null}"#) == [])
    }

    @Test func everyKindOfDriftIsFound() {
        #expect(problems(#"{"id":"t_a","size":3,"extra":1}"#).count == 1)
        #expect(problems(#"{"id":"t_a"}"#).count == 1)
        #expect(problems(#"{"id":"T","size":-1}"#).count == 2)
        #expect(problems(#"{"id":"t_a","size":1.5}"#).count == 1)
        #expect(problems(#"{"id":"t_a","size":1,"when":"yesterday","state":"dim"}"#).count == 2)
        #expect(problems(#"{"id":"t_a","size":1}"#, status: 418).count == 1)
        #expect(problems(#"{}"#, path: "/v1/other").isEmpty)
    }
}
