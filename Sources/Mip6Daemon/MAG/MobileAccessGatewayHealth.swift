import CMip6
import ControlPlane
import DataPlane
import Foundation

extension MobileAccessGatewayDaemon {
    // Health, called from other threads after start() (the HTTP endpoint).

    public typealias Check = HomeAgentDaemon.Check

    public var publishedStatus: MobileAccessGatewayPublished? { shared.read { $0.status } }

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        let last = loop.lastTurnNanoseconds
        let age = last == 0 ? Double.infinity : Double(clock.nanoseconds() &- last) / 1e9
        return Check(name: "loop", ok: age <= maxAge, detail: last == 0 ? "not started" : String(format: "last turn %.1f s ago", age))
    }

    /// Readiness: our TC programs are the ones attached to every access link and the core
    /// interface, forwarding is on in the config map, a policy is in force, the loop turns.
    public func readinessChecks() -> [Check] {
        var wrong: [String] = []
        let attached = shared.read { $0.attached }
        let names = options.accessInterfaces + [options.coreInterface]
        for name in names {
            guard let a = attached[name] else {
                wrong.append("\(name): not attached")
                continue
            }
            let found = try? TCAttachment.query(ifindex: a.ifindex, direction: .ingress, handle: Self.tcHandle, priority: Self.tcPriority)
            if found != a.programID {
                wrong.append("\(name): tc program \(found.map(String.init) ?? "none"), expected \(a.programID)")
            }
        }
        var checks = [Check(name: "programs", ok: wrong.isEmpty,
                            detail: wrong.isEmpty ? names.map { "\($0)=tc" }.joined(separator: ",") : wrong.joined(separator: "; "))]
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_MAG_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_mag_config unreadable" : "mip6_mag_config enabled"))
        let status = publishedStatus
        checks.append(Check(name: "policy", ok: status != nil,
                            detail: status.map { "\($0.policyMobileNodes) mobile nodes" } ?? "not loaded"))
        let live = livenessCheck(maxAge: 2)
        let stopping = loop.stopRequested
        checks.append(Check(name: "signaling", ok: live.ok && !stopping, detail: stopping ? "stopping" : live.detail))
        return checks
    }

    /// Data-plane counters by name, read from the maps now.
    public func dataPlaneCounters() -> [String: UInt64] { (try? maps.counterValues()) ?? [:] }
}
