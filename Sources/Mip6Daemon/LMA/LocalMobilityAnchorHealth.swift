import CMip6
import ControlPlane
import DataPlane
import Foundation

extension LocalMobilityAnchorDaemon {
    // Health, called from other threads after start() (the HTTP endpoint).

    public typealias Check = HomeAgentDaemon.Check

    /// CLOCK_MONOTONIC ns of the loop's last turn (liveness); 0 before it started.
    public var lastLoopTurnNanoseconds: UInt64 { loop.lastTurnNanoseconds }

    /// The control plane's counters as of the loop's last drain, expiry or reload.
    public var publishedStatus: LocalMobilityAnchorStatus? { shared.read { $0.status } }

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        let last = lastLoopTurnNanoseconds
        let age = last == 0 ? Double.infinity : Double(clock.nanoseconds() &- last) / 1e9
        return Check(name: "loop", ok: age <= maxAge, detail: last == 0 ? "not started" : String(format: "last turn %.1f s ago", age))
    }

    /// Readiness: our TC program is the one attached to every --interface, the config map
    /// says forwarding is on, a policy is in force, the signaling loop turns.
    public func readinessChecks() -> [Check] {
        var checks: [Check] = []
        let attached = shared.read { $0.attached }
        var wrong: [String] = []
        for name in options.interfaces {
            guard let a = attached[name] else {
                wrong.append("\(name): not attached")
                continue
            }
            let found = try? TCAttachment.query(ifindex: a.ifindex, direction: .ingress, handle: Self.tcHandle, priority: Self.tcPriority)
            if found != a.programID {
                wrong.append("\(name): tc program \(found.map(String.init) ?? "none"), expected \(a.programID)")
            }
        }
        checks.append(Check(name: "programs", ok: wrong.isEmpty,
                            detail: wrong.isEmpty ? options.interfaces.map { "\($0)=tc" }.joined(separator: ",") : wrong.joined(separator: "; ")))
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_LMA_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_lma_config unreadable" : "mip6_lma_config enabled"))
        let status = publishedStatus
        let reloadNote = (status?.policyReloadFailures ?? 0) > 0 ? ", a reload failed since start: the previous policy is in force" : ""
        checks.append(Check(name: "policy", ok: status != nil,
                            detail: status.map { "\($0.policyMobileNodes) mobile nodes, \($0.policyMAGs) MAGs\(reloadNote)" } ?? "not loaded"))
        let live = livenessCheck(maxAge: 2)
        let stopping = loop.stopRequested
        checks.append(Check(name: "signaling", ok: live.ok && !stopping, detail: stopping ? "stopping" : live.detail))
        return checks
    }

    /// Data-plane counters by name, read from the maps now.
    public func dataPlaneCounters() -> [String: UInt64] { (try? maps.counterValues()) ?? [:] }
}
