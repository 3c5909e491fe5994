import Foundation

/// A progressive rollout of a candidate version on a stage: traffic moves from the stage's version (stable) to the
/// candidate in steps (5, 25, 50, 100 % by default), after the serving fleet reports the candidate loaded.
///
/// States: `warming` (no traffic until the fleet is warm) → `progressing` ↔ `paused` → `completed` (the stage now
/// points at the candidate) or `aborted` (all traffic back on stable at once).
public struct Rollout: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case warming, progressing, paused, completed, aborted

        /// Whether the rollout can still change.
        public var isActive: Bool { self != .completed && self != .aborted }
    }

    public var id: String
    public var model: String
    public var stage: String
    /// The candidate.
    public var version: Int
    /// The stable version, where traffic returns on abort.
    public var previousVersion: Int
    /// Exposure percentages in increasing order, the last one 100.
    public var steps: [Double]
    /// The step being exposed; -1 while warming.
    public var stepIndex: Int
    /// The candidate's current share of traffic in percent (0 while warming, after an abort, and 100 when completed).
    public var weight: Double
    public var state: State
    public var policy: RolloutPolicy
    /// When the current step started (the bake period runs from here).
    public var stepStartedAt: Date?
    public var reason: String?
    public var createdBy: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Bumped by every state or weight change (reports do not bump it).
    public var revision: Int
    /// The latest report of each serving instance, by instance name.
    public var reports: [String: InstanceReport]

    public init(
        id: String, model: String, stage: String, version: Int, previousVersion: Int, steps: [Double],
        policy: RolloutPolicy, createdBy: String, createdAt: Date
    ) {
        self.id = id
        self.model = model
        self.stage = stage
        self.version = version
        self.previousVersion = previousVersion
        self.steps = steps
        self.stepIndex = -1
        self.weight = 0
        self.state = .warming
        self.policy = policy
        self.stepStartedAt = nil
        self.reason = nil
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = createdAt
        self.revision = 1
        self.reports = [:]
    }

    /// A new random rollout id (`ro_` and 16 hex digits).
    public static func newId() -> String {
        var generator = SystemRandomNumberGenerator()
        let value: UInt64 = generator.next()
        let hex = String(value, radix: 16)
        return "ro_" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension Rollout {
    /// What a person can do to a rollout by hand: the last path segment of
    /// `POST /v1/models/{model}/stages/{stage}/rollouts/{rollout}/{action}`.
    public enum Action: String, Sendable, CaseIterable {
        case advance, pause, resume, abort

        /// The past tense, for the default reason ("paused by alice").
        public var verb: String {
            switch self {
            case .advance: "advanced"
            case .pause: "paused"
            case .resume: "resumed"
            case .abort: "aborted"
            }
        }
    }
}

/// How a rollout decides on its own.
public struct RolloutPolicy: Sendable, Equatable, Codable {
    /// Seconds each step is exposed before an automatic advance.
    public var bakeSeconds: Int
    /// Whether steps advance on their own after `bakeSeconds`.
    public var autoAdvance: Bool
    /// Instances that must report the candidate loaded before any traffic moves.
    public var minInstances: Int
    /// Share (0…1) of the instances seen within `instanceWindowSeconds` that must have the candidate loaded.
    public var quorum: Double
    /// An instance counts as present when it reported within this many seconds.
    public var instanceWindowSeconds: Int
    /// Abort when the candidate's error rate exceeds the stable version's by more than this (0…1)…
    public var maxErrorRateIncrease: Double
    /// …once the candidate has served at least this many requests.
    public var minRequests: Int

    public init(
        bakeSeconds: Int = 300, autoAdvance: Bool = true, minInstances: Int = 1, quorum: Double = 1,
        instanceWindowSeconds: Int = 300, maxErrorRateIncrease: Double = 0.05, minRequests: Int = 100
    ) {
        self.bakeSeconds = bakeSeconds
        self.autoAdvance = autoAdvance
        self.minInstances = minInstances
        self.quorum = quorum
        self.instanceWindowSeconds = instanceWindowSeconds
        self.maxErrorRateIncrease = maxErrorRateIncrease
        self.minRequests = minRequests
    }

    /// Throws `INVALID_ARGUMENT` for values outside their ranges.
    public func validate() throws {
        func invalid(_ field: String, _ message: String) -> RegistryError {
            RegistryError.invalidArgument(message, field: field)
        }
        guard (0...86_400).contains(bakeSeconds) else { throw invalid("bakeSeconds", "bakeSeconds must be 0…86400.") }
        guard (0...100_000).contains(minInstances) else {
            throw invalid("minInstances", "minInstances must be 0…100000.")
        }
        guard quorum > 0, quorum <= 1 else { throw invalid("quorum", "quorum must be in (0, 1].") }
        guard (1...86_400).contains(instanceWindowSeconds) else {
            throw invalid("instanceWindowSeconds", "instanceWindowSeconds must be 1…86400.")
        }
        guard maxErrorRateIncrease >= 0, maxErrorRateIncrease <= 1 else {
            throw invalid("maxErrorRateIncrease", "maxErrorRateIncrease must be 0…1.")
        }
        guard minRequests >= 0 else { throw invalid("minRequests", "minRequests must not be negative.") }
    }
}

/// What one serving instance last said about a rollout.
public struct InstanceReport: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case loaded, serving, failed
    }

    public var instance: String
    public var region: String?
    /// The instance's state with respect to the candidate.
    public var state: State
    /// Requests the candidate served on this instance, and how many failed (cumulative).
    public var requests: Int
    public var errors: Int
    /// Requests the stable version served on this instance during the rollout, and how many failed (cumulative).
    public var stableRequests: Int
    public var stableErrors: Int
    public var time: Date

    public init(
        instance: String, region: String? = nil, state: State, requests: Int = 0, errors: Int = 0,
        stableRequests: Int = 0, stableErrors: Int = 0, time: Date
    ) {
        self.instance = instance
        self.region = region
        self.state = state
        self.requests = requests
        self.errors = errors
        self.stableRequests = stableRequests
        self.stableErrors = stableErrors
        self.time = time
    }
}

extension InstanceReport {
    /// The largest request count a report may carry (2^50): far above any real counter, and low enough that the
    /// counts of every instance of a rollout add up without overflowing.
    public static let maxCount = 1 << 50

    /// Throws `INVALID_ARGUMENT` unless every count is within 0…`maxCount` and errors do not exceed requests.
    public static func validateCounts(requests: Int, errors: Int, stableRequests: Int, stableErrors: Int) throws {
        let counts = [
            ("requests", requests), ("errors", errors), ("stableRequests", stableRequests),
            ("stableErrors", stableErrors),
        ]
        for (field, value) in counts where !(0...maxCount).contains(value) {
            throw RegistryError.invalidArgument("\(field) must be between 0 and \(maxCount).", field: field)
        }
        guard errors <= requests else {
            throw RegistryError.invalidArgument("errors cannot exceed requests.", field: "errors")
        }
        guard stableErrors <= stableRequests else {
            throw RegistryError.invalidArgument("stableErrors cannot exceed stableRequests.", field: "stableErrors")
        }
    }
}

/// What a rollout's instances reported within its policy's window: all a decision needs, and what a store can
/// compute with one aggregate query instead of loading every report. Counts are summed as `Double`, so that many
/// instances' counts (and reports stored before the count limits) add up without overflowing.
public struct ReportSummary: Sendable, Equatable {
    /// Instances that reported within the window.
    public var present: Int
    /// Of those, how many have the candidate loaded or serving.
    public var warm: Int
    /// One instance whose latest report within the window is `failed`, if any.
    public var failedInstance: String?
    public var requests: Double
    public var errors: Double
    public var stableRequests: Double
    public var stableErrors: Double

    public init(
        present: Int = 0, warm: Int = 0, failedInstance: String? = nil, requests: Double = 0, errors: Double = 0,
        stableRequests: Double = 0, stableErrors: Double = 0
    ) {
        self.present = present
        self.warm = warm
        self.failedInstance = failedInstance
        self.requests = requests
        self.errors = errors
        self.stableRequests = stableRequests
        self.stableErrors = stableErrors
    }

    /// The summary of `reports` at `now` under `policy`'s window.
    public init(_ reports: some Sequence<InstanceReport>, policy: RolloutPolicy, now: Date) {
        self.init()
        let since = ReportSummary.windowStart(policy: policy, now: now)
        for report in reports where report.time >= since {
            present += 1
            if report.state == .loaded || report.state == .serving { warm += 1 }
            if report.state == .failed, failedInstance.map({ report.instance < $0 }) ?? true {
                failedInstance = report.instance
            }
            requests += Double(report.requests)
            errors += Double(report.errors)
            stableRequests += Double(report.stableRequests)
            stableErrors += Double(report.stableErrors)
        }
    }

    /// The oldest report time that still counts at `now`.
    public static func windowStart(policy: RolloutPolicy, now: Date) -> Date {
        now.addingTimeInterval(-TimeInterval(policy.instanceWindowSeconds))
    }
}

/// The rules of rollouts, shared by every store (like the rest of `Transitions`).
public enum RolloutRules {
    public static let defaultSteps: [Double] = [5, 25, 50, 100]

    /// What a change did, for the stage, its history, the audit log and the events.
    public enum Change: Sendable, Equatable {
        /// The weight moved to a new step (or exposure began).
        case step
        case pause
        case resume
        /// The candidate took all traffic: the stage now points at it.
        case complete
        /// All traffic is back on the stable version.
        case abort
        /// A report was recorded and nothing else changed.
        case report
    }

    /// Throws `INVALID_ARGUMENT` unless `steps` rise strictly within (0, 100] and end at 100.
    public static func validate(steps: [Double]) throws {
        guard !steps.isEmpty, steps.count <= 20, steps.last == 100,
            zip(steps, steps.dropFirst()).allSatisfy({ $0 < $1 }), steps.allSatisfy({ $0 > 0 && $0 <= 100 })
        else {
            throw RegistryError.invalidArgument(
                "steps must rise strictly from above 0 to exactly 100, at most 20 of them (for example [5, 25, 50, 100]).",
                field: "steps")
        }
    }

    /// Moves to the next step by hand or after a bake; the step after the last completes the rollout.
    public static func advance(_ rollout: inout Rollout, now: Date) throws -> Change {
        guard rollout.state == .warming || rollout.state == .progressing else {
            throw invalid(rollout, "advance")
        }
        rollout.state = .progressing
        rollout.stepIndex += 1
        rollout.stepStartedAt = now
        if rollout.stepIndex >= rollout.steps.count - 1 {
            rollout.stepIndex = rollout.steps.count - 1
            rollout.weight = 100
            rollout.state = .completed
            return .complete
        }
        rollout.weight = rollout.steps[rollout.stepIndex]
        return .step
    }

    public static func pause(_ rollout: inout Rollout) throws -> Change {
        guard rollout.state == .progressing || rollout.state == .warming else { throw invalid(rollout, "pause") }
        rollout.state = .paused
        return .pause
    }

    /// Resumes a paused rollout: back to exposing its step, or to warming if it never exposed one.
    public static func resume(_ rollout: inout Rollout, now: Date) throws -> Change {
        guard rollout.state == .paused else { throw invalid(rollout, "resume") }
        rollout.state = rollout.stepIndex < 0 ? .warming : .progressing
        rollout.stepStartedAt = now
        return .resume
    }

    public static func abort(_ rollout: inout Rollout, reason: String?) throws -> Change {
        guard rollout.state.isActive else { throw invalid(rollout, "abort") }
        rollout.state = .aborted
        rollout.weight = 0
        rollout.reason = reason
        return .abort
    }

    /// Records `report`, then lets the rollout decide: a failed load aborts; a candidate whose error rate is too
    /// far above the stable version's aborts; a warm quorum starts exposure.
    public static func record(_ report: InstanceReport, in rollout: inout Rollout, now: Date) throws -> Change {
        try requireActive(rollout)
        rollout.reports[report.instance] = report
        return evaluate(&rollout, now: now)
    }

    /// The decision a rollout takes on its own at `now` (also run periodically): `.report` when none.
    public static func evaluate(_ rollout: inout Rollout, now: Date) -> Change {
        evaluate(&rollout, summary: ReportSummary(rollout.reports.values, policy: rollout.policy, now: now), now: now)
    }

    /// The decision a rollout takes on its own at `now`, given what its instances reported (`summary`, the reports
    /// within the policy's window, which a store may compute without loading them).
    public static func evaluate(_ rollout: inout Rollout, summary: ReportSummary, now: Date) -> Change {
        guard rollout.state.isActive else { return .report }
        if let failed = summary.failedInstance {
            _ = try? abort(&rollout, reason: "instance '\(failed)' failed to load version \(rollout.version)")
            return .abort
        }
        if let excess = errorRateExcess(summary, policy: rollout.policy) {
            _ = try? abort(
                &rollout,
                reason: String(
                    format: "candidate error rate exceeds stable by %.1f points (limit %.1f)", excess * 100,
                    rollout.policy.maxErrorRateIncrease * 100))
            return .abort
        }
        switch rollout.state {
        case .warming:
            let warm = summary.warm
            let needed = max(
                rollout.policy.minInstances, Int((Double(summary.present) * rollout.policy.quorum).rounded(.up)))
            if warm >= needed, warm > 0 || rollout.policy.minInstances == 0 {
                return (try? advance(&rollout, now: now)) ?? .report
            }
        case .progressing:
            if rollout.policy.autoAdvance, let started = rollout.stepStartedAt,
                now.timeIntervalSince(started) >= TimeInterval(rollout.policy.bakeSeconds)
            {
                return (try? advance(&rollout, now: now)) ?? .report
            }
        case .paused, .completed, .aborted:
            break
        }
        return .report
    }

    /// How far the candidate's error rate is above the stable version's, when that exceeds the policy's limit.
    static func errorRateExcess(_ summary: ReportSummary, policy: RolloutPolicy) -> Double? {
        guard summary.requests >= Double(max(policy.minRequests, 1)) else { return nil }
        let candidateRate = summary.errors / summary.requests
        let stableRate = summary.stableRequests > 0 ? summary.stableErrors / summary.stableRequests : 0
        let excess = candidateRate - stableRate
        return excess > policy.maxErrorRateIncrease ? excess : nil
    }

    /// Throws `INVALID_TRANSITION` unless `rollout` still takes reports.
    public static func requireActive(_ rollout: Rollout) throws {
        guard rollout.state.isActive else { throw invalid(rollout, "report to") }
    }

    private static func invalid(_ rollout: Rollout, _ action: String) -> RegistryError {
        RegistryError(
            .invalidTransition, "Cannot \(action) rollout \(rollout.id): it is \(rollout.state.rawValue).",
            details: ["state": .string(rollout.state.rawValue)])
    }
}
