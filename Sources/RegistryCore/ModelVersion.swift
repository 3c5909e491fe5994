import Foundation

/// One immutable artifact of a model, identified by a per-model integer assigned by the registry.
public struct ModelVersion: Sendable, Equatable, Codable {
    public var model: String
    public var version: Int
    public var status: VersionStatus
    public var manifestDigest: Digest
    /// Total bytes of the files the manifest lists.
    public var size: Int64
    public var signature: String?
    public var metadata: JSONValue
    public var tags: [String: String]
    public var source: VersionSource
    public var createdBy: String
    public var createdAt: Date
    public var updatedAt: Date
    public var approvals: [Approval]
    public var revision: Int

    public init(
        model: String, version: Int, status: VersionStatus = .pending, manifestDigest: Digest, size: Int64,
        signature: String? = nil, metadata: JSONValue = .emptyObject, tags: [String: String] = [:],
        source: VersionSource = .init(), createdBy: String, createdAt: Date, updatedAt: Date? = nil,
        approvals: [Approval] = [], revision: Int = 1
    ) {
        self.model = model
        self.version = version
        self.status = status
        self.manifestDigest = manifestDigest
        self.size = size
        self.signature = signature
        self.metadata = metadata
        self.tags = tags
        self.source = source
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.approvals = approvals
        self.revision = revision
    }
}

/// Where a version is in its review.
public enum VersionStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending, approved, rejected, archived

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let status = VersionStatus(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "unknown status '\(raw)'; expected pending, approved, rejected or archived"))
        }
        self = status
    }
}

/// Lineage: the run, data and code a version came from.
public struct VersionSource: Sendable, Equatable, Codable {
    public var runId: String?
    public var dataset: String?
    public var commit: String?
    public var repository: String?

    public init(runId: String? = nil, dataset: String? = nil, commit: String? = nil, repository: String? = nil) {
        self.runId = runId
        self.dataset = dataset
        self.commit = commit
        self.repository = repository
    }
}

/// One reviewer's decision on a version.
public struct Approval: Sendable, Equatable, Codable {
    public var subject: String
    public var decision: Decision
    public var comment: String?
    public var time: Date

    public init(subject: String, decision: Decision, comment: String? = nil, time: Date) {
        self.subject = subject
        self.decision = decision
        self.comment = comment
        self.time = time
    }
}

public enum Decision: String, Sendable, Hashable, Codable {
    case approve, reject

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let decision = Decision(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "unknown decision '\(raw)'; expected approve or reject"))
        }
        self = decision
    }
}
