import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension HomeAgentDaemon {
    // Health, called from other threads after start() (the HTTP endpoint).

    public typealias Check = HealthCheck

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        Probes.loop(lastTurn: lastLoopTurnNanoseconds, now: clock.nanoseconds(), maxAge: maxAge)
    }

    /// Readiness: our programs are the ones attached, the maps answer, the signaling loop turns.
    public func readinessChecks() -> [Check] {
        var checks: [Check] = []
        let wrong = ProgramAttachment.wrong(attachments, interfaces: options.interfaces)
        checks.append(Check(name: "programs", ok: wrong.isEmpty,
                            detail: wrong.isEmpty ? attachments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.how.label)" }.joined(separator: ",")
                                                  : wrong.joined(separator: "; ")))
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_config unreadable" : "mip6_config enabled"))
        checks.append(Probes.signaling(livenessCheck(maxAge: 2), stopping: loop.stopRequested))
        if let want = options.store {
            // Ready once the first list is in the maps, and while the watch keeps up with a
            // store that answers (a store nobody reaches makes every replica alike: stay).
            let s = publishedState?.store
            let lag = s?.lagMilliseconds
            let lagging = s?.refusing == false && (lag ?? 0) > Double(want.maxLagMilliseconds)
            checks.append(Check(name: "store", ok: s?.synced == true && !lagging,
                                detail: s.map { "\($0.synced ? "synced" : "listing"), lag \(lag.map { String(format: "%.0f ms", $0) } ?? "-")"
                                              + ($0.refusing ? ", refusing BUs (store unreachable)" : "") } ?? "starting"))
        }
        return checks
    }

    /// Per-binding traffic counters (one map scan; for /metrics).
    public func bindingTraffic() -> [(IPv6Address, mip6_binding_stats)] { (try? maps.readBindingStats()) ?? [] }

    /// Data-plane counters by name.
    public func dataPlaneCounters() -> [(name: String, value: UInt64)] { (try? maps.readCounters()) ?? [] }
}
