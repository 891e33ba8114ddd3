// The host as the daemons see it: interfaces, sysctls, capabilities, bpffs.
import CMip6
import ControlPlane
import Foundation
import Glibc

/// A prerequisite the daemon cannot run without: printed as one line, exit non-zero.
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A network interface in the current namespace.
public struct NetworkInterface: Sendable {
    public let name: String
    public let index: UInt32
    public let mac: [UInt8]
    public let mtu: UInt32
    /// IFF_UP, the administrative state. Movement decisions read carrier and DAD state
    /// from rtnetlink (Netlink.links, NetlinkDump.swift), not from here.
    public let isUp: Bool

    public init(named name: String) throws(SystemError) {
        let idx = if_nametoindex(name)
        guard idx != 0 else { throw SystemError("if_nametoindex", errno: ENODEV, "interface \(name) not found in this network namespace") }
        self.name = name
        self.index = idx
        let base = "/sys/class/net/\(name)"
        let macText = (try? String(contentsOfFile: "\(base)/address", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let parts = macText.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        guard parts.count == 6 else { throw SystemError("read \(base)/address", errno: EINVAL, "\(name) has no Ethernet address") }
        mac = parts
        mtu = UInt32((try? String(contentsOfFile: "\(base)/mtu", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 1500
        let flags = Int((try? String(contentsOfFile: "\(base)/flags", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2) ?? "", radix: 16) ?? 0
        isUp = flags & 0x1 != 0 // IFF_UP
    }

    /// IPv6 addresses on the interface (getifaddrs).
    public func ipv6Addresses() -> [IPv6Address] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard (try? Syscall.call("getifaddrs") { getifaddrs(&head) }) != nil, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var out: [IPv6Address] = []
        var cur: UnsafeMutablePointer<ifaddrs>? = first
        while let ifa = cur {
            defer { cur = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET6),
                  String(cString: ifa.pointee.ifa_name) == name else { continue }
            let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            out.append(withUnsafeBytes(of: a) { IPv6Address(bytes: Array($0)) })
        }
        return out
    }
}

/// /proc/sys access.
public enum Sysctl {
    public static func read(_ key: String) -> String? {
        (try? String(contentsOfFile: path(key), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static func write(_ key: String, _ value: String) throws(SystemError) {
        let p = path(key)
        let fd = OwnedFD(try Syscall.call("open", p) { open(p, O_WRONLY | O_CLOEXEC) })
        let bytes = Array(value.utf8)
        _ = try Syscall.call("write", p) { bytes.withUnsafeBytes { Glibc.write(fd.raw, $0.baseAddress, $0.count) } }
    }

    static func path(_ key: String) -> String { "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/") }
}

/// The effective capability set of this process (from /proc/self/status).
public struct Capabilities {
    public static let netAdmin = 12, netRaw = 13, sysAdmin = 21, bpf = 39, perfmon = 38
    let effective: UInt64

    public static func current() -> Capabilities {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        let hex = line.map { $0.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces) } ?? "0"
        return Capabilities(effective: UInt64(hex, radix: 16) ?? 0)
    }

    public func has(_ cap: Int) -> Bool { effective & (1 << UInt64(cap)) != 0 }

    /// What is missing for a daemon that loads BPF, attaches XDP and sends raw packets.
    public func missingForDaemon() -> [String] {
        var missing: [String] = []
        if !has(Self.bpf) && !has(Self.sysAdmin) { missing.append("CAP_BPF") }
        // The verifier refuses the programs' packet and map pointer arithmetic without it (EACCES).
        if !has(Self.perfmon) && !has(Self.sysAdmin) { missing.append("CAP_PERFMON") }
        if !has(Self.netAdmin) { missing.append("CAP_NET_ADMIN") }
        if !has(Self.netRaw) { missing.append("CAP_NET_RAW") }
        return missing
    }
}

/// bpffs: pins must outlive the daemon, so --bpffs must be on a BPF filesystem that does.
public enum BPFFS {
    static let magic: UInt = 0xCAFE_4A11
    /// Where systemd and most tools mount bpffs; pins under it use that mount.
    public static let standardRoot = "/sys/fs/bpf"

    public static func isBPFFS(_ path: String) -> Bool {
        var st = statfs()
        return (try? Syscall.call("statfs", path) { statfs(path, &st) }) != nil && UInt(bitPattern: Int(st.f_type)) == magic
    }

    /// This process's mount namespace as pins see it. A mount made in a namespace that no
    /// other process shares vanishes with the daemon (`ip netns exec` makes one per command,
    /// with a fresh sysfs on /sys). Found through /proc: the processes whose ns/mnt link is
    /// readable (PID 1's may not be, in a sandbox) and the same as ours.
    public struct MountNamespace: Sendable {
        /// No other process is in our mount namespace: what we mount dies with us.
        public let isPrivate: Bool
        /// /proc/PID/root of processes in other mount namespaces (PID 1 first, then our
        /// parent, then any), through which their mounts can be reached.
        public let otherRoots: [String]

        /// Where a process outside sees a bpffs at `point`, when we are in a private namespace.
        func outsideRoot(holding point: String) -> String? {
            isPrivate ? otherRoots.first { isBPFFS($0 + point) } : nil
        }
    }

    /// This process's mount namespace, looked up once (a scan of /proc; the namespace does
    /// not change under a running process).
    public static let mountNamespace: MountNamespace = scanMountNamespace()

    static func scanMountNamespace() -> MountNamespace {
        func link(_ pid: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt") }
        guard let ours = link("self") else { return MountNamespace(isPrivate: false, otherRoots: []) }
        let me = String(getpid())
        let parent = String(getppid())
        var shared = false
        var others: [String] = []
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { $0.allSatisfy(\.isNumber) && $0 != me }
        for pid in ["1", parent] + pids {
            guard let ns = link(pid) else { continue }
            if ns == ours {
                // Our own threads have their own /proc/PID only under /proc/self/task.
                if pid != me { shared = true }
            } else if !others.contains("/proc/\(pid)/root") {
                others.append("/proc/\(pid)/root")
            }
            if shared && others.count >= 3 { break }
        }
        return MountNamespace(isPrivate: !shared, otherRoots: others)
    }

    /// The directory a bpffs is mounted on for `dir`: the standard root for anything under
    /// it, else `dir` itself (never its parent: that would hide what else lives there).
    static func mountPoint(for dir: String) -> String {
        dir == standardRoot || dir.hasPrefix(standardRoot + "/") ? standardRoot : dir
    }

    /// Where pins for `dir` go, made (created) on a bpffs that outlives this process:
    ///
    /// - on a bpffs already: `dir` itself;
    /// - in a mount namespace others share (the host's): a bpffs is mounted at
    ///   `mountPoint(for:)`, and `dir` is used;
    /// - in a private mount namespace (`ip netns exec`): a bpffs mounted there would die with
    ///   the daemon, and with it every pin. If another namespace (PID 1's, our parent's) has
    ///   one at that place, the pins go there through its /proc/PID/root (pinning resolves
    ///   the path; a bind mount across namespaces is not allowed), so they land in the host's
    ///   bpffs and outlive us; otherwise this refuses and names the fix.
    ///
    /// Returns the directory to pin into and, when something had to be done, a note saying what.
    public static func prepare(_ dir: String) throws(SystemError) -> (path: String, note: String?) {
        var path = dir
        var note: String?
        if !isBPFFS(dir) {
            let point = mountPoint(for: dir)
            if !isBPFFS(point) {
                if mountNamespace.isPrivate {
                    guard let root = mountNamespace.outsideRoot(holding: point) else {
                        throw SystemError("bpffs", errno: ENOENT, """
                            no BPF filesystem at \(point) in this mount namespace or the host's, and this process runs in \
                            a mount namespace of its own (as under `ip netns exec`): one mounted now would vanish with the \
                            daemon, and the pinned data plane with it. Mount one on the host first \
                            (mount -t bpf bpf \(point)), or give a directory on a bpffs that outlives the daemon
                            """)
                    }
                    path = root + dir
                    note = "pinning into the host's bpffs through \(root): this process runs in a mount namespace of its own "
                        + "(as under ip netns exec), and the pins must outlive it"
                } else {
                    try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
                    try Syscall.call("mount", "bpffs at \(point) (mount -t bpf bpf \(point))") { mount("bpf", point, "bpf", 0, nil) }
                    note = "mounted a bpffs at \(point)"
                }
            }
        }
        do throws(SystemError) { try Syscall.call("mkdir", path) { mkdir(path, 0o700) } } catch {
            if error.errno != EEXIST { throw error }
        }
        guard isBPFFS(path) else { throw SystemError("statfs", errno: EINVAL, "\(path) is not on a BPF filesystem") }
        return (path, note)
    }

    /// `path` as this process can read it: under a private mount namespace with no bpffs of
    /// its own at `path`'s mount point (an inspection command run with `ip netns exec`), the
    /// host's, through /proc/PID/root, where the daemon's pins are (see `prepare`).
    public static func visible(_ path: String) -> String {
        let point = mountPoint(for: path)
        guard !isBPFFS(point), let root = mountNamespace.outsideRoot(holding: point) else { return path }
        return root + path
    }

    /// One daemon per pin directory: an exclusive flock(2) on the directory, held as long as
    /// the returned descriptor is open (the process's life; the kernel drops it on any exit).
    /// Two daemons on one directory would share its ring buffer and diverge.
    public static func lock(_ dir: String) throws(SystemError) -> OwnedFD {
        let fd = OwnedFD(try Syscall.call("open", dir) { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
        do throws(SystemError) {
            try Syscall.call("flock", dir) { flock(fd.raw, LOCK_EX | LOCK_NB) }
        } catch {
            if error.errno == EWOULDBLOCK {
                throw SystemError("flock", errno: EWOULDBLOCK, "\(dir) is in use by another mip6 daemon: stop it, or give this one a --bpffs of its own")
            }
            throw error
        }
        return fd
    }
}

