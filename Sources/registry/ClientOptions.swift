import ArgumentParser
import Foundation
import RegistryClient
import RegistryCore

/// Where the registry is and who is calling; flags win over `REGISTRY_URL` and `REGISTRY_TOKEN`.
struct ClientOptions: ParsableArguments {
    @Option(help: "The registry's URL (default: $REGISTRY_URL or http://127.0.0.1:8080).")
    var url: String?

    @Option(help: "The bearer token (default: $REGISTRY_TOKEN).")
    var token: String?

    @Option(
        help: ArgumentHelp(
            "Also trust this PEM CA certificate for an https registry (default: $REGISTRY_CA_CERT).",
            discussion: "The system's trusted roots are always trusted as well."))
    var caCert: String?

    @Option(
        name: .customLong("allow-artifact-host"),
        help: ArgumentHelp(
            "Also send the token to this host when the registry advertises it as artifactsURL (repeatable; default: "
                + "the comma-separated $REGISTRY_ALLOW_ARTIFACT_HOSTS).",
            discussion: """
                By default the token goes only to the --url host; an artifactsURL elsewhere is refused with \
                UNTRUSTED_ARTIFACT_URL, and so is an http:// one when --url is https://, whatever this allows.
                """))
    var allowedArtifactHosts: [String] = []

    @Flag(help: "Print JSON instead of text.")
    var json = false

    private var caFile: String? {
        caCert ?? ProcessInfo.processInfo.environment["REGISTRY_CA_CERT"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func validate() throws {
        do {
            _ = try TrustedHTTPClients.client(trusting: caFile)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    var client: RegistryClient {
        let environment = ProcessInfo.processInfo.environment
        return RegistryClient(
            baseURL: url ?? environment["REGISTRY_URL"] ?? "http://127.0.0.1:8080",
            token: token ?? environment["REGISTRY_TOKEN"],
            // `validate` made (and cached) the client, so this does not fail.
            httpClient: (try? TrustedHTTPClients.client(trusting: caFile)) ?? .shared,
            allowedArtifactHosts: Set(artifactHosts))
    }

    /// `--allow-artifact-host`, else `REGISTRY_ALLOW_ARTIFACT_HOSTS`.
    private var artifactHosts: [String] {
        if !allowedArtifactHosts.isEmpty { return allowedArtifactHosts }
        let listed = ProcessInfo.processInfo.environment["REGISTRY_ALLOW_ARTIFACT_HOSTS"] ?? ""
        return listed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Prints `value` as JSON with `--json`, otherwise the text `describe` makes of it.
    func print<Value: Encodable>(_ value: Value, _ describe: (Value) -> String) throws {
        try Output.print(value, json: json, describe)
    }
}

/// What commands print.
enum Output {
    /// `value` as pretty JSON when `json`, otherwise the text `describe` makes of it.
    static func print<Value: Encodable>(_ value: Value, json: Bool, _ describe: (Value) -> String) throws {
        if json {
            let encoder = JSONCoding.encoder
            encoder.outputFormatting.insert(.prettyPrinted)
            Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            Swift.print(describe(value))
        }
    }
}

/// Parsing helpers for flag values.
enum Parse {
    /// `key=value` pairs as a dictionary; throws a validation error on anything else.
    static func tags(_ pairs: [String]) throws -> [String: String]? {
        guard !pairs.isEmpty else { return nil }
        var tags: [String: String] = [:]
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ValidationError("Tags are written key=value, got '\(pair)'.")
            }
            tags[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return tags
    }

    /// A JSON document given on the command line.
    static func json(_ text: String?) throws -> JSONValue? {
        guard let text else { return nil }
        do {
            return try JSONCoding.decode(JSONValue.self, from: Array(text.utf8))
        } catch {
            throw ValidationError("--metadata is not valid JSON.")
        }
    }
}

/// Text renderings of registry values.
enum Describe {
    static func model(_ model: Model) -> String {
        var lines = ["model \(model.name) (revision \(model.revision))"]
        if !model.description.isEmpty { lines.append("  description: \(model.description)") }
        lines.append("  created by \(model.createdBy) at \(Timestamp.format(model.createdAt))")
        lines.append("  approvals required: \(model.approvalPolicy.requiredApprovals)")
        lines += model.tags.sorted { $0.key < $1.key }.map { "  tag \($0.key)=\($0.value)" }
        return lines.joined(separator: "\n")
    }

    static func version(_ version: ModelVersion) -> String {
        var lines = [
            "\(version.model) version \(version.version): \(version.status.rawValue) (revision \(version.revision))",
            "  manifest \(version.manifestDigest), \(version.size) bytes",
            "  created by \(version.createdBy) at \(Timestamp.format(version.createdAt))",
        ]
        lines += version.tags.sorted { $0.key < $1.key }.map { "  tag \($0.key)=\($0.value)" }
        lines += version.approvals.map {
            "  \($0.decision.rawValue) by \($0.subject)" + ($0.comment.map { ": \($0)" } ?? "")
        }
        return lines.joined(separator: "\n")
    }

    static func stage(_ stage: Stage) -> String {
        "\(stage.model)@\(stage.stage) -> version \(stage.version) (revision \(stage.revision))"
    }
}
