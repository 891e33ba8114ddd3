// Sockets that send what the control plane builds: whole IPv6 packets (IPPROTO_RAW) and Ethernet frames (AF_PACKET).
import CMip6
import ControlPlane
import Glibc

/// A raw IPv6 socket that sends whole IPv6 packets (IPPROTO_RAW implies IPV6_HDRINCL):
/// the kernel routes them by destination but never parses our extension headers.
public final class RawIPv6Sender {
    let fd: OwnedFD

    /// With `interface`, packets leave by that interface only (SO_BINDTODEVICE): a mobile
    /// node's BU must leave by the link its care-of address belongs to.
    public init(boundTo interface: String? = nil) throws(SystemError) {
        let s = try Syscall.call("socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)") {
            socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        }
        fd = OwnedFD(s)
        if let interface {
            try Syscall.call("setsockopt(SO_BINDTODEVICE)", interface) {
                interface.withCString { setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            }
        }
    }

    /// Sends `packet` (starting with its IPv6 header) to its IPv6 destination.
    public func send(_ packet: [UInt8]) throws(SystemError) {
        guard packet.count >= 40 else { throw SystemError("sendto", errno: EINVAL, "packet shorter than an IPv6 header") }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &sa.sin6_addr) { raw in for i in 0..<16 { raw[i] = packet[24 + i] } }
        _ = try Syscall.call("sendto(raw IPv6)") {
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
        fd = OwnedFD(try Syscall.call("socket(AF_PACKET)") { socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
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
        _ = try Syscall.call("sendto(AF_PACKET)", interface.name) {
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

