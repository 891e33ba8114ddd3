import CMip6
import ControlPlane
import DataPlane
import Foundation

extension MobileAccessGatewayDaemon {
    // Health, called from other threads after start() (the HTTP endpoint).

    public typealias Check = HealthCheck

    public var publishedStatus: MobileAccessGatewayPublished? { shared.read { $0.status } }

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        Probes.loop(lastTurn: loop.lastTurnNanoseconds, now: clock.nanoseconds(), maxAge: maxAge)
    }

    /// Readiness: our TC programs are the ones attached to every access link and the core
    /// interface, forwarding is on in the config map, a policy is in force, the loop turns.
    public func readinessChecks() -> [Check] {
        var checks = [Probes.tcPrograms(options.accessInterfaces + [options.coreInterface], attached: shared.read { $0.attached },
                                        handle: Self.tcHandle, priority: Self.tcPriority)]
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_MAG_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_mag_config unreadable" : "mip6_mag_config enabled"))
        let status = publishedStatus
        checks.append(Check(name: "policy", ok: status != nil,
                            detail: status.map { "\($0.policyMobileNodes) mobile nodes" } ?? "not loaded"))
        checks.append(Probes.signaling(livenessCheck(maxAge: 2), stopping: loop.stopRequested))
        return checks
    }

    /// Data-plane counters by name, read from the maps now.
    public func dataPlaneCounters() -> [String: UInt64] { (try? maps.counterValues()) ?? [:] }
}
