import RegistryCore

/// Building blocks of the OpenAPI 3.1 schemas, so that each wire type can spell its own schema beside its fields
/// (`static let schema`) and `/openapi.json` is assembled from them.
public enum Schema {
    /// A request object: the listed properties, `required` among them; other properties are ignored.
    public static func object(_ properties: [String: JSONValue], required: [String] = []) -> JSONValue {
        var schema: [String: JSONValue] = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { schema["required"] = .array(required.map(JSONValue.string)) }
        return .object(schema)
    }

    /// A response object: every property is sent unless listed in `optional` (then omitted when unset), and no
    /// other property is, so a field the server starts or stops sending fails the contract test.
    public static func record(_ properties: [String: JSONValue], optional: Set<String> = []) -> JSONValue {
        var schema: [String: JSONValue] = [
            "type": "object", "properties": .object(properties), "additionalProperties": false,
        ]
        let required = properties.keys.filter { !optional.contains($0) }.sorted()
        if !required.isEmpty { schema["required"] = .array(required.map(JSONValue.string)) }
        return .object(schema)
    }

    /// A page of `item` (a schema name) with the token of the next page, null on the last.
    public static func page(_ item: String) -> JSONValue {
        record([
            "items": ["type": "array", "items": ref(item)], "nextPageToken": ["type": .array(["string", "null"])],
        ])
    }

    /// A reference to the schema named `name` in `components/schemas`.
    public static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    /// `schema` or an explicit null.
    public static func nullable(_ schema: JSONValue) -> JSONValue { ["oneOf": .array([schema, null])] }

    public static let string: JSONValue = ["type": "string"]
    public static let integer: JSONValue = ["type": "integer"]
    public static let boolean: JSONValue = ["type": "boolean"]
    public static let number: JSONValue = ["type": "number"]
    public static let time: JSONValue = ["type": "string", "format": "date-time"]
    public static let tags: JSONValue = ["type": "object", "additionalProperties": ["type": "string"]]
    public static let anyObject: JSONValue = ["type": "object"]
    public static let null: JSONValue = ["type": "null"]
    public static let positive: JSONValue = ["type": "integer", "minimum": 1]

    /// Model, stage and region names (400 INVALID_NAME otherwise).
    public static let name: JSONValue = ["type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,127}$"]
    /// Content digests (400 INVALID_DIGEST otherwise).
    public static let digest: JSONValue = ["type": "string", "pattern": "^sha256:[0-9a-f]{64}$"]
    /// Token subjects and grant subjects.
    public static let subject: JSONValue = [
        "type": "string", "pattern": "^[!-9;-~]{1,128}$",
        "description": "1–128 printable ASCII characters, no spaces or ':'",
    ]
    public static let role: JSONValue = ["type": "string", "enum": .array(Role.allCases.map { .string($0.rawValue) })]
    /// A grant as a request sends it.
    public static let grant = object(["subject": subject, "role": role], required: ["subject", "role"])
    public static let decision: JSONValue = ["type": "string", "enum": .array(["approve", "reject"])]
    /// Cumulative request and error counts of a rollout report (errors never exceed their requests).
    public static let count: JSONValue = [
        "type": "integer", "minimum": 0, "maximum": .number(Double(InstanceReport.maxCount)),
    ]
    public static let instanceState: JSONValue = [
        "type": "string", "enum": .array(InstanceReport.State.allCases.map { .string($0.rawValue) }),
    ]

    /// The properties of `ApprovalPolicy`, of `TrustPolicy` and of `VersionSource`.
    public static let approvalPolicyProperties: [String: JSONValue] = [
        "requiredApprovals": ["type": "integer", "minimum": 1, "maximum": 16], "allowSelfApproval": boolean,
        "revokeApprovalOnMetadataChange": boolean,
    ]
    public static let trustPolicyProperties: [String: JSONValue] = [
        "requireSignature": boolean,
        "trustedKeys": [
            "type": "array", "maxItems": .number(Double(TrustPolicy.maxTrustedKeys)),
            "items": ["type": "string", "description": "ed25519:<base64> or p256:<base64 of the X9.63 point>"],
        ],
    ]
    public static let versionSourceProperties: [String: JSONValue] = [
        "runId": string, "dataset": string, "commit": string, "repository": string,
    ]
}
