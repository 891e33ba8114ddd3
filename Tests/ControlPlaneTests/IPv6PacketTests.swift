import Testing
@testable import ControlPlane

/// Packets produced independently with scapy 2.5 (/usr/bin/python3), hex pasted here once:
///
///     from scapy.layers.inet6 import *
///     ha='2001:db8:1::1'; hoa='2001:db8:1::100'; coa='2001:db8:ffff::2'
///     bu = IPv6(src=coa, dst=ha, hlim=64)/IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) \
///          /MIP6MH_BU(seq=7, flags='AH', mhtime=900, options=[MIP6OptAltCoA(acoa=coa)])
///     ba = IPv6(src=ha, dst=coa, hlim=64)/IPv6ExtHdrRouting(type=2, addresses=[hoa], segleft=1) \
///          /MIP6MH_BA(status=0, flags=0, seq=7, mhtime=900)
///     na = IPv6(src='fe80::1', dst='ff02::1', hlim=255)/ICMPv6ND_NA(R=0, S=0, O=1, tgt=hoa) \
///          /ICMPv6NDOptDstLLAddr(lladdr='02:00:00:00:00:01')
///     ns = IPv6(src='::', dst='ff02::1:ff00:100', hlim=255)/ICMPv6ND_NS(tgt=hoa)
///     print(raw(bu).hex(), raw(ba).hex(), raw(na).hex(), raw(ns).hex())
///
/// scapy computes the MH checksum itself, using the HAO address as pseudo-header source and
/// the routing header's final address as destination.
enum Scapy {
    static let bindingUpdate = hex("""
        6000000000383c4020010db8ffff0000000000000000000220010db8000100000000000000000001870201020000c910
        20010db80001000000000000000001003b0305006d890007c00003840100031020010db8ffff00000000000000000002
        """)
    static let bindingAck = hex("""
        6000000000282b4020010db800010000000000000000000120010db8ffff00000000000000000002870202010000000020010db8
        0001000000000000000001003b0106005d6500000007038401020000
        """)
    static let neighborAdvertisement = hex("""
        6000000000203afffe800000000000000000000000000001ff020000000000000000000000000001880027632000000020010db8
        0001000000000000000001000201020000000001
        """)
    static let dadSolicitation = hex("""
        6000000000183aff00000000000000000000000000000000ff0200000000000000000001ff00010087004aee0000000020010db8
        000100000000000000000100
        """)
}

@Suite("Cross-check against scapy")
struct ScapyCrossCheckTests {
    @Test func bindingUpdateMatchesScapy() throws {
        let bu = BindingUpdate(sequence: 7, flags: [.ack, .home], lifetime: 900, options: [.alternateCareOfAddress(coa)])
        let built = PacketBuilder.bindingUpdate(bu, careOf: coa, homeAgent: ha, homeAddress: hoa)
        #expect(hexString(built) == hexString(Scapy.bindingUpdate))
        // The Destination Options header: PadN(4) then the HAO type byte at offset 6 (§6.3, 8n+6).
        #expect(Array(built[40..<48]) == [135, 2, 1, 2, 0, 0, 201, 16])

        let packet = try IPv6PacketParser.parseMobility(Scapy.bindingUpdate)
        #expect(packet.source == coa && packet.destination == ha && packet.hopLimit == 64)
        #expect(packet.homeAddressOption == hoa && packet.routingType2Address == nil)
        #expect(packet.checksumSource == hoa && packet.checksumDestination == ha)
        #expect(packet.mhOffset == 64)
        #expect(packet.mh == MobilityHeaderVectorTests.buAltCoA)
        let m = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource, destination: packet.checksumDestination)
        #expect(m == .bindingUpdate(bu))
    }

    @Test func bindingAckMatchesScapy() throws {
        let ba = BindingAcknowledgement(status: .accepted, sequence: 7, lifetime: 900)
        let built = PacketBuilder.bindingAcknowledgement(ba, from: ha, to: coa, homeAddress: hoa)
        #expect(hexString(built) == hexString(Scapy.bindingAck))

        let packet = try IPv6PacketParser.parseMobility(Scapy.bindingAck)
        #expect(packet.source == ha && packet.destination == coa)
        #expect(packet.routingType2Address == hoa && packet.homeAddressOption == nil)
        // Received with the routing header unprocessed: the final destination is the home address.
        #expect(packet.checksumDestination == hoa && packet.checksumSource == ha)
        #expect(packet.mh == MobilityHeaderVectorTests.baAccepted)
        #expect(try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource,
                                               destination: packet.checksumDestination) == .bindingAcknowledgement(ba))
    }

    @Test func neighborDiscoveryMatchesScapy() throws {
        let na = PacketBuilder.neighborAdvertisement(target: hoa, source: addr("fe80::1"), destination: addr("ff02::1"),
                                                     flags: (router: false, solicited: false, override: true),
                                                     targetLinkLayer: [0x02, 0, 0, 0, 0, 0x01])
        #expect(hexString(na) == hexString(Scapy.neighborAdvertisement))
        let ns = PacketBuilder.neighborSolicitation(target: hoa, source: .unspecified,
                                                    destination: hoa.solicitedNodeMulticast, sourceLinkLayer: [1, 2, 3, 4, 5, 6])
        // DAD: unspecified source, so no Source Link-Layer Address option (RFC 4861 §4.3).
        #expect(hexString(ns) == hexString(Scapy.dadSolicitation))
    }
}

@Suite("IPv6 packet parsing")
struct IPv6PacketParserTests {
    /// IPv6 header + given extension headers + a minimal valid BRR-sized MH (a BU from the source).
    func packet(nextHeader: UInt8, extensions: [UInt8], mh: [UInt8]? = nil, src: IPv6Address = coa, dst: IPv6Address = ha,
                hopLimit: UInt8 = 64) -> [UInt8] {
        let body = mh ?? MobilityHeaderCodec.encode(.bindingUpdate(BindingUpdate(sequence: 1, flags: .home, lifetime: 1)),
                                                    source: src, destination: dst)
        var out: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: extensions.count + body.count, nextHeader: nextHeader, hopLimit: hopLimit,
                                 source: src, destination: dst, into: &out)
        return out + extensions + body
    }

    /// An empty 8-octet extension header (PadN(6) as its options) with the given next header.
    func padHeader(_ next: UInt8) -> [UInt8] { [next, 0, 1, 4, 0, 0, 0, 0] }

    @Test func plainMobilityHeader() throws {
        let p = try IPv6PacketParser.parseMobility(packet(nextHeader: 135, extensions: []))
        #expect(p.homeAddressOption == nil && p.routingType2Address == nil && p.mhOffset == 40)
        #expect(p.checksumSource == coa && p.checksumDestination == ha && p.finalDestination == ha)
    }

    @Test func trailingBytesIgnoredShortBufferTruncated() throws {
        let good = packet(nextHeader: 135, extensions: [])
        let p = try IPv6PacketParser.parseMobility(good + [0xde, 0xad, 0xbe, 0xef])
        #expect(p.mh.count == 16)
        for n in [0, 1, 39, 40, good.count - 1] {
            #expect(throws: PacketParseError.truncated, "length \(n)") {
                try IPv6PacketParser.parseMobility(Array(good.prefix(n)))
            }
        }
    }

    @Test func notIPv6() {
        var p = packet(nextHeader: 135, extensions: [])
        p[0] = 0x45
        #expect(throws: PacketParseError.notIPv6) { try IPv6PacketParser.parseMobility(p) }
    }

    @Test func extensionHeaderChainLimit() throws {
        // Hop-by-Hop first, then 7 Destination Options headers: 8 headers, allowed.
        var ext: [UInt8] = []
        for i in 0..<8 { ext += padHeader(i == 7 ? 135 : 60) }
        let eight = packet(nextHeader: 0, extensions: ext)
        #expect(throws: Never.self) { try IPv6PacketParser.parseMobility(eight) }
        #expect(try IPv6PacketParser.parseMobility(eight).mhOffset == 40 + 64)
        // One more is refused.
        var nine: [UInt8] = []
        for i in 0..<9 { nine += padHeader(i == 8 ? 135 : 60) }
        #expect(throws: PacketParseError.tooManyExtensionHeaders) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 0, extensions: nine))
        }
    }

    @Test func fragmentHeader() {
        let frag: [UInt8] = [135, 0, 0, 1, 0, 0, 0, 42] // offset 0, M=1
        #expect(throws: PacketParseError.fragmented) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 44, extensions: frag))
        }
        #expect(throws: PacketParseError.fragmented) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: padHeader(44) + frag))
        }
    }

    @Test func hopByHopMustBeFirst() {
        #expect(throws: PacketParseError.hopByHopNotFirst) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: padHeader(0) + padHeader(135)))
        }
    }

    @Test func notMobilityHeader() {
        #expect(throws: PacketParseError.notMobilityHeader(17)) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 17, extensions: []))
        }
        #expect(throws: PacketParseError.notMobilityHeader(59)) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: padHeader(59)))
        }
    }

    /// An AH (RFC 4302 §2.2) with a 12-octet ICV: Payload Len 4 = (12 + 12) / 4 - 2.
    func authHeader(_ next: UInt8) -> [UInt8] { [next, 4, 0, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 1] + [UInt8](repeating: 0xAB, count: 12) }

    @Test func authenticationHeaderIsSkippedAsTheDataPlaneDoes() throws {
        // The data plane punts an MH behind an AH (bpf/lib/parse.h); the parser finds it too.
        let p = try IPv6PacketParser.parseMobility(packet(nextHeader: 51, extensions: authHeader(135)))
        #expect(p.mhOffset == 40 + 24)
        let q = try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: padHeader(51) + authHeader(135)))
        #expect(q.mhOffset == 40 + 8 + 24)
        // An AH longer than the payload is truncated, not read past.
        var long = authHeader(135)
        long[1] = 40
        #expect(throws: PacketParseError.truncated) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 51, extensions: long))
        }
    }

    @Test func extensionHeaderOverrunsPayload() {
        // Hdr Ext Len 5 (48 octets) but only the MH follows.
        #expect(throws: PacketParseError.truncated) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: [135, 5, 1, 4, 0, 0, 0, 0]))
        }
    }

    @Test func homeAddressOptionVariants() throws {
        // HAO preceded by Pad1 ×2 and PadN(2): still found (alignment is not enforced on receipt).
        let ext: [UInt8] = [135, 2, 0, 0, 1, 0, 201, 16] + hoa.bytes
        let p = try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: ext))
        #expect(p.homeAddressOption == hoa && p.checksumSource == hoa)
    }

    @Test func malformedOptions() {
        let cases: [[UInt8]] = [
            [135, 0, 1, 5, 0, 0, 0, 0],                                // PadN overruns the header
            [135, 0, 0, 0, 0, 0, 0, 1],                                // a type octet with no length octet
            [135, 1, 0, 0, 0, 0, 201, 8] + [UInt8](repeating: 0, count: 8), // HAO length 8
            [135, 5, 0, 0, 1, 0, 201, 16] + hoa.bytes + [1, 2, 0, 0, 201, 16] + coa.bytes + [1, 0], // two HAOs
        ]
        for ext in cases {
            #expect(throws: PacketParseError.malformedOption, "\(ext.prefix(8))") {
                try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: ext))
            }
        }
    }

    @Test func unknownOptions() throws {
        // 0x1e: top bits 00, skip. 0x9e: top bits 10, discard.
        #expect(throws: Never.self) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: [135, 0, 0x1e, 4, 0, 0, 0, 0]))
        }
        #expect(throws: PacketParseError.unrecognizedOption(0x9e)) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 60, extensions: [135, 0, 0x9e, 4, 0, 0, 0, 0]))
        }
        // A Home Address option in a Hop-by-Hop header is an unknown 0xC9 there: discard.
        #expect(throws: PacketParseError.unrecognizedOption(201)) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 0, extensions: [135, 2, 1, 2, 0, 0, 201, 16] + hoa.bytes))
        }
    }

    func rh2(segmentsLeft: UInt8, hdrExtLen: UInt8 = 2, type: UInt8 = 2) -> [UInt8] {
        var h: [UInt8] = [135, hdrExtLen, type, segmentsLeft, 0, 0, 0, 0] + hoa.bytes
        if hdrExtLen > 2 { h += [UInt8](repeating: 0, count: Int(hdrExtLen - 2) * 8) }
        return h
    }

    @Test func routingHeaders() throws {
        let withRH = try IPv6PacketParser.parseMobility(packet(nextHeader: 43, extensions: rh2(segmentsLeft: 1)))
        #expect(withRH.routingType2Address == hoa && withRH.finalDestination == hoa)
        // Segments Left 0: already processed, the destination is final (RFC 8200 §4.4).
        let done = try IPv6PacketParser.parseMobility(packet(nextHeader: 43, extensions: rh2(segmentsLeft: 0)))
        #expect(done.routingType2Address == nil && done.finalDestination == ha)
        for bad in [rh2(segmentsLeft: 2), rh2(segmentsLeft: 1, hdrExtLen: 4), rh2(segmentsLeft: 1, type: 0)] {
            #expect(throws: PacketParseError.badRoutingHeader) {
                try IPv6PacketParser.parseMobility(packet(nextHeader: 43, extensions: bad))
            }
        }
        // Another routing type with nothing left to do is skipped.
        #expect(throws: Never.self) {
            try IPv6PacketParser.parseMobility(packet(nextHeader: 43, extensions: rh2(segmentsLeft: 0, type: 0)))
        }
    }

    @Test func neighborAdvertisementParsing() throws {
        let na = try #require(IPv6PacketParser.parseNeighborAdvertisement(Scapy.neighborAdvertisement))
        #expect(na.source == addr("fe80::1") && na.target == hoa && na.flags == 0x20)

        let solicited = PacketBuilder.neighborAdvertisement(target: hoa, source: hoa, destination: addr("fe80::1"),
                                                            flags: (router: true, solicited: true, override: false),
                                                            targetLinkLayer: nil)
        #expect(IPv6PacketParser.parseNeighborAdvertisement(solicited)?.flags == 0xc0)

        var badHop = Scapy.neighborAdvertisement
        badHop[7] = 64
        #expect(IPv6PacketParser.parseNeighborAdvertisement(badHop) == nil)
        var badSum = Scapy.neighborAdvertisement
        badSum[50] ^= 0xff
        #expect(IPv6PacketParser.parseNeighborAdvertisement(badSum) == nil)
        // A Neighbor Solicitation is not an advertisement.
        #expect(IPv6PacketParser.parseNeighborAdvertisement(Scapy.dadSolicitation) == nil)
        #expect(IPv6PacketParser.parseNeighborAdvertisement([]) == nil)
        #expect(IPv6PacketParser.parseNeighborAdvertisement(Array(Scapy.neighborAdvertisement.prefix(60))) == nil)
    }

    @Test func neighborSolicitationWithSourceLinkLayer() {
        let ns = PacketBuilder.neighborSolicitation(target: hoa, source: addr("fe80::1"), destination: hoa.solicitedNodeMulticast,
                                                    sourceLinkLayer: [2, 0, 0, 0, 0, 1])
        #expect(ns.count == 40 + 24 + 8)
        #expect(ns[7] == 255 && ns[6] == 58)
        #expect(Array(ns[64...]) == [1, 1, 2, 0, 0, 0, 0, 1])
        #expect(InternetChecksum.upperLayer(source: addr("fe80::1"), destination: hoa.solicitedNodeMulticast,
                                            nextHeader: 58, payload: Array(ns[40...])) == 0)
    }

    @Test func bindingUpdateFromHomeHasNoDestinationOptions() throws {
        let bu = BindingUpdate(sequence: 3, flags: [.ack, .home], lifetime: 0)
        let p = PacketBuilder.bindingUpdate(bu, careOf: hoa, homeAgent: ha, homeAddress: hoa)
        #expect(p[6] == 135)
        let parsed = try IPv6PacketParser.parseMobility(p)
        #expect(parsed.homeAddressOption == nil && parsed.source == hoa)
        #expect(try MobilityHeaderCodec.decode(parsed.mh, source: parsed.checksumSource,
                                               destination: parsed.checksumDestination) == .bindingUpdate(bu))
    }

    @Test func bindingAckWithoutRoutingHeader() throws {
        // A BU that came from the home address itself is answered straight to it.
        let ba = BindingAcknowledgement(status: .notHomeAgentForThisMN, sequence: 3, lifetime: 0)
        let p = PacketBuilder.bindingAcknowledgement(ba, from: ha, to: hoa, homeAddress: nil, hopLimit: 7)
        #expect(p.count == 56 && p[6] == 135 && p[7] == 7)
        let parsed = try IPv6PacketParser.parseMobility(p)
        #expect(parsed.routingType2Address == nil && parsed.destination == hoa)
        #expect(try MobilityHeaderCodec.decode(parsed.mh, source: ha, destination: hoa) == .bindingAcknowledgement(ba))
    }

    @Test func bindingErrorPacket() throws {
        let be = BindingError(status: 2, homeAddress: hoa)
        let p = PacketBuilder.bindingError(be, from: ha, to: coa)
        #expect(Array(p[40...]) == MobilityHeaderVectorTests.beStatus2)
        let parsed = try IPv6PacketParser.parseMobility(p)
        #expect(parsed.source == ha && parsed.destination == coa && parsed.routingType2Address == nil)
    }

    @Test func parameterProblemPacket() {
        let invoking = [UInt8](repeating: 0xaa, count: 2000)
        let p = PacketBuilder.parameterProblem(code: 0, pointer: 64, invoking: invoking, from: ha, to: coa)
        #expect(p.count == 1280)
        #expect(Array(p[40..<42]) == [4, 0])
        #expect(Array(p[44..<48]) == [0, 0, 0, 64])
        #expect(InternetChecksum.upperLayer(source: ha, destination: coa, nextHeader: 58, payload: Array(p[40...])) == 0)
    }
}
