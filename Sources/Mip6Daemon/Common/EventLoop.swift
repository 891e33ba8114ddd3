import DataPlane
import Glibc

/// The one event loop every daemon runs on: poll(2) over the daemon's file descriptors (a
/// signaling ring buffer, netlink), a wake pipe that other threads use (stop, reload), and
/// the nearest of the daemon's timers. One thread; nothing blocks per message.
///
/// Each turn: the watched descriptors that are ready, in the order they were added; then
/// the wake-up (`onWake`), after which the loop returns if a stop was requested; then every
/// timer whose deadline has passed. The loop wakes at least once a second (liveness).
public final class EventLoop {
    public typealias Handler = () throws -> Void

    private var sources: [(fd: Int32, handler: Handler)] = []
    private var timers: [(deadline: () -> UInt64?, fire: Handler)] = []
    private let wake = WakePipe()
    private let clock: @Sendable () -> UInt64
    private let shared = Locked(Shared())
    private struct Shared {
        var lastTurnNs: UInt64 = 0
        var stopRequested = false
    }

    /// Called on the loop's thread after another thread's `wakeUp()` or `requestStop()`.
    public var onWake: Handler?

    public init(clock: @escaping @Sendable () -> UInt64 = { monotonicNanoseconds() }) {
        self.clock = clock
    }

    /// Calls `handler` on the loop's thread whenever `fd` polls readable.
    public func watch(_ fd: Int32, _ handler: @escaping Handler) {
        sources.append((fd, handler))
    }

    /// Calls `fire` once `deadline()` (CLOCK_MONOTONIC ns; nil: none now) has passed.
    /// The deadline is asked again every turn.
    public func timer(deadline: @escaping () -> UInt64?, _ fire: @escaping Handler) {
        timers.append((deadline, fire))
    }

    /// Wakes the loop from another thread. Thread-safe.
    public func wakeUp() { wake.signal() }

    /// `wakeUp` as a closure other threads and tasks may keep.
    public var waker: @Sendable () -> Void {
        let w = wake
        return { w.signal() }
    }

    /// Asks the loop to return after this turn's wake-up. Thread-safe; true the first time.
    @discardableResult
    public func requestStop() -> Bool {
        let first = shared.write { s -> Bool in
            defer { s.stopRequested = true }
            return !s.stopRequested
        }
        wake.signal()
        return first
    }

    public var stopRequested: Bool { shared.read { $0.stopRequested } }

    /// CLOCK_MONOTONIC ns of the loop's last turn (liveness); 0 before it started. Thread-safe.
    public var lastTurnNanoseconds: UInt64 { shared.read { $0.lastTurnNs } }

    /// Turns until a stop is requested; a handler's error ends the loop and is rethrown.
    public func run() throws {
        var fds = sources.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        fds.append(pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0))
        let wakeIndex = fds.count - 1
        while true {
            let now = clock()
            shared.write { $0.lastTurnNs = now }
            _ = try Syscall.poll(&fds, timeoutMilliseconds: timeoutMilliseconds(now: now))
            for (i, source) in sources.enumerated() where fds[i].revents != 0 {
                try source.handler()
            }
            if fds[wakeIndex].revents != 0 {
                wake.drain()
                try onWake?()
                if stopRequested { return }
            }
            let after = clock()
            for t in timers {
                if let d = t.deadline(), d <= after { try t.fire() }
            }
        }
    }

    private func timeoutMilliseconds(now: UInt64) -> Int32 {
        var next = now + 1_000_000_000
        for t in timers {
            if let d = t.deadline() { next = min(next, d) }
        }
        if next <= now { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, 1000))
    }
}
