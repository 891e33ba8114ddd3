// The one way this project makes a raw call into the kernel or libbpf: every bpf(2),
// libbpf, socket, netlink, poll, mount and file call goes through `Syscall`, which retries
// EINTR and throws a `SystemError` naming the operation and its `Errno` (as swift-system
// and SwiftNIO's System.swift do). Nothing else in the kernel library, the daemons, the test
// support or the benchmarks reads the global errno (Mip6HTTP, which links no BPF, has its own
// listen preflight).
import Glibc

/// An errno value as a type, not a bare Int32 (swift-system's `Errno`).
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// strerror(3).
    public var description: String { String(cString: strerror(rawValue)) }

    public static func == (lhs: Errno, rhs: Int32) -> Bool { lhs.rawValue == rhs }
    public static func != (lhs: Errno, rhs: Int32) -> Bool { lhs.rawValue != rhs }
    /// `case ENOENT, EEXIST:` in a switch over an `Errno`.
    public static func ~= (pattern: Int32, value: Errno) -> Bool { pattern == value.rawValue }
    /// Whether this is one of `codes` (`error.errno.is(EOPNOTSUPP, EINVAL)`).
    public func `is`(_ codes: Int32...) -> Bool { codes.contains(rawValue) }
}

/// A failed system or libbpf call: the operation, what it was applied to, and the errno.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    /// The C call, e.g. "bpf_map_update_elem" or "socket(AF_NETLINK)".
    public let operation: String
    public let errno: Errno
    /// What it was applied to (a map, a path, an interface), for the message.
    public let detail: String

    public init(_ operation: String, _ errno: Errno, _ detail: String = "") {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public init(_ operation: String, errno: Int32, _ detail: String = "") {
        self.init(operation, Errno(errno), detail)
    }

    public var description: String {
        let what = detail.isEmpty ? "" : " (\(detail))"
        return "\(operation)\(what): \(errno)"
    }
}

public enum Syscall {
    /// A POSIX call that returns -1 and sets errno: retried on EINTR, thrown otherwise.
    @inline(__always)
    @discardableResult
    public static func call<T: BinaryInteger>(_ operation: String, _ detail: @autoclosure () -> String = "",
                                              _ body: () -> T) throws(SystemError) -> T {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SystemError(operation, errno: e, detail())
        }
    }

    /// A libbpf call that returns -errno (some older paths return -1 with errno set):
    /// retried on EINTR, thrown otherwise.
    @inline(__always)
    @discardableResult
    public static func negErrno(_ operation: String, _ detail: @autoclosure () -> String = "",
                                _ body: () -> Int32) throws(SystemError) -> Int32 {
        while true {
            Glibc.errno = 0
            let rc = body()
            if rc >= 0 { return rc }
            let e = rc == -1 && Glibc.errno != 0 ? Glibc.errno : -rc
            if e == EINTR { continue }
            throw SystemError(operation, errno: e, detail())
        }
    }

    /// The result of a libbpf call already made (-errno, or -1 with errno set), for calls
    /// that cannot be interrupted (object and map set-up before load).
    @inline(__always)
    @discardableResult
    public static func check(_ rc: Int32, _ operation: String, _ detail: @autoclosure () -> String = "") throws(SystemError) -> Int32 {
        if rc >= 0 { return rc }
        throw SystemError(operation, errno: rc == -1 && Glibc.errno != 0 ? Glibc.errno : -rc, detail())
    }

    /// A call that returns NULL and sets errno (libbpf constructors).
    @inline(__always)
    public static func pointer<T>(_ operation: String, _ detail: @autoclosure () -> String = "",
                                  _ body: () -> T?) throws(SystemError) -> T {
        Glibc.errno = 0
        if let p = body() { return p }
        throw SystemError(operation, errno: Glibc.errno == 0 ? EINVAL : Glibc.errno, detail())
    }

    /// A call whose "absent" answer is ENOENT: true on success, false on ENOENT, thrown otherwise
    /// (bpf_map_lookup_elem, bpf_map_delete_elem, bpf_map_get_next_key).
    @inline(__always)
    public static func found(_ operation: String, _ detail: @autoclosure () -> String = "",
                             _ body: () -> Int32) throws(SystemError) -> Bool {
        do throws(SystemError) {
            try negErrno(operation, detail(), body)
            return true
        } catch {
            if error.errno == ENOENT { return false }
            throw error
        }
    }

    /// A call whose failure only matters as a yes/no (queries used for status display).
    @inline(__always)
    public static func succeeds(_ body: () -> Int32) -> Bool {
        while true {
            let rc = body()
            if rc >= 0 { return true }
            if rc == -EINTR || (rc == -1 && Glibc.errno == EINTR) { continue }
            return false
        }
    }

    /// poll(2) over `fds` for at most `timeoutMilliseconds` (-1: no limit). EINTR is a
    /// normal return with nothing ready: the caller's loop turns again.
    public static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        let n = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        if n >= 0 { return Int(n) }
        let e = Glibc.errno
        if e == EINTR {
            for i in fds.indices { fds[i].revents = 0 }
            return 0
        }
        throw SystemError("poll", errno: e)
    }
}

/// A file descriptor we own; closed on deinit.
public final class OwnedFD {
    public let raw: Int32
    public init(_ raw: Int32) { self.raw = raw }
    deinit { close(raw) }
}
