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
public enum BPFFS {
    static let magic: UInt = 0xCAFE_4A11

    public static func isBPFFS(_ path: String) -> Bool {
        var st = statfs()
        return (try? Syscall.call("statfs", path) { statfs(path, &st) }) != nil && UInt(bitPattern: Int(st.f_type)) == magic
    }

    /// Makes `dir` (creating it) on a mounted bpffs; mounts one at its parent if none is there.
    public static func prepare(_ dir: String) throws(SystemError) {
        let parent = (dir as NSString).deletingLastPathComponent
        if !isBPFFS(parent) {
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            try Syscall.call("mount", "bpffs at \(parent) (mount -t bpf bpf \(parent))") { mount("bpf", parent, "bpf", 0, nil) }
        }
        do throws(SystemError) { try Syscall.call("mkdir", dir) { mkdir(dir, 0o700) } } catch {
            if error.errno != EEXIST { throw error }
        }
        guard isBPFFS(dir) else { throw SystemError("statfs", errno: EINVAL, "\(dir) is not on a BPF filesystem") }
    }
}

