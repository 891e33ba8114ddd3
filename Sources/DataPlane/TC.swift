// TC (cls_bpf direct-action) attachments: the bpf_tc_* calls (through the cmip6_ shim and
// Syscall) and the namespace bookkeeping they need.
import CMip6
import Foundation
import Glibc

/// The two hooks of an interface's clsact qdisc.
public enum TCDirection: String, Sendable, CaseIterable {
    case ingress, egress

    var attachPoint: UInt32 {
        switch self {
        case .ingress: return BPF_TC_INGRESS.rawValue
        case .egress: return BPF_TC_EGRESS.rawValue
        }
    }
}

/// A cls_bpf direct-action filter on an interface's clsact qdisc (bpf_tc_hook_create,
/// bpf_tc_attach). Unlike an XDP bpf_link, a TC filter outlives the process: `detach()`
/// or deinit removes it. Each daemon has a handle and priority of its own (mip6_shared.h),
/// never the `tc ... bpf da` default slot (handle 1, priority 1) that others use, and
/// replaces a filter in its slot only when that filter runs a program of ours (a stale one
/// left by a killed daemon). The clsact qdisc is created when absent and deleted
/// when the last attachment of this process on that interface goes, only if this process
/// created it (filters others added to it meanwhile go with it).
///
/// Netlink works in the calling thread's network namespace: the attachment remembers
/// it and detaches there, whichever thread drops it.
public final class TCAttachment {
    public let ifindex: UInt32
    public let direction: TCDirection
    public let handle: UInt32
    public let priority: UInt32
    /// The kernel's id of the attached program.
    public let programID: UInt32
    public private(set) var isAttached = true
    private let netns: NetnsHandle

    /// bpf_tc_hook_create (clsact, EEXIST tolerated) + bpf_tc_attach at (handle, priority).
    /// A filter already there is replaced only if `mayReplace` says yes for its program's
    /// name (a stale one of ours); otherwise EEXIST, and the other filter stays.
    public init(program: BPFProgram, ifindex: UInt32, direction: TCDirection, handle: UInt32, priority: UInt32,
                mayReplace: (_ programName: String) -> Bool) throws(SystemError) {
        self.ifindex = ifindex
        self.direction = direction
        self.handle = handle
        self.priority = priority
        netns = try NetnsHandle.current()
        try ClsactRegistry.retain(netns: netns.inode, ifindex: ifindex)
        var id: UInt32 = 0
        do throws(SystemError) {
            var replace = false
            if let existing = try Self.query(ifindex: ifindex, direction: direction, handle: handle, priority: priority) {
                let name = LoadedProgramInfo(id: existing)?.name ?? "?"
                guard mayReplace(name) else {
                    throw SystemError("bpf_tc_attach(\(direction.rawValue))", errno: EEXIST,
                                      "ifindex \(ifindex) already has a filter at handle \(handle) priority \(priority) running "
                                      + "program \(existing) (\(name)), which is not ours: left in place")
                }
                replace = true
            }
            try Syscall.negErrno("bpf_tc_attach(\(direction.rawValue))", "\(program.name) on ifindex \(ifindex)") {
                cmip6_tc_attach(Int32(ifindex), direction.attachPoint, program.fd, handle, priority,
                                replace ? BPF_TC_F_REPLACE.rawValue : 0, &id)
            }
        } catch {
            ClsactRegistry.release(netns: netns.inode, ifindex: ifindex)
            throw error
        }
        programID = id
    }

    deinit { try? detach() }

    /// bpf_tc_detach, then bpf_tc_hook_destroy when this was our last filter on a clsact we made.
    /// A vanished interface (or namespace) counts as detached.
    public func detach() throws(SystemError) {
        guard isAttached else { return }
        isAttached = false
        let (ifindex, point, handle, priority, inode) = (self.ifindex, direction.attachPoint, self.handle, self.priority, netns.inode)
        let rc = netns.perform {
            let rc = cmip6_tc_detach(Int32(ifindex), point, handle, priority)
            ClsactRegistry.release(netns: inode, ifindex: ifindex)
            return rc
        }
        if rc < 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL {
            try Syscall.check(rc, "bpf_tc_detach(\(direction.rawValue))", "ifindex \(ifindex)")
        }
    }

    /// Leaves the filter (and the clsact qdisc) in place for good: the home agent's data
    /// plane keeps forwarding after the daemon exits. `TCAttachment.remove` takes it away.
    public func keep() {
        guard isAttached else { return }
        isAttached = false
        let (ifindex, inode) = (self.ifindex, netns.inode)
        ClsactRegistry.forget(netns: inode, ifindex: ifindex)
    }

    /// bpf_tc_detach of a filter some earlier process left (see `keep()`), in the calling
    /// thread's namespace. False when there was none.
    @discardableResult
    public static func remove(ifindex: UInt32, direction: TCDirection, handle: UInt32, priority: UInt32) throws(SystemError) -> Bool {
        let rc = cmip6_tc_detach(Int32(ifindex), direction.attachPoint, handle, priority)
        if rc == -ENOENT || rc == -ENODEV || rc == -EINVAL { return false }
        try Syscall.check(rc, "bpf_tc_detach(\(direction.rawValue))", "ifindex \(ifindex)")
        return true
    }

    /// bpf_tc_query: the program id of the filter at (handle, priority), nil when there is none.
    /// Runs in the calling thread's namespace.
    public static func query(ifindex: UInt32, direction: TCDirection, handle: UInt32, priority: UInt32) throws(SystemError) -> UInt32? {
        var id: UInt32 = 0
        let rc = cmip6_tc_query(Int32(ifindex), direction.attachPoint, handle, priority, &id)
        if rc == -ENOENT || rc == -ENODEV || rc == -EINVAL { return nil }
        try Syscall.check(rc, "bpf_tc_query(\(direction.rawValue))", "ifindex \(ifindex)")
        return id
    }
}

/// Which clsact qdiscs this process created, and how many of its filters sit on each,
/// per (network namespace, ifindex). Callers hold the right namespace.
enum ClsactRegistry {
    struct Key: Hashable { let netns: UInt64; let ifindex: UInt32 }
    nonisolated(unsafe) static var entries: [Key: (created: Bool, users: Int)] = [:]
    static let lock = NSLock()

    static func retain(netns: UInt64, ifindex: UInt32) throws(SystemError) {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(netns: netns, ifindex: ifindex)
        if let e = entries[key] {
            entries[key] = (e.created, e.users + 1)
            return
        }
        let rc = cmip6_tc_hook_create(Int32(ifindex))
        if rc != -EEXIST { try Syscall.check(rc, "bpf_tc_hook_create(clsact)", "ifindex \(ifindex)") }
        entries[key] = (rc == 0, 1)
    }

    /// Drops our bookkeeping without touching the qdisc (a kept filter still sits on it).
    static func forget(netns: UInt64, ifindex: UInt32) {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(netns: netns, ifindex: ifindex)
        guard let e = entries[key] else { return }
        entries[key] = e.users > 1 ? (false, e.users - 1) : nil
    }

    static func release(netns: UInt64, ifindex: UInt32) {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(netns: netns, ifindex: ifindex)
        guard let e = entries[key] else { return }
        if e.users > 1 {
            entries[key] = (e.created, e.users - 1)
            return
        }
        entries[key] = nil
        if e.created { _ = cmip6_tc_hook_destroy(Int32(ifindex)) }
    }
}

/// The network namespace a thread was in, kept open so work can return to it (setns(2)).
final class NetnsHandle: @unchecked Sendable {
    let fd: Int32
    let inode: UInt64

    private init(fd: Int32, inode: UInt64) {
        self.fd = fd
        self.inode = inode
    }

    deinit { close(fd) }

    /// The calling thread's namespace (/proc/thread-self/ns/net).
    static func current() throws(SystemError) -> NetnsHandle {
        let path = "/proc/thread-self/ns/net"
        let fd = try Syscall.call("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        var st = stat()
        do throws(SystemError) { try Syscall.call("fstat", path) { fstat(fd, &st) } } catch {
            close(fd)
            throw error
        }
        return NetnsHandle(fd: fd, inode: UInt64(st.st_ino))
    }

    static func currentInode() -> UInt64? {
        var st = stat()
        return (try? Syscall.call("stat") { stat("/proc/thread-self/ns/net", &st) }) != nil ? UInt64(st.st_ino) : nil
    }

    /// Runs `body` in this namespace: here when the thread is already in it, otherwise on a
    /// short-lived thread that joins it first. Returns -errno of a failed setns.
    func perform(_ body: @escaping () -> Int32) -> Int32 {
        if Self.currentInode() == inode { return body() }
        // The box carries the work in and the result out; the semaphore orders the accesses.
        final class Box: @unchecked Sendable {
            var body: (() -> Int32)?
            var rc: Int32 = 0
        }
        let box = Box()
        box.body = body
        let done = DispatchSemaphore(value: 0)
        let fd = self.fd
        let thread = Thread {
            defer { done.signal() }
            let rc = cmip6_setns(fd, 0x4000_0000) // CLONE_NEWNET
            box.rc = rc < 0 ? rc : box.body!()
        }
        thread.start()
        done.wait()
        return box.rc
    }
}
