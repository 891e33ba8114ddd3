import DataPlane
import ControlPlane

/// Packets built byte by byte, shared by the BPF tests and the perf/ benchmarks
/// (the same fixtures feed both, as in Katran's tests).
public enum PacketFixtures {
    public static let routerMAC: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]
    public static let haMAC: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0A]

    public static let homeAgent = IPv6Address("2001:db8:1::a")!
    public static let homePrefix = IPv6Prefix("2001:db8:1::/64")!
    public static let homeAddress = IPv6Address("2001:db8:1::100")!
    public static let careOf = IPv6Address("2001:db8:f1::100")!
    public static let correspondent = IPv6Address("2001:db8:c::2")!

    /// Ethernet II + payload.
    public static func ethernet(dst: [UInt8] = haMAC, src: [UInt8] = routerMAC, type: UInt16 = 0x86DD, _ payload: [UInt8]) -> [UInt8] {
        dst + src + [UInt8(type >> 8), UInt8(type & 0xFF)] + payload
    }

    /// A 40-byte IPv6 header.
    public static func ipv6Header(src: IPv6Address, dst: IPv6Address, nextHeader: UInt8, payloadLength: Int,
                                  hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) -> [UInt8] {
        let w = (UInt32(6) << 28) | (UInt32(trafficClass) << 20) | (flowLabel & 0xFFFFF)
        return [UInt8(w >> 24), UInt8((w >> 16) & 0xFF), UInt8((w >> 8) & 0xFF), UInt8(w & 0xFF),
                UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), nextHeader, hopLimit] + src.bytes + dst.bytes
    }

    /// An IPv6 ICMPv6 Echo Request with `dataSize` bytes of data and a valid checksum.
    public static func echoRequest(src: IPv6Address = correspondent, dst: IPv6Address = homeAddress, hopLimit: UInt8 = 63,
                                   identifier: UInt16 = 0x1234, sequence: UInt16 = 1, dataSize: Int = 56,
                                   trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) -> [UInt8] {
        var icmp: [UInt8] = [128, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        icmp += (0..<dataSize).map { UInt8(truncatingIfNeeded: $0) }
        let c = InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 58, payload: icmp)
        icmp[2] = UInt8(c >> 8)
        icmp[3] = UInt8(c & 0xFF)
        return ipv6Header(src: src, dst: dst, nextHeader: 58, payloadLength: icmp.count, hopLimit: hopLimit,
                          trafficClass: trafficClass, flowLabel: flowLabel) + icmp
    }

    /// IPv6-in-IPv6 (RFC 2473) around `inner`.
    public static func tunnel(outerSrc: IPv6Address, outerDst: IPv6Address, hopLimit: UInt8 = 64, _ inner: [UInt8]) -> [UInt8] {
        ipv6Header(src: outerSrc, dst: outerDst, nextHeader: 41, payloadLength: inner.count, hopLimit: hopLimit) + inner
    }

    /// `packet` (IPv6) with an extension header of `type` (0 Hop-by-Hop Options, 43 Routing,
    /// 60 Destination Options) right after its IPv6 header, holding `body` padded to 8 octets
    /// with PadN (Pad1 for one octet), as RFC 8200 §4.2 and scapy pad.
    public static func withExtensionHeader(_ packet: [UInt8], type: UInt8 = 60, _ body: [UInt8]) -> [UInt8] {
        var ext: [UInt8] = [packet[6], 0] + body
        let pad = (8 - ext.count % 8) % 8
        if pad == 1 { ext.append(0) } else if pad > 1 { ext += [1, UInt8(pad - 2)] + [UInt8](repeating: 0, count: pad - 2) }
        ext[1] = UInt8(ext.count / 8 - 1)
        var ip = Array(packet[0..<40])
        let payloadLength = packet.count - 40 + ext.count
        (ip[4], ip[5], ip[6]) = (UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), type)
        return ip + ext + packet[40...]
    }

    /// RFC 2473 §4.1.1: a Tunnel Encapsulation Limit option (type 4, length 1).
    public static func encapsulationLimit(_ limit: UInt8) -> [UInt8] { [4, 1, limit] }

    /// Fixture frames for benchmarks: encapsulation, reverse-tunnel decapsulation, proxy NS, pass-through.
    public static func encapFrame(dataSize: Int = 56) -> [UInt8] {
        ethernet(echoRequest(dataSize: dataSize))
    }

    public static func decapFrame(dataSize: Int = 56) -> [UInt8] {
        ethernet(tunnel(outerSrc: careOf, outerDst: homeAgent,
                        echoRequest(src: homeAddress, dst: correspondent, hopLimit: 64, dataSize: dataSize)))
    }

    public static func neighborSolicitationFrame() -> [UInt8] {
        let router = IPv6Address("2001:db8:1::1")!
        let ns = PacketBuilder.neighborSolicitation(target: homeAddress, source: router,
                                                    destination: homeAddress.solicitedNodeMulticast, sourceLinkLayer: routerMAC)
        let group = homeAddress.solicitedNodeMulticast.bytes
        return ethernet(dst: [0x33, 0x33] + group[12...15], ns)
    }

    public static func passThroughFrame() -> [UInt8] {
        ethernet(echoRequest(dst: IPv6Address("2001:db8:1::77")!))
    }

    /// An IPv6 TCP segment (20-byte header, ACK|PSH, `dataSize` bytes) with a valid checksum:
    /// what the TC program's GSO cases are built from.
    public static func tcpSegment(src: IPv6Address = correspondent, dst: IPv6Address = homeAddress, hopLimit: UInt8 = 63,
                                  dataSize: Int = 100) -> [UInt8] {
        var tcp: [UInt8] = [0x9C, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
        tcp += (0..<dataSize).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let c = InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 6, payload: tcp)
        tcp[16] = UInt8(c >> 8)
        tcp[17] = UInt8(c & 0xFF)
        return ipv6Header(src: src, dst: dst, nextHeader: 6, payloadLength: tcp.count, hopLimit: hopLimit) + tcp
    }

    /// An IPv6 UDP datagram with `dataSize` bytes and a valid checksum.
    public static func udpDatagram(src: IPv6Address = correspondent, dst: IPv6Address = homeAddress, hopLimit: UInt8 = 63,
                                   dataSize: Int = 100) -> [UInt8] {
        let length = 8 + dataSize
        var udp: [UInt8] = [0x13, 0x88, 0x13, 0x89, UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
        udp += (0..<dataSize).map { UInt8(truncatingIfNeeded: $0) }
        let c = InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 17, payload: udp)
        udp[6] = UInt8(c >> 8)
        udp[7] = UInt8(c & 0xFF)
        return ipv6Header(src: src, dst: dst, nextHeader: 17, payloadLength: udp.count, hopLimit: hopLimit) + udp
    }
}
