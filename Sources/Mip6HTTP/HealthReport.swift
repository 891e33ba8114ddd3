import Foundation

/// The answer to `/healthz` or `/readyz`: named checks, healthy when all pass (and when there
/// are none). The endpoint answers 200 when `ok`, else 503, with one line per check.
public struct HealthReport: Sendable, Equatable {
    public struct Check: Sendable, Equatable {
        public var name: String
        public var ok: Bool
        /// Why it failed (or a fact worth showing when it passed); one line.
        public var detail: String

        public init(_ name: String, ok: Bool, detail: String = "") {
            self.name = name
            self.ok = ok
            self.detail = detail
        }
    }

    public var checks: [Check]

    public init(_ checks: [Check] = []) { self.checks = checks }

    public var ok: Bool { checks.allSatisfy(\.ok) }
    public var failing: [Check] { checks.filter { !$0.ok } }

    /// Kubernetes' verbose health format: `[+]name ok` / `[-]name failed: detail`, then a verdict.
    public func text(endpoint: String) -> String {
        var lines = checks.map { c in
            let detail = c.detail.isEmpty ? "" : ": \(c.detail)"
            return c.ok ? "[+]\(c.name) ok\(detail)" : "[-]\(c.name) failed\(detail)"
        }
        lines.append(ok ? "\(endpoint) ok" : "\(endpoint) check failed")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Liveness for a loop that does not run on Swift concurrency (the daemon's poll loop): the
/// loop calls `beat()` on every turn, `/healthz` calls `check(...)` from another thread.
/// The poll loop wakes at least once a second, so a few seconds of silence means it is stuck.
public final class Heartbeat: Sendable {
    private let last = Locked<UInt64?>(nil)

    public init() {}

    /// Records a turn of the loop. One uncontended lock: cheap enough for every turn.
    public func beat() { last.withLock { $0 = Self.now() } }

    /// Passes when the last beat is at most `maxAge` seconds old.
    public func check(_ name: String = "loop", maxAge: Double = 5) -> HealthReport.Check {
        guard let t = last.withLock({ $0 }) else { return .init(name, ok: false, detail: "the loop has not started") }
        let age = Double(Self.now() &- t) / 1e9
        if age <= maxAge { return .init(name, ok: true) }
        return .init(name, ok: false, detail: "no turn for \(String(format: "%.1f", age)) s (limit \(String(format: "%g", maxAge)) s)")
    }

    /// CLOCK_MONOTONIC in nanoseconds: wall-clock steps must not fake a stall.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// A value behind an NSLock (Synchronization.Mutex needs macOS 15; the package says 13).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
