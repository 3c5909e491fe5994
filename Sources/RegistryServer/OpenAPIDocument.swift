import Hummingbird
import RegistryAPI
import RegistryCore

/// The hand-written OpenAPI 3.1 description of API v1, served at `/openapi.json`. The schemas of the request and
/// response bodies in RegistryAPI are written beside those types (`schema`); the ones here describe RegistryCore
/// values and the paths.
enum OpenAPIDocument {
    static let bytes: ByteBuffer = ByteBuffer(bytes: (try? JSONCoding.encode(document)) ?? [])

    static var document: JSONValue {
        .object([
            "openapi": "3.1.0",
            "info": [
                "title": "swift-model-registry",
                "version": "1",
                "description": .string(
                    "Model registry API v1. Authenticate with 'Authorization: Bearer <token>'. Mutations of existing "
                        + "resources need If-Match with the resource's ETag (428 without, 412 when stale). Every "
                        + "response carries X-Request-Id. Token lookups are cached for a few seconds, so a revoked "
                        + "token may keep working on other servers for that long."),
            ],
            "security": .array([["bearer": .array([])]]),
            "paths": .object(paths),
            "components": components,
        ])
    }

    // MARK: Paths

    static var paths: [String: JSONValue] {
        let model = param("model", "Model name", schema: nameSchema)
        let version = param("version", "Version number (1, 2, …)", schema: ["type": "integer", "minimum": 1])
        let stage = param("stage", "Stage name", schema: nameSchema)
        let digest = param("digest", "sha256:<64 lowercase hex digits>", schema: digestSchema)
        let paging = [
            query(
                "limit",
                "Page size, at least 1 (default \(PageLimit.default)); larger values are clamped to "
                    + "\(PageLimit.maximum)",
                schema: ["type": "integer", "minimum": 1]),
            query("pageToken", "From nextPageToken"),
        ]
        return [
            "/v1/models": [
                "get": op(
                    "listModels", "Models the caller holds a grant on (all for admins).",
                    parameters: [query("prefix", "Name prefix"), query("tag", "key:value")] + paging,
                    responses: ["200": json("ModelPage")]),
                "post": op(
                    "createModel", "Creates a model; the caller becomes its owner.", body: "CreateModel",
                    responses: ["201": json("Model", etag: true), "409": error("MODEL_EXISTS")]),
            ],
            "/v1/models/{model}": [
                "get": op(
                    "getModel", "A model (read).", parameters: [model], responses: ["200": json("Model", etag: true)]),
                "patch": op(
                    "updateModel",
                    "Updates description, tags, approval policy or trust policy (owner); 400 INVALID_ARGUMENT for a "
                        + "trust policy that requires signatures without a trusted key.",
                    parameters: [model, ifMatch], body: "UpdateModel", responses: ["200": json("Model", etag: true)]),
            ],
            "/v1/models/{model}/acl": [
                "get": op(
                    "getAccessList", "The access list (owner).", parameters: [model],
                    responses: ["200": json("AccessList", etag: true)]),
                "put": op(
                    "replaceAccessList", "Replaces the access list; If-Match takes the model's ETag (owner).",
                    parameters: [model, ifMatch], body: "AccessListUpdate",
                    responses: ["200": json("AccessList", etag: true)]),
            ],
            "/v1/models/{model}/versions": [
                "get": op(
                    "listVersions", "Versions, newest first (read).",
                    parameters: [
                        model, query("status", "pending, approved, rejected or archived"), query("tag", "key:value"),
                    ]
                        + paging,
                    responses: ["200": json("VersionPage")]),
                "post": op(
                    "createVersion", "Registers a version from an uploaded manifest (writer).", parameters: [model],
                    body: "CreateVersion",
                    responses: [
                        "201": json("Version", etag: true),
                        "400": error(
                            "SIGNATURE_INVALID: the model trusts keys and the signature does not verify with any of "
                                + "them over this manifest (a signature on a model without trusted keys is stored "
                                + "as-is)"),
                        "422": error(
                            "ARTIFACT_INCOMPLETE: details.missing lists the absent blobs; SIGNATURE_REQUIRED: the "
                                + "model's trust policy requires a signature"),
                    ]),
            ],
            "/v1/models/{model}/versions/{version}": [
                "get": op(
                    "getVersion", "One version (read).", parameters: [model, version],
                    responses: ["200": json("Version", etag: true)]),
                "patch": op(
                    "updateVersion",
                    "Edits tags/metadata or attaches a signature (writer; the signature is verified like at creation, "
                        + "400 SIGNATURE_INVALID), or archives (owner; 409 VERSION_IN_USE while a stage points at it).",
                    parameters: [model, version, ifMatch], body: "UpdateVersion",
                    responses: [
                        "200": json("Version", etag: true), "400": error("SIGNATURE_INVALID"),
                        "409": error("VERSION_IN_USE: a stage points at the version"),
                    ]),
            ],
            "/v1/models/{model}/versions/{version}/approvals": [
                "post": op(
                    "decideVersion",
                    "Records an approval or rejection with the version's ETag (approver); 403 SELF_APPROVAL_FORBIDDEN, "
                        + "409 ALREADY_DECIDED or INVALID_TRANSITION.",
                    parameters: [model, version, ifMatch], body: "Decision",
                    responses: [
                        "200": json("Version", etag: true), "409": error("ALREADY_DECIDED, INVALID_TRANSITION"),
                    ])
            ],
            "/v1/models/{model}/stages": [
                "get": op(
                    "listStages", "Every stage of the model (read).", parameters: [model],
                    responses: ["200": json("StageList")])
            ],
            "/v1/models/{model}/stages/{stage}": [
                "get": op(
                    "getStage", "A stage (read).", parameters: [model, stage],
                    responses: ["200": json("Stage", etag: true)]),
                "put": op(
                    "promote",
                    "Points the stage at an approved version (deployer). Needs If-Match, or If-None-Match: * to create "
                        + "the stage; 409 VERSION_NOT_APPROVED. When the model requires signatures, the version's "
                        + "signature must verify against the trusted keys as they are now.",
                    parameters: [model, stage, optionalIfMatch, ifNoneMatch], body: "Promotion",
                    responses: [
                        "200": json("Stage", etag: true),
                        "409": error(
                            "VERSION_NOT_APPROVED, SIGNATURE_REQUIRED, SIGNATURE_INVALID, TRUST_POLICY_CHANGED"),
                    ]),
            ],
            "/v1/models/{model}/stages/{stage}/history": [
                "get": op(
                    "stageHistory", "Every promotion and rollback, oldest first (read).",
                    parameters: [model, stage] + paging,
                    responses: ["200": json("HistoryPage")])
            ],
            "/v1/models/{model}/stages/{stage}/rollback": [
                "post": op(
                    "rollback",
                    "Points the stage back at its previous version (deployer); 409 NO_PREVIOUS_VERSION, and "
                        + "SIGNATURE_REQUIRED / SIGNATURE_INVALID when the model requires signatures and that "
                        + "version's signature does not verify against the current trusted keys.",
                    parameters: [model, stage, ifMatch], body: "Rollback", bodyRequired: false,
                    responses: [
                        "200": json("Stage", etag: true),
                        "409": error(
                            "NO_PREVIOUS_VERSION, SIGNATURE_REQUIRED, SIGNATURE_INVALID, TRUST_POLICY_CHANGED"),
                    ])
            ],
            "/v1/models/{model}/stages/{stage}/rollouts": [
                "post": op(
                    "startRollout",
                    "Starts a progressive rollout of an approved version on the stage (deployer). If-Match is the "
                        + "stage's ETag. The rollout warms up (no traffic) until minInstances (and the quorum of "
                        + "instances seen within instanceWindowSeconds) report the candidate loaded, then exposes "
                        + "each step for bakeSeconds (advancing on its own when autoAdvance), and aborts on its own "
                        + "when an instance fails to load the candidate or its error rate exceeds the stable "
                        + "version's by more than maxErrorRateIncrease once minRequests were served. 409 "
                        + "ROLLOUT_IN_PROGRESS, VERSION_NOT_APPROVED; promotions of the stage are refused meanwhile "
                        + "and a stage rollback aborts the rollout.",
                    parameters: [model, stage, ifMatch], body: "StartRollout",
                    responses: [
                        "201": json("Rollout", etag: true),
                        "409": error(
                            "ROLLOUT_IN_PROGRESS, VERSION_NOT_APPROVED, SIGNATURE_REQUIRED, SIGNATURE_INVALID, "
                                + "TRUST_POLICY_CHANGED"),
                    ])
            ],
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}": [
                "get": op(
                    "getRollout", "A rollout with the latest report of each instance (read).",
                    parameters: [model, stage, rolloutId], responses: ["200": json("Rollout", etag: true)])
            ],
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/advance": rolloutAction(
                "advanceRollout",
                "Exposes the next step now; the step after the last completes the rollout, "
                    + "pointing the stage at the candidate (deployer). Completing re-checks the candidate against "
                    + "the model's trust policy: 409 SIGNATURE_INVALID or SIGNATURE_REQUIRED when it no longer "
                    + "passes.", model, stage, rolloutId),
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/pause": rolloutAction(
                "pauseRollout", "Holds the current weight; no automatic advance (deployer).", model, stage, rolloutId),
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/resume": rolloutAction(
                "resumeRollout", "Resumes a paused rollout; its bake period restarts (deployer).", model, stage,
                rolloutId),
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/abort": rolloutAction(
                "abortRollout", "Returns all traffic to the stable version at once (deployer).", model, stage, rolloutId
            ),
            "/v1/models/{model}/stages/{stage}/rollouts/{rollout}/reports": [
                "post": op(
                    "reportRollout",
                    "A serving instance reports its state for the candidate and its cumulative request and error "
                        + "counts for candidate and stable (read). The rollout decides at once (exposure, abort). "
                        + "Reports do not change the rollout's revision.",
                    parameters: [model, stage, rolloutId], body: "InstanceReport",
                    responses: ["200": json("Rollout", etag: true), "409": error("INVALID_TRANSITION")])
            ],
            "/v1/admin/gc": [
                "post": op(
                    "collectGarbage",
                    "Deletes chunks and manifests no version references and older than graceSeconds (default one "
                        + "hour), or only reports them with dryRun (admin; audited).",
                    body: "CollectGarbage", bodyRequired: false, responses: ["200": json("GarbageReport")])
            ],
            "/v1/resolve/{model}/{stage}": [
                "get": op(
                    "resolve",
                    "What serving systems should load; cache for ttlSeconds (read). During a rollout, candidate "
                        + "carries the version being rolled out and its weight (0 while warming). With wait=<seconds> "
                        + "and an If-None-Match that is still current this is a watch: the answer comes the moment it "
                        + "changes (a step, an abort, a promotion), or 304 when the wait runs out.",
                    parameters: [
                        model, stage, ifNoneMatch,
                        query(
                            "wait", "Watch for up to this many seconds; a server shutting down answers 304 at once",
                            schema: waitSchema),
                    ],
                    responses: [
                        "200": json("Resolution", etag: true, extra: ["Cache-Control": header("max-age=<ttlSeconds>")]),
                        "304": ["description": "Not modified: If-None-Match matched the current ETag."],
                    ])
            ],
            "/v1/blobs/check": [
                "post": op(
                    "checkBlobs", "Which digests still have to be uploaded (writer on any model).", body: "BlobCheck",
                    responses: ["200": json("BlobCheckResult")])
            ],
            "/v1/blobs/{digest}": [
                "put": op(
                    "uploadBlob",
                    "Stores one chunk, streamed; idempotent (writer on any model). 400 DIGEST_MISMATCH, "
                        + "413 beyond the chunk limit.",
                    parameters: [digest], rawBody: "application/octet-stream",
                    responses: ["201": json("BlobInfo"), "200": json("BlobInfo")]),
                "get": op(
                    "downloadBlob",
                    "The chunk, streamed; one Range (bytes=a-b, a-, -n) gives 206 (reader of a model using it).",
                    parameters: [digest, header("Range", "bytes=a-b | a- | -n")],
                    responses: [
                        "200": binary(), "206": binary(),
                        "416": error("RANGE_NOT_SATISFIABLE, with Content-Range: bytes */<size>"),
                    ]),
                "head": op(
                    "headBlob", "Size and ETag of a chunk.", parameters: [digest],
                    responses: ["200": ["description": "Exists; Content-Length is its size."]]),
            ],
            "/v1/manifests": [
                "put": op(
                    "uploadManifest",
                    "Validates and stores a manifest (writer on any model); 400 MANIFEST_INVALID, "
                        + "422 ARTIFACT_INCOMPLETE.",
                    body: "Manifest",
                    responses: [
                        "201": json("ManifestInfo"),
                        "422": error("ARTIFACT_INCOMPLETE: details.missing lists the chunks not uploaded"),
                    ])
            ],
            "/v1/manifests/{digest}": [
                "get": op(
                    "getManifest", "The stored manifest bytes (reader of a model using it).", parameters: [digest],
                    responses: ["200": json("Manifest")])
            ],
            "/v1/events": [
                "get": op(
                    "events",
                    "The durable event log after a cursor; with wait>0 the call returns as soon as an event commits. "
                        + "Non-admins see only events of models they can read; nextCursor still advances.",
                    parameters: [
                        query("after", "Cursor (nextCursor of the previous call; 0 for the start)"),
                        query("wait", "Seconds to wait for new events (long-poll)", schema: waitSchema),
                        query(
                            "limit",
                            "At most this many events, at least 1; larger values are clamped to "
                                + "\(PageLimit.maximum)",
                            schema: ["type": "integer", "minimum": 1]),
                    ],
                    responses: ["200": json("EventPage")])
            ],
            "/v1/audit": [
                "get": op(
                    "audit", "Audit entries in sequence order (admin, or owner with ?model=).",
                    parameters: [
                        query("model", "Only this model", schema: nameSchema),
                        query("after", "Sequence to start after", schema: ["type": "integer", "minimum": 0]),
                    ] + paging,
                    responses: ["200": json("AuditPage")])
            ],
            "/v1/audit/verify": [
                "get": op(
                    "verifyAudit", "Checks the audit hash chain end to end (admin).",
                    responses: ["200": json("AuditVerification")])
            ],
            "/v1/tokens": [
                "get": op("listTokens", "Every token, without secrets (admin).", responses: ["200": json("TokenList")]),
                "post": op(
                    "createToken", "Creates a token; the secret is in this response only (admin).", body: "CreateToken",
                    responses: ["201": json("CreatedToken")]),
            ],
            "/v1/tokens/{id}": [
                "delete": op(
                    "revokeToken", "Revokes a token (admin).", parameters: [param("id", "Token id")],
                    responses: ["204": ["description": "Revoked."]])
            ],
            "/healthz": ["get": publicOp("health", "Liveness.", json("Status"))],
            "/readyz": [
                "get": publicOp(
                    "ready", "Readiness: 503 UNAVAILABLE when the metadata store is unreachable.", json("Status"))
            ],
            "/metrics": [
                "get": publicOp(
                    "metrics", "Prometheus text exposition.",
                    ["description": "Metrics", "content": ["text/plain": ["schema": ["type": "string"]]]])
            ],
            "/openapi.json": [
                "get": publicOp(
                    "openapi", "This document.",
                    ["description": "OpenAPI 3.1 document", "content": ["application/json": ["schema": anyObject]]])
            ],
        ]
    }

    // MARK: Building blocks

    static let rolloutId: JSONValue = param("rollout", "Rollout id (ro_…)")

    static func rolloutAction(
        _ id: String, _ summary: String, _ model: JSONValue, _ stage: JSONValue, _ rollout: JSONValue
    ) -> JSONValue {
        [
            "post": op(
                id,
                summary
                    + " If-Match is the rollout's ETag; 409 INVALID_TRANSITION from a state that does not allow it.",
                parameters: [model, stage, rollout, ifMatch], body: "RolloutAction", bodyRequired: false,
                responses: ["200": json("Rollout", etag: true), "409": error("INVALID_TRANSITION")])
        ]
    }

    /// One revision ETag such as `"7"` (400 INVALID_ARGUMENT otherwise).
    static let revisionETag: JSONValue = ["type": "string", "pattern": "^\"[0-9]{1,18}\"$"]
    static let ifMatch: JSONValue = header(
        "If-Match", "The resource's current ETag, e.g. \"7\"", required: true, schema: revisionETag)
    /// Promotion takes If-Match, or If-None-Match: * to create the stage: neither alone is required.
    static let optionalIfMatch: JSONValue = header(
        "If-Match", "The stage's current ETag, e.g. \"7\"", schema: revisionETag)
    static let ifNoneMatch: JSONValue = header("If-None-Match", "* (create a stage) or an ETag (conditional GET)")

    static func op(
        _ id: String, _ summary: String, parameters: [JSONValue] = [], body: String? = nil, bodyRequired: Bool = true,
        rawBody: String? = nil, responses: [String: JSONValue]
    ) -> JSONValue {
        var responses = responses
        for (status, code) in [
            ("400", "INVALID_NAME, INVALID_ARGUMENT, MALFORMED_JSON, INVALID_DIGEST, …"),
            ("401", "UNAUTHENTICATED"), ("403", "PERMISSION_DENIED (audited)"),
            ("404", "MODEL_NOT_FOUND, VERSION_NOT_FOUND, STAGE_NOT_FOUND, BLOB_NOT_FOUND, NOT_FOUND"),
            ("429", "TOO_MANY_REQUESTS: too many invalid tokens from this address, or too many open long-polls"),
            ("500", "INTERNAL"),
            (
                "503",
                "STORE_UNAVAILABLE: the metadata store cannot be reached (its database restarting); retry after Retry-After"
            ),
        ] where responses[status] == nil {
            responses[status] = error(code)
        }
        if body != nil || rawBody != nil {
            responses["413"] = responses["413"] ?? error("PAYLOAD_TOO_LARGE")
            responses["415"] = responses["415"] ?? error("UNSUPPORTED_MEDIA_TYPE")
        }
        if parameters.contains(ifMatch) || parameters.contains(optionalIfMatch) {
            responses["412"] = error("REVISION_MISMATCH; details.current holds the current resource")
            responses["428"] = error("PRECONDITION_REQUIRED")
        }
        var operation: [String: JSONValue] = [
            "operationId": .string(id), "summary": .string(summary), "responses": .object(responses),
        ]
        if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
        if let body {
            operation["requestBody"] = [
                "required": .bool(bodyRequired), "content": ["application/json": ["schema": ref(body)]],
            ]
        }
        if let rawBody {
            operation["requestBody"] = [
                "required": .bool(true),
                "content": [.init(stringLiteral: rawBody): ["schema": ["type": "string", "format": "binary"]]],
            ]
        }
        return .object(operation)
    }

    static func publicOp(_ id: String, _ summary: String, _ ok: JSONValue) -> JSONValue {
        [
            "operationId": .string(id), "summary": .string(summary), "security": .array([]),
            "responses": [
                "200": ok, "404": error("NOT_FOUND on the data-plane port, which serves blobs, manifests and /healthz"),
            ],
        ]
    }

    static func param(_ name: String, _ description: String, schema: JSONValue = ["type": "string"]) -> JSONValue {
        [
            "name": .string(name), "in": "path", "required": .bool(true), "description": .string(description),
            "schema": schema,
        ]
    }

    static func query(_ name: String, _ description: String, schema: JSONValue = ["type": "string"]) -> JSONValue {
        ["name": .string(name), "in": "query", "description": .string(description), "schema": schema]
    }

    static func header(
        _ name: String, _ description: String, required: Bool = false, schema: JSONValue = ["type": "string"]
    ) -> JSONValue {
        [
            "name": .string(name), "in": "header", "description": .string(description), "required": .bool(required),
            "schema": schema,
        ]
    }

    static let nameSchema = Schema.name
    static let digestSchema = Schema.digest
    /// Seconds to wait for a change (long-poll, watch); the server caps it (60 s by default).
    static let waitSchema: JSONValue = ["type": "integer", "minimum": 0]

    static func header(_ description: String) -> JSONValue {
        ["description": .string(description), "schema": ["type": "string"]]
    }

    static func ref(_ schema: String) -> JSONValue { Schema.ref(schema) }

    static func json(_ schema: String, etag: Bool = false, extra: [String: JSONValue] = [:]) -> JSONValue {
        var headers = extra
        if etag { headers["ETag"] = header("The revision as a strong ETag, e.g. \"7\"") }
        var response: [String: JSONValue] = [
            "description": .string(schema), "content": ["application/json": ["schema": ref(schema)]],
        ]
        if !headers.isEmpty { response["headers"] = .object(headers) }
        return .object(response)
    }

    static func binary() -> JSONValue {
        [
            "description": "The bytes",
            "content": ["application/octet-stream": ["schema": ["type": "string", "format": "binary"]]],
            "headers": [
                "ETag": header("\"<digest>\""), "Accept-Ranges": header("bytes"),
                "Content-Range": header("bytes a-b/size (206 only)"),
            ],
        ]
    }

    static func error(_ codes: String) -> JSONValue {
        ["description": .string(codes), "content": ["application/json": ["schema": ref("Error")]]]
    }

    // MARK: Schemas

    // The building blocks are `RegistryAPI.Schema`'s, shared with the schemas written beside the wire types.
    static func object(_ properties: [String: JSONValue], required: [String] = []) -> JSONValue {
        Schema.object(properties, required: required)
    }
    static func record(_ properties: [String: JSONValue], optional: Set<String> = []) -> JSONValue {
        Schema.record(properties, optional: optional)
    }
    static func page(_ item: String) -> JSONValue { Schema.page(item) }
    static let string = Schema.string
    static let integer = Schema.integer
    static let boolean = Schema.boolean
    static let number = Schema.number
    static let time = Schema.time
    static let tags = Schema.tags
    static let anyObject = Schema.anyObject
    static let null = Schema.null

    static var components: JSONValue {
        [
            "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
            "schemas": .object(schemas),
        ]
    }

    static var schemas: [String: JSONValue] {
        let count = Schema.count
        let policyProperties = Schema.approvalPolicyProperties
        let trustPolicyProperties = Schema.trustPolicyProperties
        let source = Schema.versionSourceProperties
        let status: JSONValue = ["type": "string", "enum": .array(["pending", "approved", "rejected", "archived"])]
        let chunk = object(["digest": digestSchema, "size": integer], required: ["digest", "size"])
        return [
            "Error": ErrorResponse.schema,
            "Status": record(["status": string]),
            "Model": record([
                "name": string, "description": string, "tags": tags, "createdBy": string,
                "approvalPolicy": record(policyProperties), "trustPolicy": record(trustPolicyProperties),
                "revision": integer, "createdAt": time, "updatedAt": time,
            ]),
            "ModelPage": page("Model"),
            "CreateModel": CreateModelRequest.schema,
            "UpdateModel": UpdateModelRequest.schema,
            "AccessList": AccessList.schema,
            "AccessListUpdate": AccessListRequest.schema,
            "Version": record(
                [
                    "model": string, "version": integer, "status": status, "manifestDigest": digestSchema,
                    "size": integer, "signature": string, "metadata": anyObject, "tags": tags,
                    "source": record(source, optional: Set(source.keys)), "createdBy": string, "createdAt": time,
                    "updatedAt": time, "revision": integer,
                    "approvals": [
                        "type": "array",
                        "items": record(
                            [
                                "subject": string,
                                "decision": ["type": "string", "enum": .array(["approve", "reject"])],
                                "comment": string, "time": time,
                            ], optional: ["comment"]),
                    ],
                ], optional: ["signature"]),
            "VersionPage": page("Version"),
            "CreateVersion": CreateVersionRequest.schema,
            "UpdateVersion": UpdateVersionRequest.schema,
            "Decision": DecisionRequest.schema,
            "Stage": StageResponse.schema,
            "StartRollout": StartRolloutRequest.schema,
            "RolloutAction": ReasonRequest.schema,
            "InstanceReport": InstanceReportRequest.schema,
            "Rollout": record(
                [
                    "id": string, "model": string, "stage": string, "version": integer, "previousVersion": integer,
                    "steps": ["type": "array", "items": number], "stepIndex": integer, "weight": number,
                    "state": [
                        "type": "string",
                        "enum": .array(["warming", "progressing", "paused", "completed", "aborted"]),
                    ],
                    "policy": record([
                        "bakeSeconds": integer, "autoAdvance": boolean, "minInstances": integer, "quorum": number,
                        "instanceWindowSeconds": integer, "maxErrorRateIncrease": number, "minRequests": integer,
                    ]),
                    "stepStartedAt": time, "reason": string, "createdBy": string, "createdAt": time,
                    "updatedAt": time, "revision": integer,
                    "reports": [
                        "type": "object",
                        "description": "The latest report of each instance, by instance",
                        "additionalProperties": record(
                            [
                                "instance": string, "region": string,
                                "state": ["type": "string", "enum": .array(["loaded", "serving", "failed"])],
                                "requests": count, "errors": count, "stableRequests": count, "stableErrors": count,
                                "time": time,
                            ], optional: ["region"]),
                    ],
                ], optional: ["stepStartedAt", "reason"]),
            "CollectGarbage": CollectGarbageRequest.schema,
            "GarbageReport": anyObject,
            "StageList": StageResponse.listSchema,
            "Promotion": PromotionRequest.schema,
            "Rollback": ReasonRequest.schema,
            "HistoryEntry": record(
                [
                    "sequence": integer, "model": string, "stage": string,
                    "action": [
                        "type": "string",
                        "enum": .array(["promote", "rollback", "rollout-start", "rollout-step", "rollout-abort"]),
                    ],
                    "rolloutId": string, "weight": number,
                    "fromVersion": ["type": .array(["integer", "null"])],
                    "toVersion": integer, "revision": integer, "actor": string, "reason": string, "time": time,
                ], optional: ["rolloutId", "weight", "fromVersion", "reason"]),
            "HistoryPage": page("HistoryEntry"),
            "Resolution": Resolution.schema,
            "BlobCheck": BlobCheckRequest.schema,
            "BlobCheckResult": BlobCheckResult.schema,
            "BlobInfo": BlobInfo.schema,
            "ManifestInfo": BlobInfo.schema,
            "Manifest": object(
                [
                    "schemaVersion": integer, "mediaType": string, "annotations": tags,
                    "files": [
                        "type": "array",
                        "items": object(
                            [
                                "path": string, "size": integer, "digest": digestSchema,
                                "chunks": ["type": "array", "items": chunk],
                            ], required: ["path", "size", "digest", "chunks"]),
                    ],
                ], required: ["schemaVersion", "files"]),
            "Event": record([
                "id": string, "type": string, "time": time, "model": ["type": .array(["string", "null"])],
                "data": anyObject,
            ]),
            "EventPage": EventPage.schema,
            "AuditEntry": record(
                [
                    "sequence": integer, "time": time, "actor": string, "action": string, "target": string,
                    "model": ["type": .array(["string", "null"])], "before": [:], "after": [:], "requestId": string,
                    "previousHash": string, "hash": string,
                ], optional: ["model", "before", "after"]),
            "AuditPage": page("AuditEntry"),
            "AuditVerification": record(
                [
                    "ok": boolean, "entries": integer, "headHash": string, "firstBadSequence": integer,
                    "problem": string,
                ], optional: ["firstBadSequence", "problem"]),
            "CreateToken": CreateTokenRequest.schema,
            "CreatedToken": IssuedToken.schema,
            "TokenList": TokenInfo.listSchema,
        ]
    }
}
