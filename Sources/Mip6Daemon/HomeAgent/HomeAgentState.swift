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
            authRefusals: Dictionary(uniqueKeysWithValues: c.authRefusals.map { ("\($0.key)", $0.value) }))
        shared.write { $0.state = state }
        do { try state.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
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

    public static let fileName = "controlplane.json"
}
