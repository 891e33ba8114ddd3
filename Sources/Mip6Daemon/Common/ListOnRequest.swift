import Foundation
import Glibc
import ServiceLifecycle
import UnixSignals

/// A list a daemon writes only when asked (SIGUSR1) and at shutdown, encoded off its loop:
/// the LMA's bindings, the MAG's Binding Update List. A list rewritten on the loop every
/// 200 ms would cost time that grows with the number of nodes (perf/README.md), so the CLI
/// asks for a list instead, and can tell the one written for it by `takenAtNanoseconds`.
public protocol ListOnRequest: StateFile {
    var pid: Int32 { get }
    /// CLOCK_REALTIME when the loop copied the entries, nanoseconds.
    var takenAtNanoseconds: UInt64 { get }
    /// What the CLI calls it in its notes ("binding list").
    static var listName: String { get }
}

/// CLOCK_REALTIME in nanoseconds: the daemon stamps its list with it and the CLI its request,
/// so the two compare across processes.
public func realtimeNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// What the CLI got for its request: the list written for it (`fresh`), or the last one
/// written, or none.
public struct ListReply<List: ListOnRequest> {
    public var list: List?
    /// The list was written for this request (not an older one).
    public var fresh: Bool
    /// The daemon named in the state file was alive when asked.
    public var running: Bool
    public var pid: Int32
    public var wait: Double

    public var takenAt: Date? { list.map { Date(timeIntervalSince1970: Double($0.takenAtNanoseconds) / 1e9) } }

    /// What stderr says when the list is not the one asked for, or missing; nil for a fresh list.
    public func note(stateDir: String) -> String? {
        if fresh { return nil }
        let daemon = "the daemon (pid \(pid))"
        guard let takenAt else {
            return "mip6: no \(List.listName) in \(stateDir): "
                + (running ? "\(daemon) did not write one within \(wait) s" : "\(daemon) is not running and left none")
        }
        return "mip6: " + (running ? "\(daemon) did not answer within \(wait) s" : "\(daemon) is not running")
            + "; the \(List.listName) written at \(takenAt) follows"
    }
}

extension ListOnRequest {
    /// Whether this list was written by `pid` for a request made at `requestedAt` (or later).
    public func answers(pid: Int32, requestedAt: UInt64) -> Bool {
        self.pid == pid && takenAtNanoseconds >= requestedAt
    }

    /// Asks daemon `pid` for its list (SIGUSR1) and waits up to `wait` seconds for one written
    /// for this request; else the last list written, if any. `isRunning` and `ask` are the
    /// signals (tests replace them).
    public static func request(from pid: Int32, stateDir: String, wait: Double,
                               isRunning: (Int32) -> Bool = { kill($0, 0) == 0 },
                               ask: (Int32) -> Bool = { kill($0, SIGUSR1) == 0 }) -> ListReply<Self> {
        let requestedAt = realtimeNanoseconds()
        let running = isRunning(pid)
        var reply = ListReply<Self>(list: nil, fresh: false, running: running, pid: pid, wait: wait)
        if running && ask(pid) {
            let deadline = Date().addingTimeInterval(wait)
            repeat {
                if let l = try? read(stateDir: stateDir), l.answers(pid: pid, requestedAt: requestedAt) {
                    reply.list = l
                    reply.fresh = true
                    return reply
                }
                usleep(10_000)
            } while Date() < deadline
        }
        reply.list = try? read(stateDir: stateDir)
        return reply
    }
}

/// A daemon that writes its list when asked (`ListOnRequest`).
public protocol ListDumpingDaemon: LoopDaemon {
    /// Write the list soon, from the loop's copy. Thread-safe.
    func requestListDump()
}

/// SIGUSR1 -> `requestListDump()` for as long as the group runs: how the CLI asks the running
/// daemon for its list. The caller traps the signal (creates `signals`) before the daemon
/// starts and writes its pid: SIGUSR1's default action would end the process.
public struct DumpListOnUser1<Daemon: ListDumpingDaemon>: Service {
    let box: DaemonService<Daemon>.Box
    let signals: UnixSignalsSequence

    public init(box: DaemonService<Daemon>.Box, signals: UnixSignalsSequence) {
        self.box = box
        self.signals = signals
    }

    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            box.daemon.requestListDump()
        }
    }
}
