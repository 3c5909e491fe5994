import ArgumentParser
import RegistryClient
import RegistryCore

/// `registry model …`: models and their access lists.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Create, inspect and change models.",
        subcommands: [Create.self, Get.self, List.self, Update.self, AclGet.self, AclSet.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a model; you become its owner.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String
        @Option var description: String?
        @Option(name: .customLong("tag"), help: "A tag as key=value (repeatable).") var tags: [String] = []
        @Option(help: "Approvals a version needs.") var requiredApprovals: Int?

        func run() async throws {
            let model = try await options.client.createModel(
                name, description: description, tags: try Parse.tags(tags),
                approvalPolicy: requiredApprovals.map { ApprovalPolicy(requiredApprovals: $0) })
            try options.print(model, Describe.model)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String

        func run() async throws {
            try options.print(try await options.client.model(name), Describe.model)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the models you can see.")
        @OptionGroup var options: ClientOptions
        @Option var prefix: String?
        @Option(help: "Filter by tag, written key:value.") var tag: String?
        @Option var limit: Int?
        @Option var pageToken: String?

        func run() async throws {
            let page = try await options.client.models(prefix: prefix, tag: tag, limit: limit, pageToken: pageToken)
            try options.print(page) { page in
                (page.items.map { "\($0.name)\t\($0.description)" }
                    + (page.nextPageToken.map { ["next page: \($0)"] } ?? []))
                    .joined(separator: "\n")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a model's description, tags or policy.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String
        @Option var description: String?
        @Option(name: .customLong("tag"), help: "Replace the tags with these key=value pairs.") var tags: [String] = []
        @Option var requiredApprovals: Int?
        @Flag(
            inversion: .prefixedNo,
            help: "Whether versions must carry a signature by a trusted key to be created and promoted.")
        var requireSignature: Bool?
        @Option(
            name: .customLong("trusted-key"),
            help: "Replace the trusted keys with these public key files (repeatable).")
        var trustedKeys: [String] = []
        @Flag(help: "Trust no key any more.") var clearTrustedKeys = false
        @Option(help: "The model revision to change (default: the current one).") var revision: Int?

        func validate() throws {
            if clearTrustedKeys && !trustedKeys.isEmpty {
                throw ValidationError("Give either --trusted-key or --clear-trusted-keys.")
            }
        }

        func run() async throws {
            let client = options.client
            let current = try await client.model(name)
            let policy = requiredApprovals.map {
                ApprovalPolicy(requiredApprovals: $0, allowSelfApproval: current.approvalPolicy.allowSelfApproval)
            }
            var trust: TrustPolicy?
            if requireSignature != nil || !trustedKeys.isEmpty || clearTrustedKeys {
                var changed = current.trustPolicy
                if let requireSignature { changed.requireSignature = requireSignature }
                if !trustedKeys.isEmpty { changed.trustedKeys = try trustedKeys.map(KeyFiles.publicKey(at:)) }
                if clearTrustedKeys { changed.trustedKeys = [] }
                trust = changed
            }
            let model = try await client.updateModel(
                name, revision: revision ?? current.revision, description: description, tags: try Parse.tags(tags),
                approvalPolicy: policy, trustPolicy: trust)
            try options.print(model) { model in
                let keys = model.trustPolicy.trustedKeys.map { "  trusted key \($0.id) \($0)" }
                return ([Describe.model(model), "  signature required: \(model.trustPolicy.requireSignature)"] + keys)
                    .joined(separator: "\n")
            }
        }
    }

    struct AclGet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "acl-get", abstract: "Show a model's access list.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String

        func run() async throws {
            let list = try await options.client.accessList(model: name)
            try options.print(list) { list in
                (["revision \(list.revision)"] + list.grants.map { "\($0.subject)\t\($0.role.rawValue)" })
                    .joined(separator: "\n")
            }
        }
    }

    struct AclSet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "acl-set", abstract: "Replace a model's access list.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String
        @Option(name: .customLong("grant"), help: "A grant as subject=role (repeatable).") var grants: [String] = []
        @Option(help: "The model revision to change (default: the current one).") var revision: Int?

        func validate() throws { _ = try parsedGrants() }

        func run() async throws {
            let client = options.client
            let current = try await client.accessList(model: name)
            let list = try await client.setAccessList(
                model: name, grants: try parsedGrants(), revision: revision ?? current.revision)
            try options.print(list) { list in
                (["revision \(list.revision)"] + list.grants.map { "\($0.subject)\t\($0.role.rawValue)" })
                    .joined(separator: "\n")
            }
        }

        private func parsedGrants() throws -> [Grant] {
            try grants.map { text in
                guard let equals = text.lastIndex(of: "="),
                    let role = Role(rawValue: String(text[text.index(after: equals)...]))
                else {
                    throw ValidationError(
                        "Grants are written subject=role with role reader|writer|approver|deployer|owner.")
                }
                return Grant(subject: String(text[..<equals]), role: role)
            }
        }
    }
}
