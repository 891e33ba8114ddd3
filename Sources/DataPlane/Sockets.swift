// Sockets that send what the control plane builds: whole IPv6 packets (IPPROTO_RAW) and Ethernet frames (AF_PACKET);
// and the tunnel socket (next header 41) for tunnel packets that travel in fragments.
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

/// A raw IPv6 socket of next header 41 (IPv6-in-IPv6, RFC 2473) for the tunnel packets the data
/// plane cannot handle because they travel in fragments (RFC 2473 §7.1(b)). Its payload is the
/// inner packet both ways: sending, the kernel writes the outer header (next header 41, source
/// the bound address) and fragments the tunnel packet to the path MTU; receiving, it hands over
/// the payload of a tunnel packet it reassembled, with the outer addresses. While such a socket
/// is open the kernel takes a tunnel packet to be delivered: it no longer answers one with a
/// Parameter Problem (unknown next header), having no ip6tnl.
public final class TunnelSocket {
    let fd: OwnedFD
    let reportsErrors: Bool
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    /// IPV6_TCLASS as last set: a flow keeps its traffic class, so a change costs a call rarely.
    private var trafficClass: UInt8 = 0

    /// The descriptor to poll: readable for a tunnel packet, POLLERR for a queued ICMPv6 error.
    public var pollFD: Int32 { fd.raw }

    /// A tunnel packet the kernel reassembled.
    public struct Received: Sendable, Equatable {
        public var source: IPv6Address
        /// The outer destination (IPV6_PKTINFO).
        public var destination: IPv6Address
        /// The inner packet; nil when it was longer than 64 KiB (cut: MSG_TRUNC).
        public var payload: [UInt8]?
    }

    /// An ICMPv6 error about a tunnel packet sent from the bound address (IPV6_RECVERR).
    public struct ReceivedError: Sendable, Equatable {
        /// The destination of the packet it is about (a care-of address).
        public var destination: IPv6Address
        /// Who sent it (a router on the way); :: when the kernel does not say.
        public var offender: IPv6Address
        public var type: UInt8
        public var code: UInt8
        /// A Packet Too Big's MTU.
        public var info: UInt32
        public var isPacketTooBig: Bool { type == 2 }
    }

    /// - Parameters:
    ///   - source: bound to it: the outer source of what is sent; only tunnel packets to it are received.
    ///   - hopLimit: the outer hop limit of what is sent (RFC 2473 §6.3); nil: the route's.
    ///   - reportErrors: IPV6_RECVERR. The kernel hands ICMPv6 errors about tunnel packets from
    ///     `source` (whoever sent them: the data plane's too) to a raw socket of protocol 41 only
    ///     if it asks for them, and only then lowers the path MTU from a Packet Too Big: with
    ///     ip6tnl absent nothing else does. Read them with `receiveError()`.
    public init(source: IPv6Address? = nil, hopLimit: UInt8? = nil, reportErrors: Bool = false) throws(SystemError) {
        let s = try Syscall.call("socket(AF_INET6, SOCK_RAW, IPPROTO_IPV6)") {
            socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                   Int32(IPPROTO_IPV6))
        }
        fd = OwnedFD(s)
        reportsErrors = reportErrors
        try option(IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")
        // Fragment to the path MTU: DONTFRAG would refuse what exceeds it, PMTUDISC_DO would
        // too (EMSGSIZE), PMTUDISC_PROBE would ignore it and send to the link MTU.
        try option(IPV6_DONTFRAG, 0, "IPV6_DONTFRAG")
        try option(IPV6_MTU_DISCOVER, IPV6_PMTUDISC_WANT, "IPV6_MTU_DISCOVER")
        if let hopLimit { try option(IPV6_UNICAST_HOPS, Int32(hopLimit), "IPV6_UNICAST_HOPS") }
        if reportErrors { try option(IPV6_RECVERR, 1, "IPV6_RECVERR") }
        if let source {
            var sa = Self.socketAddress(source)
            try Syscall.call("bind(tunnel socket)", "\(source)") {
                withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            }
        }
    }

    private func option(_ name: Int32, _ value: Int32, _ label: String) throws(SystemError) {
        var v = value
        try Syscall.call("setsockopt(\(label))") {
            setsockopt(fd.raw, Int32(IPPROTO_IPV6), name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func socketAddress(_ a: IPv6Address) -> sockaddr_in6 {
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        let b = a.bytes
        withUnsafeMutableBytes(of: &sa.sin6_addr) { raw in for i in 0..<16 { raw[i] = b[i] } }
        return sa
    }

    /// Sends `inner` as the payload of a tunnel packet to `destination`, fragmented by the kernel
    /// to the path MTU. The outer traffic class is the inner packet's (RFC 2473 §6.4 leaves it to
    /// the entry point; the data plane copies it too).
    public func send(_ inner: [UInt8], to destination: IPv6Address) throws(SystemError) {
        if inner.count >= 2 {
            let tc = inner[0] << 4 | inner[1] >> 4
            if tc != trafficClass {
                try option(IPV6_TCLASS, Int32(tc), "IPV6_TCLASS")
                trafficClass = tc
            }
        }
        var sa = Self.socketAddress(destination)
        // With IPV6_RECVERR an ICMPv6 error about an earlier tunnel packet (one of the data
        // plane's) fails the next call once, and that call clears it: send again once.
        for attempt in 0..<(reportsErrors ? 2 : 1) {
            do throws(SystemError) {
                try Syscall.call("sendto(tunnel socket)", "\(destination)") {
                    inner.withUnsafeBytes { p in
                        withUnsafePointer(to: &sa) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                                sendto(fd.raw, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                            }
                        }
                    }
                }
                return
            } catch {
                if attempt == (reportsErrors ? 1 : 0) || error.errno == EAGAIN { throw error }
            }
        }
    }

    /// The next tunnel packet the kernel reassembled for us; nil when none is queued.
    public func receive() throws(SystemError) -> Received? {
        var src: CAddress = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), dst = src
        for attempt in 0..<2 {
            do throws(SystemError) {
                let n = try Syscall.negErrno("recvmsg(tunnel socket)") {
                    buffer.withUnsafeMutableBytes { b in
                        withUnsafeMutableBytes(of: &src) { s in
                            withUnsafeMutableBytes(of: &dst) { d in
                                cmip6_recv_tunnel(fd.raw, b.baseAddress, UInt32(b.count),
                                                  s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                  d.baseAddress!.assumingMemoryBound(to: UInt8.self))
                            }
                        }
                    }
                }
                return Received(source: IPv6Address(cAddress: src), destination: IPv6Address(cAddress: dst),
                                payload: Int(n) <= buffer.count ? Array(buffer[0..<Int(n)]) : nil)
            } catch {
                if error.errno == EAGAIN { return nil }
                // A pending ICMPv6 error (IPV6_RECVERR) is reported once in a packet's place.
                if !reportsErrors || attempt == 1 { throw error }
            }
        }
        return nil
    }

    /// The next queued ICMPv6 error (IPV6_RECVERR); nil when none is.
    public func receiveError() throws(SystemError) -> ReceivedError? {
        var e = cmip6_tunnel_error()
        do throws(SystemError) {
            try Syscall.negErrno("recvmsg(tunnel socket, MSG_ERRQUEUE)") { cmip6_recv_tunnel_error(fd.raw, &e) }
        } catch {
            if error.errno == EAGAIN { return nil }
            throw error
        }
        return ReceivedError(destination: IPv6Address(cAddress: e.destination), offender: IPv6Address(cAddress: e.offender),
                             type: e.type, code: e.code, info: e.info)
    }
}
