// The monotonic clock BPF reads, a lock for what the loop shares, and the pipe that wakes a poll loop.
import Foundation
import Glibc

/// CLOCK_MONOTONIC nanoseconds, the clock bpf_ktime_get_ns() reads.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A value behind a lock: the few things the daemon's loop shares with other threads.
public final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    public init(_ value: Value) { self.value = value }

    public func read<T>(_ body: (Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(value)
    }

    @discardableResult
    public func write<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A non-blocking pipe a poll loop watches, so other threads can wake it.
public final class WakePipe: @unchecked Sendable {
    public let readFD: Int32
    let writeFD: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        // Cannot fail short of fd exhaustion at start-up; then poll on -1 is simply never readable.
        if (try? Syscall.call("pipe") { pipe(&fds) }) == nil { fds = [-1, -1] }
        for fd in fds where fd >= 0 {
            _ = try? Syscall.call("fcntl(O_NONBLOCK)") { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            _ = try? Syscall.call("fcntl(FD_CLOEXEC)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    public func signal() {
        var b: UInt8 = 1
        _ = try? Syscall.call("write(wake pipe)") { write(writeFD, &b, 1) } // EAGAIN: a wake-up is already pending
    }

    public func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while ((try? Syscall.call("read(wake pipe)") { read(readFD, &buf, buf.count) }) ?? 0) > 0 {}
    }
}
