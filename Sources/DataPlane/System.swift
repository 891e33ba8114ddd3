// Thin wrappers for the Linux facilities the daemon needs besides libbpf: interfaces,
// sysctls, capabilities, bpffs, sockets, signals. Each turns -1/errno into SystemError.
import CMip6
import ControlPlane
import Foundation
import Glibc

/// EINTR-retrying syscall wrapper.
@inline(__always)
func syscallRetrying(_ call: String, _ detail: @autoclosure () -> String = "", _ body: () -> Int) throws(SystemError) -> Int {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        if errno == EINTR { continue }
        throw SystemError(call, errno: errno, detail())
    }
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
        guard getifaddrs(&head) == 0, let first = head else { return [] }
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
        let fd = open(p, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", errno: errno, p) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        _ = try syscallRetrying("write", p) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
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
        return statfs(path, &st) == 0 && UInt(bitPattern: Int(st.f_type)) == magic
    }

    /// Makes `dir` (creating it) on a mounted bpffs; mounts one at its parent if none is there.
    public static func prepare(_ dir: String) throws(SystemError) {
        let parent = (dir as NSString).deletingLastPathComponent
        if !isBPFFS(parent) {
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            if mount("bpf", parent, "bpf", 0, nil) != 0 {
                throw SystemError("mount", errno: errno, "bpffs at \(parent) (mount -t bpf bpf \(parent))")
            }
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw SystemError("mkdir", errno: errno, dir)
        }
        guard isBPFFS(dir) else { throw SystemError("statfs", errno: EINVAL, "\(dir) is not on a BPF filesystem") }
    }
}

/// A raw IPv6 socket that sends whole IPv6 packets (IPPROTO_RAW implies IPV6_HDRINCL):
/// the kernel routes them by destination but never parses our extension headers.
public final class RawIPv6Sender {
    let fd: OwnedFD

    /// With `interface`, packets leave by that interface only (SO_BINDTODEVICE): a mobile
    /// node's BU must leave by the link its care-of address belongs to.
    public init(boundTo interface: String? = nil) throws(SystemError) {
        let s = socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        if s < 0 { throw SystemError("socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)", errno: errno) }
        fd = OwnedFD(s)
        if let interface {
            let rc = interface.withCString { setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            if rc != 0 { throw SystemError("setsockopt(SO_BINDTODEVICE)", errno: errno, interface) }
        }
    }

    /// Sends `packet` (starting with its IPv6 header) to its IPv6 destination.
    public func send(_ packet: [UInt8]) throws(SystemError) {
        guard packet.count >= 40 else { throw SystemError("sendto", errno: EINVAL, "packet shorter than an IPv6 header") }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &sa.sin6_addr) { raw in for i in 0..<16 { raw[i] = packet[24 + i] } }
        _ = try syscallRetrying("sendto(raw IPv6)") {
            packet.withUnsafeBytes { p in
                withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd.raw, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            }
        }
    }
}

extension RawIPv6Sender {
    /// sendmmsg(2) for many packets (the BAs of one ring drain): one syscall per 64.
    /// Returns the index and error of every packet that could not be sent.
    public func send(batch packets: [[UInt8]]) -> [(Int, SystemError)] {
        if packets.isEmpty { return [] }
        var errs = [Int32](repeating: 0, count: packets.count)
        let lens = packets.map { UInt32($0.count) }
        let buffer = Array(packets.joined()) // one block, so every pointer is valid inside one closure
        let rc = buffer.withUnsafeBytes { raw -> Int32 in
            var offset = 0
            let pointers: [UnsafeRawPointer?] = lens.map { len in
                defer { offset += Int(len) }
                return UnsafeRawPointer(raw.baseAddress! + offset)
            }
            return cmip6_send_ipv6_batch(fd.raw, pointers, lens, UInt32(packets.count), &errs)
        }
        if rc < 0 { return packets.indices.map { ($0, SystemError("sendmmsg(raw IPv6)", errno: -rc)) } }
        return errs.enumerated().compactMap { $0.element == 0 ? nil : ($0.offset, SystemError("sendmmsg(raw IPv6)", errno: $0.element)) }
    }
}

/// An AF_PACKET socket for sending link-local frames we build whole (NS for DAD, unsolicited NA).
public final class PacketSender {
    let fd: OwnedFD
    public let interface: NetworkInterface

    public init(interface: NetworkInterface) throws(SystemError) {
        // Protocol 0: send-only, no frames are queued to us.
        let s = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { throw SystemError("socket(AF_PACKET)", errno: errno) }
        fd = OwnedFD(s)
        self.interface = interface
    }

    /// Sends an IPv6 packet in an Ethernet frame to `destinationMAC`.
    public func send(ipv6 packet: [UInt8], to destinationMAC: [UInt8]) throws(SystemError) {
        let frame = destinationMAC + interface.mac + [0x86, 0xDD] + packet
        var sll = sockaddr_ll()
        sll.sll_family = UInt16(AF_PACKET)
        sll.sll_protocol = UInt16(ETH_P_IPV6).bigEndian
        sll.sll_ifindex = Int32(interface.index)
        sll.sll_halen = 6
        withUnsafeMutableBytes(of: &sll.sll_addr) { raw in for i in 0..<6 { raw[i] = destinationMAC[i] } }
        _ = try syscallRetrying("sendto(AF_PACKET)", interface.name) {
            frame.withUnsafeBytes { p in
                withUnsafePointer(to: &sll) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd.raw, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                    }
                }
            }
        }
    }

    /// 33:33 + the low 32 bits of a multicast address (RFC 2464 §7).
    public static func multicastMAC(_ a: IPv6Address) -> [UInt8] {
        let b = a.bytes
        return [0x33, 0x33, b[12], b[13], b[14], b[15]]
    }
}

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
final class WakePipe: @unchecked Sendable {
    let readFD: Int32
    let writeFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        // Cannot fail short of fd exhaustion at start-up; then poll on -1 is simply never readable.
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for fd in fds where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    func signal() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1) // EAGAIN: a wake-up is already pending
    }

    func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buf, buf.count) > 0 {}
    }
}
