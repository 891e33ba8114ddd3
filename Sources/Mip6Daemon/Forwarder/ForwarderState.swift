import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc

/// The forwarder's counters (store side; the data plane's are in mip6_counters).
public struct ForwarderCounters: Codable, Sendable, Equatable {
    public var lists: UInt64 = 0
    public var watchBreaks: UInt64 = 0
    public var upserts: UInt64 = 0
    public var deletes: UInt64 = 0
    public var expirations: UInt64 = 0
    public var heartbeatFailures: UInt64 = 0
    /// Times forwarding stopped because the maps could not be shown current.
    public var syncLosses: UInt64 = 0
    public var mapUpdateFailures: UInt64 = 0
    /// Stored values that name no home address of --home-prefix or cannot be read.
    public var invalidRecords: UInt64 = 0
    /// Bindings left out: the binding table (--max-bindings) is full.
    public var cacheFull: UInt64 = 0
    public init() {}
}

/// `<state-dir>/forwarder.json`, for `mip6 forwarder status`.
public struct ForwarderState: StateFile, Sendable {
    public struct Interface: Codable, Sendable, Equatable {
        public var attach: String
        public var ifindex: UInt32
        public var programID: UInt32
    }

    public var pid: Int32
    public var startedAt: Date
    public var forwarderID: String
    public var storePrefix: String
    /// The maps may be used: MIP6_CFG_ENABLED is set.
    public var synced: Bool
    /// Why not, while not.
    public var notSyncedReason: String?
    public var revision: Int64
    public var lagMilliseconds: Double
    /// Start -> first list in the maps, ms.
    public var firstSyncMilliseconds: Double?
    public var bindings: Int
    public var maxBindings: Int
    public var interfaces: [String: Interface]
    public var counters: ForwarderCounters
    /// A replica's acceptance of a BU -> its binding in these maps, ms (the last 4096 watched).
    public var convergence: ConvergenceSummary?

    public static let fileName = "forwarder.json"

    /// The pid, while that forwarder runs (alive and still a mip6); nil otherwise.
    public var runningPid: Int32? {
        guard pid > 0, (try? Syscall.call("kill(0)") { kill(pid, 0) }) != nil,
              (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("mip6") == true else { return nil }
        return pid
    }
}

extension ForwarderDaemon {
    /// Values in the store that did not decode are counted by the store client.
    var countersNow: ForwarderCounters {
        var c = counters
        c.invalidRecords += feed?.store.invalidValues ?? 0
        return c
    }

    func writeState() {
        lastStateWrite = clock.nanoseconds()
        stateDirty = false
        let state = ForwarderState(
            pid: getpid(), startedAt: startedAt, forwarderID: options.store.replicaID, storePrefix: options.store.prefix,
            synced: forwarding, notSyncedReason: notSynced, revision: sync.revision,
            lagMilliseconds: sync.lagMilliseconds(wallNs: StoreReplica.wallNanoseconds()),
            firstSyncMilliseconds: firstSyncMilliseconds, bindings: cache?.count ?? 0, maxBindings: cache?.capacity ?? 0,
            interfaces: attachments.mapValues { .init(attach: $0.how.label, ifindex: $0.ifindex, programID: $0.programID) },
            counters: countersNow, convergence: convergence.summary)
        shared.write { $0 = state }
        do { try state.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }

    public var publishedState: ForwarderState? { shared.read { $0 } }

    /// Liveness: the loop turned within `maxAge` seconds.
    public func livenessCheck(maxAge: Double = 5) -> HealthCheck {
        Probes.loop(lastTurn: lastLoopTurnNanoseconds, now: clock.nanoseconds(), maxAge: maxAge)
    }

    /// Readiness: our programs attached, and synced with the store (forwarding).
    public func readinessChecks() -> [HealthCheck] {
        let wrong = ProgramAttachment.wrong(attachments, interfaces: options.interfaces)
        let s = publishedState
        return [
            .init(name: "programs", ok: wrong.isEmpty, detail: wrong.isEmpty ? "attached" : wrong.joined(separator: "; ")),
            .init(name: "store", ok: s?.synced == true,
                  detail: s.map { $0.synced ? String(format: "synced, lag %.0f ms", $0.lagMilliseconds) : ($0.notSyncedReason ?? "not synced") }
                      ?? "starting"),
            livenessCheck(maxAge: 2),
        ]
    }

    /// Data-plane counters by name.
    public func dataPlaneCounters() -> [(name: String, value: UInt64)] { (try? maps.readCounters()) ?? [] }
}
