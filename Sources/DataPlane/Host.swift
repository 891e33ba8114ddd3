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
    public let isUp: Bool
    /// IFF_RUNNING: up and with carrier (a veth whose peer is down is up but not running).
    public let isRunning: Bool

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
        // IFF_RUNNING is not in sysfs `flags`; operstate says it ("unknown" for drivers without carrier).
        let oper = (try? String(contentsOfFile: "\(base)/operstate", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        isRunning = isUp && (oper == "up" || oper == "unknown")
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

/// bpffs: checks that a directory lives on a BPF filesystem, mounting /sys/fs/bpf if needed.
/// bpffs: pins must outlive the daemon, so --bpffs must be on a BPF filesystem that does.
public enum BPFFS {
    static let magic: UInt = 0xCAFE_4A11
    /// Where systemd and most tools mount bpffs; pins under it use that mount.
    public static let standardRoot = "/sys/fs/bpf"

    public static func isBPFFS(_ path: String) -> Bool {
        var st = statfs()
        return (try? Syscall.call("statfs", path) { statfs(path, &st) }) != nil && UInt(bitPattern: Int(st.f_type)) == magic
    }

    /// Whether this process runs in a mount namespace other than PID 1's, as under
    /// `ip netns exec` (which also mounts a fresh sysfs on /sys, hiding the host's bpffs):
    /// a filesystem mounted here vanishes with the last process of the namespace.
    public static var inPrivateMountNamespace: Bool {
        var ours = stat(), init_ = stat()
        guard (try? Syscall.call("stat") { stat("/proc/self/ns/mnt", &ours) }) != nil,
              (try? Syscall.call("stat") { stat("/proc/1/ns/mnt", &init_) }) != nil else { return false }
        return ours.st_ino != init_.st_ino || ours.st_dev != init_.st_dev
    }

    /// The directory a bpffs is mounted on for `dir`: the standard root for anything under
    /// it, else `dir` itself (never its parent: that would hide what else lives there).
    static func mountPoint(for dir: String) -> String {
        dir == standardRoot || dir.hasPrefix(standardRoot + "/") ? standardRoot : dir
    }

    /// Makes `dir` (creating it) a directory on a bpffs that outlives this process, and says
    /// how, when it had to do something:
    ///
    /// - on a bpffs already: nothing to do;
    /// - in the host's mount namespace: mounts a bpffs at `mountPoint(for:)`;
    /// - in a private mount namespace (`ip netns exec`): a bpffs mounted there would die with
    ///   the daemon, and with it every pin. If PID 1's namespace has one at that place
    ///   (through /proc/1/root), it is bind-mounted here, so pins land in the host's bpffs and
    ///   outlive us; otherwise this refuses and names the fix.
    @discardableResult
    public static func prepare(_ dir: String) throws(SystemError) -> String? {
        var note: String?
        if !isBPFFS(dir) {
            let point = mountPoint(for: dir)
            if !isBPFFS(point) {
                try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
                if inPrivateMountNamespace {
                    let host = "/proc/1/root" + point
                    guard isBPFFS(host) else {
                        throw SystemError("bpffs", errno: ENOENT, """
                            no BPF filesystem at \(point) in this mount namespace or the host's, and this process runs in \
                            a mount namespace of its own (as under `ip netns exec`): one mounted now would vanish with the \
                            daemon, and the pinned data plane with it. Mount one on the host first \
                            (mount -t bpf bpf \(point)), or give a directory on a bpffs that outlives the daemon
                            """)
                    }
                    try Syscall.call("mount", "bind \(host) on \(point)") { mount(host, point, nil, UInt(MS_BIND), nil) }
                    note = "bound the host's bpffs (\(host)) on \(point): this process runs in a mount namespace of its own "
                        + "(ip netns exec), and the pins must outlive it"
                } else {
                    try Syscall.call("mount", "bpffs at \(point) (mount -t bpf bpf \(point))") { mount("bpf", point, "bpf", 0, nil) }
                    note = "mounted a bpffs at \(point)"
                }
            }
        }
        do throws(SystemError) { try Syscall.call("mkdir", dir) { mkdir(dir, 0o700) } } catch {
            if error.errno != EEXIST { throw error }
        }
        guard isBPFFS(dir) else { throw SystemError("statfs", errno: EINVAL, "\(dir) is not on a BPF filesystem") }
        return note
    }

    /// `path` as this process can read it: under a private mount namespace with no bpffs of
    /// its own at `path`'s mount point (an inspection command run with `ip netns exec`), the
    /// host's, through /proc/1/root, where the daemon's pins are (see `prepare`).
    public static func visible(_ path: String) -> String {
        let point = mountPoint(for: (path as NSString).deletingLastPathComponent)
        guard !isBPFFS(point), inPrivateMountNamespace, isBPFFS("/proc/1/root" + point) else { return path }
        return "/proc/1/root" + path
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

