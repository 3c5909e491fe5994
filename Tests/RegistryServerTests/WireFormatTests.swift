import Foundation
import RegistryAPI
import RegistryClient
import RegistryCore
import Testing

/// The exact JSON of the request and response bodies: field names, explicit nulls versus omitted fields, number and
/// time formats. These strings were recorded from the server's and the client's own body types before they became
/// one definition in RegistryAPI, so a change of the wire contract shows up here as a changed literal.
@Suite struct WireFormatTests {
    static let time = Date(timeIntervalSince1970: 1_700_000_000.123)
    static let digest = Digest(of: Array("chunk".utf8))

    func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONCoding.encode(value), as: UTF8.self)
    }

    /// Expects `value` to encode as exactly `expected`, and to decode from it as itself (what the other side reads).
    func expect<Value: Codable & Equatable>(
        _ value: Value, is expected: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let actual = try json(value)
        #expect(actual == expected, sourceLocation: sourceLocation)
        #expect(try JSONCoding.decode(Value.self, from: Array(expected.utf8)) == value, sourceLocation: sourceLocation)
    }

    static var rollout: Rollout {
        var rollout = Rollout(
            id: "ro_1", model: "fraud", stage: "production", version: 3, previousVersion: 2,
            steps: [5, 25, 50, 100], policy: RolloutPolicy(), createdBy: "alice", createdAt: time)
        rollout.stepIndex = 0
        rollout.weight = 5
        rollout.state = .progressing
        rollout.stepStartedAt = time
        rollout.reports = [
            "i1": InstanceReport(instance: "i1", state: .serving, requests: 10, errors: 1, time: time),
            "i2": InstanceReport(instance: "i2", region: "eu", state: .loaded, time: time),
        ]
        return rollout
    }

    static var stage: Stage {
        Stage(
            model: "fraud", stage: "production", version: 2, revision: 5, updatedBy: "alice", updatedAt: time,
            rolloutId: "ro_1")
    }

    @Test func resolution() throws {
        let stable = Resolution.Target(version: 2, manifestDigest: Self.digest, size: 10)
        var body = Resolution(
            model: "fraud", stage: "production", revision: 4, stable: stable, candidate: nil, rolloutId: nil,
            ttlSeconds: 60, artifactsURL: "http://127.0.0.1:9")
        try expect(
            body,
            is:
                #"{"artifactsURL":"http://127.0.0.1:9","candidate":null,"model":"fraud","revision":4,"rolloutId":null,"stable":{"manifestDigest":"sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b","size":10,"version":2},"stage":"production","ttlSeconds":60}"#
        )
        body.candidate = .init(
            version: 3, manifestDigest: Self.digest, size: 11, weight: 25, state: Rollout.State.progressing.rawValue)
        body.rolloutId = "ro_1"
        try expect(
            body,
            is:
                #"{"artifactsURL":"http://127.0.0.1:9","candidate":{"manifestDigest":"sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b","size":11,"state":"progressing","version":3,"weight":25},"model":"fraud","revision":4,"rolloutId":"ro_1","stable":{"manifestDigest":"sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b","size":10,"version":2},"stage":"production","ttlSeconds":60}"#
        )
    }

    @Test func stages() throws {
        var plain = Self.stage
        plain.rolloutId = nil
        try expect(
            StageResponse(plain),
            is:
                #"{"model":"fraud","revision":5,"rollout":null,"rolloutId":null,"stage":"production","updatedAt":"2023-11-14T22:13:20.123Z","updatedBy":"alice","version":2}"#
        )
        let rolling = StageResponse(Self.stage, rollout: Self.rollout)
        try expect(
            rolling,
            is:
                #"{"model":"fraud","revision":5,"rollout":{"createdAt":"2023-11-14T22:13:20.123Z","createdBy":"alice","id":"ro_1","model":"fraud","policy":{"autoAdvance":true,"bakeSeconds":300,"instanceWindowSeconds":300,"maxErrorRateIncrease":0.05,"minInstances":1,"minRequests":100,"quorum":1},"previousVersion":2,"reports":{"i1":{"errors":1,"instance":"i1","requests":10,"stableErrors":0,"stableRequests":0,"state":"serving","time":"2023-11-14T22:13:20.123Z"},"i2":{"errors":0,"instance":"i2","region":"eu","requests":0,"stableErrors":0,"stableRequests":0,"state":"loaded","time":"2023-11-14T22:13:20.123Z"}},"revision":1,"stage":"production","state":"progressing","stepIndex":0,"stepStartedAt":"2023-11-14T22:13:20.123Z","steps":[5,25,50,100],"updatedAt":"2023-11-14T22:13:20.123Z","version":3,"weight":5},"rolloutId":"ro_1","stage":"production","updatedAt":"2023-11-14T22:13:20.123Z","updatedBy":"alice","version":2}"#
        )
        try expect(
            ItemList(items: [StageResponse(plain)]),
            is:
                #"{"items":[{"model":"fraud","revision":5,"rollout":null,"rolloutId":null,"stage":"production","updatedAt":"2023-11-14T22:13:20.123Z","updatedBy":"alice","version":2}]}"#
        )
    }

    @Test func eventsTokensAndAccessLists() throws {
        let event = Event(id: 7, type: "version.created", time: Self.time, model: "fraud", data: ["version": 3])
        try expect(
            EventPage(items: [event], nextCursor: "9"),
            is:
                #"{"items":[{"data":{"version":3},"id":"7","model":"fraud","time":"2023-11-14T22:13:20.123Z","type":"version.created"}],"nextCursor":"9"}"#
        )
        let issued = IssuedToken(
            id: "tok1", subject: "bob", admin: false, canCreateModels: true, expiresAt: nil, token: "mr_secret",
            createdAt: Self.time)
        try expect(
            issued,
            is:
                #"{"admin":false,"canCreateModels":true,"createdAt":"2023-11-14T22:13:20.123Z","id":"tok1","subject":"bob","token":"mr_secret"}"#
        )
        let token = AccessToken(
            id: "tok1", subject: "bob", admin: false, canCreateModels: true, expiresAt: Self.time, tokenHash: "hash",
            createdBy: "admin", createdAt: Self.time)
        var revoked = token
        revoked.revokedAt = Self.time
        revoked.expiresAt = nil
        revoked.bootstrap = true
        try expect(
            ItemList(items: [token, revoked].map(TokenInfo.init)),
            is:
                #"{"items":[{"admin":false,"bootstrap":false,"canCreateModels":true,"createdAt":"2023-11-14T22:13:20.123Z","createdBy":"admin","expiresAt":"2023-11-14T22:13:20.123Z","id":"tok1","subject":"bob"},{"admin":false,"bootstrap":true,"canCreateModels":true,"createdAt":"2023-11-14T22:13:20.123Z","createdBy":"admin","id":"tok1","revokedAt":"2023-11-14T22:13:20.123Z","subject":"bob"}]}"#
        )
        let acl = AccessList(
            model: "fraud", grants: [Grant(subject: "bob", role: .reader)], revision: 2)
        try expect(acl, is: #"{"grants":[{"role":"reader","subject":"bob"}],"model":"fraud","revision":2}"#)
    }

    @Test func blobsAndErrors() throws {
        try expect(
            BlobCheckResult(missing: [Self.digest]),
            is: #"{"missing":["sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b"]}"#)
        try expect(
            BlobInfo(digest: Self.digest, size: 10),
            is: #"{"digest":"sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b","size":10}"#)
        let error = ErrorResponse(RegistryError(.modelNotFound, "No model 'x'.", details: ["model": "x"]))
        try expect(
            error, is: #"{"error":{"code":"MODEL_NOT_FOUND","details":{"model":"x"},"message":"No model 'x'."}}"#)
    }

    @Test func clientRequests() throws {
        try expect(RegistryClient.RolloutOptions(version: 3), is: #"{"version":3}"#)
        let options = RegistryClient.RolloutOptions(
            version: 3, steps: [10, 100], bakeSeconds: 0, autoAdvance: false, minInstances: 2, quorum: 0.5,
            instanceWindowSeconds: 30, maxErrorRateIncrease: 0.1, minRequests: 50)
        try expect(
            options,
            is:
                #"{"autoAdvance":false,"bakeSeconds":0,"instanceWindowSeconds":30,"maxErrorRateIncrease":0.1,"minInstances":2,"minRequests":50,"quorum":0.5,"steps":[10,100],"version":3}"#
        )
        try expect(
            RegistryClient.RolloutReport(instance: "i1", state: .loaded),
            is: #"{"errors":0,"instance":"i1","requests":0,"stableErrors":0,"stableRequests":0,"state":"loaded"}"#)
        let report = RegistryClient.RolloutReport(
            instance: "i1", region: "eu", state: .serving, requests: 10, errors: 1, stableRequests: 20,
            stableErrors: 2)
        try expect(
            report,
            is:
                #"{"errors":1,"instance":"i1","region":"eu","requests":10,"stableErrors":2,"stableRequests":20,"state":"serving"}"#
        )
    }

    /// The request bodies the client used to spell with private types of its own: nil fields are left out, and the
    /// flags it always sent (`admin`, `canCreateModels`, `dryRun`) still are.
    @Test func requestBodies() throws {
        let policy = ApprovalPolicy(requiredApprovals: 2)
        try expect(CreateModelRequest(name: "fraud"), is: #"{"name":"fraud"}"#)
        try expect(
            CreateModelRequest(name: "fraud", description: "d", tags: ["team": "risk"], approvalPolicy: policy),
            is:
                #"{"approvalPolicy":{"allowSelfApproval":false,"requiredApprovals":2,"revokeApprovalOnMetadataChange":false},"description":"d","name":"fraud","tags":{"team":"risk"}}"#
        )
        try expect(UpdateModelRequest(description: "d"), is: #"{"description":"d"}"#)
        try expect(
            AccessListRequest(grants: [Grant(subject: "bob", role: .owner)]),
            is: #"{"grants":[{"role":"owner","subject":"bob"}]}"#)
        try expect(
            CreateVersionRequest(manifestDigest: Self.digest, tags: ["k": "v"]),
            is:
                #"{"manifestDigest":"sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b","tags":{"k":"v"}}"#
        )
        try expect(UpdateVersionRequest(status: .archived), is: #"{"status":"archived"}"#)
        try expect(DecisionRequest(decision: .approve), is: #"{"decision":"approve"}"#)
        try expect(PromotionRequest(version: 2, reason: "go"), is: #"{"reason":"go","version":2}"#)
        try expect(ReasonRequest(), is: #"{}"#)
        try expect(
            CreateTokenRequest(subject: "bob", admin: false, canCreateModels: false, expiresAt: Self.time),
            is: #"{"admin":false,"canCreateModels":false,"expiresAt":"2023-11-14T22:13:20.123Z","subject":"bob"}"#)
        try expect(CollectGarbageRequest(dryRun: false), is: #"{"dryRun":false}"#)
        try expect(
            BlobCheckRequest(digests: [Self.digest]),
            is: #"{"digests":["sha256:6c87f68371b28954707ebb92afee7ccffb74c6f71ec8fea8a98cf6104289585b"]}"#)
    }

    /// What one side may leave out and the other still reads.
    @Test func lenientDecoding() throws {
        let report = try JSONCoding.decode(
            InstanceReportRequest.self, from: Array(#"{"instance":"i1","state":"loaded"}"#.utf8))
        #expect(report == InstanceReportRequest(instance: "i1", state: .loaded))
        let error = try JSONCoding.decode(
            ErrorResponse.self, from: Array(#"{"error":{"code":"UNAVAILABLE","message":"m"}}"#.utf8))
        #expect(error.registryError.code == .unavailable)
        #expect(error.registryError.details.isEmpty)
        // A registry that predates artifactsURL.
        let resolution = try JSONCoding.decode(
            Resolution.self,
            from: Array(
                #"{"candidate":null,"model":"m","revision":1,"rolloutId":null,"stable":{"manifestDigest":"\#(Self.digest)","size":1,"version":1},"stage":"s","ttlSeconds":60}"#
                    .utf8))
        #expect(resolution.artifactsURL == nil)
        #expect(resolution.candidate == nil)
    }

    @Test func pageLimitsAreClampedWithADefault() {
        #expect(PageLimit.clamp(nil) == PageLimit.default)
        #expect(PageLimit.clamp(0) == 1)
        #expect(PageLimit.clamp(5000) == PageLimit.maximum)
        #expect(PageLimit.clamp(25) == 25)
        #expect(PageLimit.default == 100 && PageLimit.maximum == 1000)
    }
}
