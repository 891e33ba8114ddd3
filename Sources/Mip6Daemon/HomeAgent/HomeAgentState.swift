import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension HomeAgentDaemon {
    /// The control-plane counters for `mip6 stats` and /metrics.
    func writeState() {
        lastStateWrite = clock.nanoseconds()
        stateDirty = false
        let c = core.counters
        var drops: [String: UInt64] = [:]
        for (k, v) in c.drops { drops[k.rawValue] = v }
        var acks: [String: UInt64] = [:]
        for (k, v) in c.acksByStatus { acks[String(k)] = v }
        let state = ControlPlaneState(
            pid: getpid(), startedAt: startedAt, bindings: core.cache.count, dadInProgress: dadPending.count,
            bindingUpdates: c.bindingUpdates, acksByStatus: acks, bindingErrorsSent: c.bindingErrorsSent,
            deregistrations: c.deregistrations, expirations: c.expirations, drops: drops,
            sendFailures: sendFailures, mapUpdateFailures: mapUpdateFailures, puntsMalformed: puntsMalformed,
            authenticatedBindingUpdates: c.authenticatedBindingUpdates,
            authRefusals: Dictionary(uniqueKeysWithValues: c.authRefusals.map { ("\($0.key)", $0.value) }),
            store: options.store.map { s in
                StoreStatus(replicaID: s.replicaID, synced: storeState.synced, lagMilliseconds: storeLagMilliseconds,
                            announced: storeState.announced != .withdrawn, announcement: storeState.announced.rawValue, refusing: core.refusingRegistrations != nil,
                            inFlightBatches: storeState.inFlight.count + storeState.queued.count, counters: storeCountersNow,
                            convergence: storeState.convergence.summary, commits: storeState.commitLatency.summary)
            },
            storeRefusals: c.storeRefusals,
            tunnelFragmented: fragmented.sent, tunnelFragmentedDrops: fragmented.drops,
            tunnelPacketTooBig: fragmented.packetTooBig, tunnelErrors: fragmented.otherErrors,
            tunnelIgnored: fragmented.ignored)
        shared.write { $0.state = state }
        do { try state.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }
}

extension ControlPlaneState {
    /// The pid of the home agent whose state file is in `stateDir`, while it runs: the pid
    /// must be alive and still a mip6 (a pid the kernel gave to another program since does
    /// not count). Nil otherwise.
    public static func runningDaemon(stateDir: String) -> Int32? {
        guard let state = try? read(stateDir: stateDir), state.pid > 0,
              (try? Syscall.call("kill(0)") { kill(state.pid, 0) }) != nil,
              (try? String(contentsOfFile: "/proc/\(state.pid)/comm", encoding: .utf8))?.hasPrefix("mip6") == true
        else { return nil }
        return state.pid
    }
}

/// The control plane's counters, written to `<state-dir>/controlplane.json` for `mip6 stats`.
public struct ControlPlaneState: StateFile, Sendable {
    public var pid: Int32
    public var startedAt: Date
    public var bindings: Int
    public var dadInProgress: Int
    public var bindingUpdates: UInt64
    public var acksByStatus: [String: UInt64]
    public var bindingErrorsSent: UInt64
    public var deregistrations: UInt64
    public var expirations: UInt64
    public var drops: [String: UInt64]
    public var sendFailures: UInt64
    /// Bindings the data plane refused (their BAs withheld).
    public var mapUpdateFailures: UInt64 = 0
    public var puntsMalformed: UInt64
    /// RFC 4285: BUs that passed authentication, and refusals by reason (silent ones included).
    public var authenticatedBindingUpdates: UInt64 = 0
    public var authRefusals: [String: UInt64] = [:]
    /// The shared binding store (issue 12); nil without --store.
    public var store: StoreStatus?
    /// BUs answered 130 because the store could not take them.
    public var storeRefusals: UInt64 = 0
    /// RFC 2473 §7.1(b): packets sent as fragmented tunnel packets, and those punted for it but
    /// not sent, by reason (no_binding, expired, malformed, hop_limit, send_failed).
    public var tunnelFragmented: UInt64 = 0
    public var tunnelFragmentedDrops: [String: UInt64] = [:]
    /// ICMPv6 errors about our tunnel packets: Packet Too Big (the path MTU to a care-of address
    /// went down), and the others.
    public var tunnelPacketTooBig: UInt64 = 0
    public var tunnelErrors: UInt64 = 0
    /// Tunnel packets to us that the kernel reassembled (a fragmented reverse tunnel): not decapsulated.
    public var tunnelIgnored: UInt64 = 0

    public static let fileName = "controlplane.json"
}

/// `mip6 stats` and /readyz: the replica's view of the shared binding store.
public struct StoreStatus: Codable, Sendable, Equatable {
    public var replicaID: String
    /// The first list is in the maps.
    public var synced: Bool
    /// Age of the newest heartbeat the watch delivered, ms.
    public var lagMilliseconds: Double?
    public var announced: Bool
    /// withdrawn, preferred or lagging (announced with a longer AS path).
    public var announcement: String
    /// BUs are refused (130): the store does not answer.
    public var refusing: Bool
    public var inFlightBatches: Int
    public var counters: StoreCounters
    /// Bindings other replicas accepted: acceptance there -> in our maps, ms.
    public var convergence: ConvergenceSummary?
    /// Batches submitted -> committed (result back on the loop), ms.
    public var commits: ConvergenceSummary?
}
