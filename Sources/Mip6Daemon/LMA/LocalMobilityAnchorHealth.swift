import CMip6
import ControlPlane
import DataPlane
import Foundation

extension LocalMobilityAnchorDaemon {
    // Health, called from other threads after start() (the HTTP endpoint).

    public typealias Check = HealthCheck

    /// CLOCK_MONOTONIC ns of the loop's last turn (liveness); 0 before it started.
    public var lastLoopTurnNanoseconds: UInt64 { loop.lastTurnNanoseconds }

    /// The control plane's counters as of the loop's last drain, expiry or reload.
    public var publishedStatus: LocalMobilityAnchorStatus? { shared.read { $0.status } }

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        Probes.loop(lastTurn: lastLoopTurnNanoseconds, now: clock.nanoseconds(), maxAge: maxAge)
    }

    /// Readiness: our TC program is the one attached to every --interface, the config map
    /// says forwarding is on, a policy is in force, the signaling loop turns.
    public func readinessChecks() -> [Check] {
        var checks = [Probes.tcPrograms(options.interfaces, attached: shared.read { $0.attached },
                                        handle: Self.tcHandle, priority: Self.tcPriority)]
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_LMA_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_lma_config unreadable" : "mip6_lma_config enabled"))
        let status = publishedStatus
        let reloadNote = (status?.policyReloadFailures ?? 0) > 0 ? ", a reload failed since start: the previous policy is in force" : ""
        checks.append(Check(name: "policy", ok: status != nil,
                            detail: status.map { "\($0.policyMobileNodes) mobile nodes, \($0.policyMAGs) MAGs\(reloadNote)" } ?? "not loaded"))
        checks.append(Probes.signaling(livenessCheck(maxAge: 2), stopping: loop.stopRequested))
        return checks
    }

    /// Data-plane counters by name, read from the maps now.
    public func dataPlaneCounters() -> [String: UInt64] { (try? maps.counterValues()) ?? [:] }
}
