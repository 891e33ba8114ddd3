import DataPlane
import Foundation

/// One result of a liveness or readiness probe (/healthz, /readyz).
public struct HealthCheck: Sendable {
    public let name: String
    public let ok: Bool
    public let detail: String

    public init(name: String, ok: Bool, detail: String) {
        self.name = name
        self.ok = ok
        self.detail = detail
    }
}

/// A daemon the HTTP endpoint probes, from other threads after start().
public protocol ProbedDaemon: LoopDaemon {
    /// Everything before the loop runs: checks, programs, maps, sockets. Throws what stops it.
    func start() throws
    /// Liveness: the loop turned within `maxAge` seconds.
    func livenessCheck(maxAge: Double) -> HealthCheck
    /// Readiness: what must hold for traffic to be sent its way.
    func readinessChecks() -> [HealthCheck]
}

enum Probes {
    /// The loop turned within `maxAge` seconds of `now` (it wakes at least once a second);
    /// `lastTurn` 0: it never ran.
    static func loop(lastTurn: UInt64, now: UInt64, maxAge: Double) -> HealthCheck {
        let age = lastTurn == 0 ? Double.infinity : Double(now &- lastTurn) / 1e9
        return HealthCheck(name: "loop", ok: age <= maxAge,
                           detail: lastTurn == 0 ? "not started" : String(format: "last turn %.1f s ago", age))
    }

    /// Our TC filter (handle, priority) is still the program we attached on each interface:
    /// `attached` maps each interface name to its ifindex and our program's id.
    static func tcPrograms(_ names: [String], attached: [String: (ifindex: UInt32, programID: UInt32)],
                           handle: UInt32, priority: UInt32) -> HealthCheck {
        var wrong: [String] = []
        for name in names {
            guard let a = attached[name] else {
                wrong.append("\(name): not attached")
                continue
            }
            let found = try? TCAttachment.query(ifindex: a.ifindex, direction: .ingress, handle: handle, priority: priority)
            if found != a.programID {
                wrong.append("\(name): tc program \(found.map(String.init) ?? "none"), expected \(a.programID)")
            }
        }
        return HealthCheck(name: "programs", ok: wrong.isEmpty,
                           detail: wrong.isEmpty ? names.map { "\($0)=tc" }.joined(separator: ",") : wrong.joined(separator: "; "))
    }

    /// The signaling loop turns (within 2 s) and no stop was asked for.
    static func signaling(_ live: HealthCheck, stopping: Bool) -> HealthCheck {
        HealthCheck(name: "signaling", ok: live.ok && !stopping, detail: stopping ? "stopping" : live.detail)
    }
}
