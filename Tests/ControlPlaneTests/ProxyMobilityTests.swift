import Testing
@testable import ControlPlane

/// Proxy Binding Update and Acknowledgement (RFC 5213 §8) as scapy 2.5 builds them. scapy has
/// no classes for options 22-27, so the reference lays them out by hand with the alignments of
/// §8.3-§8.8 (MIP6OptUnknown, explicit PadN, autopad off); tshark 4.0.17 decodes both packets
/// with no expert info: P flag set, NAI mn1@pmip.example, HNP 2001:db8:100:1::/64, HI 1,
/// ATT 3 (IEEE 802.3), MN-LL-ID 020000000a01, Timestamp 2026-12-06 20:32:44.5 UTC.
///
///     nai=b'mn1@pmip.example'; mac=bytes.fromhex('020000000a01')
///     ts=struct.pack('!Q', (1796589164 << 16) | 0x8000)
///     hnp=bytes([0, 64]) + ipaddress.IPv6Address('2001:db8:100:1::').packed
///     opts=[MIP6OptUnknown(otype=8, odata=b'\x01'+nai), PadN(optdata=b'\0'*3),
///           MIP6OptUnknown(otype=22, odata=hnp), MIP6OptUnknown(otype=23, odata=b'\0\x01'),
///           MIP6OptUnknown(otype=24, odata=b'\0\x03'), PadN(optdata=b'\0'*4),
///           MIP6OptUnknown(otype=25, odata=b'\0\0'+mac), PadN(optdata=b''),
///           MIP6OptUnknown(otype=27, odata=ts), PadN(optdata=b'\0'*2)]
///     pbu=IPv6(src='2001:db8:b1::2', dst='2001:db8:a::1', hlim=64) \
///         /MIP6MH_BU(seq=42, flags='AP', mhtime=15, options=opts, autopad=0)
///     pba=IPv6(src='2001:db8:a::1', dst='2001:db8:b1::2', hlim=64) \
///         /MIP6MH_BA(status=0, flags='P', seq=42, mhtime=15, options=opts, autopad=0)
enum ScapyProxy {
    static let pbu = hex("""
        600000000060874020010db800b10000000000000000000220010db8000a000000000000000000013b0b050042ea002a8200000f
        0811016d6e3140706d69702e6578616d706c6501030000001612004020010db8010000010000000000000000170200011802000301
        040000000019080000020000000a0101001b0800006b15c66c800001020000
        """)
    static let pba = hex("""
        600000000060874020010db8000a0000000000000000000120010db800b1000000000000000000023b0b0600c3ca0020002a000f
        0811016d6e3140706d69702e6578616d706c6501030000001612004020010db8010000010000000000000000170200011802000301
        040000000019080000020000000a0101001b0800006b15c66c800001020000
        """)
}

@Suite("Proxy Mobile IPv6 signaling (RFC 5213 §8)")
struct ProxyMobilityTests {
    let mag = addr("2001:db8:b1::2"), lma = addr("2001:db8:a::1")
    let mac: [UInt8] = [0x02, 0, 0, 0, 0x0a, 0x01]
    let stamp = ProxyTimestamp(rawValue: 1_796_589_164 << 16 | 0x8000)

    var options: [MobilityOption] {
        [.mobileNodeIdentifier(subtype: MobilityOption.IdentifierSubtype.nai, identifier: Array("mn1@pmip.example".utf8)),
         .homeNetworkPrefix(IPv6Prefix("2001:db8:100:1::/64")!),
         .handoffIndicator(MobilityOption.HandoffIndicator.attachmentOverNewInterface),
         .accessTechnologyType(MobilityOption.AccessTechnology.ethernet),
         .mobileNodeLinkLayerIdentifier(mac),
         .timestamp(stamp)]
    }

    @Test("a PBU built here is scapy's byte for byte: flags A|P, no Home Address option, every alignment")
    func proxyBindingUpdateMatchesScapy() throws {
        let pbu = BindingUpdate(sequence: 42, flags: [.ack, .proxy], lifetime: 15, options: options)
        let built = PacketBuilder.proxyBindingUpdate(pbu, from: mag, to: lma)
        #expect(hexString(built) == hexString(ScapyProxy.pbu))

        let packet = try IPv6PacketParser.parseMobility(ScapyProxy.pbu)
        #expect(packet.homeAddressOption == nil && packet.routingType2Address == nil && packet.mhOffset == 40)
        let decoded = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource, destination: packet.checksumDestination)
        #expect(decoded == .bindingUpdate(pbu))
        guard case let .bindingUpdate(bu) = decoded else { return }
        #expect(bu.isProxy && !bu.flags.contains(.home))
        let p = bu.proxyOptions
        #expect(p.networkAccessIdentifier == "mn1@pmip.example")
        #expect(p.homeNetworkPrefixes == [IPv6Prefix("2001:db8:100:1::/64")!])
        #expect(p.handoffIndicators == [1] && p.accessTechnologyTypes == [3] && p.linkLayerIdentifiers == [mac])
        #expect(p.timestamps == [stamp] && p.linkLocalAddresses.isEmpty)
        // Where each option landed (offsets from the start of the MH).
        let at = Dictionary(uniqueKeysWithValues: (MobilityOption.offsets(in: packet.mh, from: 12) ?? [])
            .filter { $0.type > 1 }.map { ($0.type, $0.offset) })
        #expect(at[22]! % 8 == 4 && at[25]! % 8 == 6 && at[27]! % 8 == 2, "\(at)")
    }

    @Test("a PBA built here is scapy's byte for byte: P flag, no Type 2 Routing Header")
    func proxyBindingAcknowledgementMatchesScapy() throws {
        let pba = BindingAcknowledgement(status: .accepted, flags: [.proxy], sequence: 42, lifetime: 15, options: options)
        #expect(hexString(PacketBuilder.proxyBindingAcknowledgement(pba, from: lma, to: mag)) == hexString(ScapyProxy.pba))
        let packet = try IPv6PacketParser.parseMobility(ScapyProxy.pba)
        #expect(packet.routingType2Address == nil)
        #expect(try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource,
                                               destination: packet.checksumDestination) == .bindingAcknowledgement(pba))
    }

    @Test("the Link-local Address option lands at 8n+6; an all-zero prefix asks for one to be assigned")
    func linkLocalAndAssignRequest() throws {
        let pbu = BindingUpdate(sequence: 1, flags: [.ack, .proxy], lifetime: 15, options: [
            .homeNetworkPrefix(IPv6Prefix(address: .unspecified, length: 0)!), .linkLocalAddress(addr("fe80::1"))])
        let mh = MobilityHeaderCodec.encode(.bindingUpdate(pbu), source: mag, destination: lma)
        let offsets = MobilityOption.offsets(in: mh, from: 12)!.filter { $0.type > 1 }
        #expect(offsets.map(\.type) == [22, 26])
        #expect(offsets[0].offset % 8 == 4 && offsets[1].offset % 8 == 6)
        #expect(Array(mh[offsets[0].offset..<offsets[0].offset + 20]) == [22, 18, 0, 0] + [UInt8](repeating: 0, count: 16))
        #expect(try MobilityHeaderCodec.decode(mh, source: mag, destination: lma) == .bindingUpdate(pbu))
    }

    /// (type, data): HNP 17 octets, HNP prefix length 129, HI 1 octet, ATT 3 octets, MN-LL-ID
    /// with no identifier, Link-local 15 octets, Timestamp 7 octets.
    static let badOptions: [BadOption] = [
        BadOption(type: 22, data: zeros(17)), BadOption(type: 22, data: [0, 129] + zeros(16)),
        BadOption(type: 23, data: [1]), BadOption(type: 24, data: [0, 3, 0]), BadOption(type: 25, data: [0, 0]),
        BadOption(type: 26, data: zeros(15)), BadOption(type: 27, data: zeros(7)),
    ]
    struct BadOption: Sendable, CustomTestStringConvertible {
        var type: UInt8
        var data: [UInt8]
        var testDescription: String { "type \(type), \(data.count) octets" }
    }
    static func zeros(_ n: Int) -> [UInt8] { [UInt8](repeating: 0, count: n) }

    @Test("options of the wrong length are refused, not half-read", arguments: badOptions)
    func badLengths(_ bad: BadOption) {
        let (type, data) = (bad.type, bad.data)
        var mh: [UInt8] = [59, 0, 5, 0, 0, 0, 0, 1, 0x82, 0, 0, 15, type, UInt8(data.count)] + data
        while mh.count % 8 != 0 { mh.append(0) } // Pad1s
        mh[1] = UInt8(mh.count / 8 - 1)
        fixChecksum(&mh, source: mag, destination: lma)
        #expect(throws: MHDecodeError.badOptionLength(type: type, length: data.count)) {
            try MobilityHeaderCodec.decode(mh, source: mag, destination: lma)
        }
    }

    @Test("statuses 152-162 have RFC 5213's names and mean rejection")
    func statuses() {
        for raw in UInt8(152)...162 {
            let status = BAStatus(raw)
            #expect(status.name != nil && !status.isAccepted, "\(raw)")
        }
        #expect(BAStatus.timestampMismatch.rawValue == 156 && BAStatus.missingAccessTechTypeOption.rawValue == 162)
    }

    @Test("48.16 timestamps: from the wall clock's NTP time, ordered, differences in ms, never NTP's epoch")
    func timestamps() {
        // 2026-12-06 20:32:44.5 UTC as NTP (seconds since 1900, fraction 0.5).
        let ntp = (UInt64(1_796_589_164) + NTPTimestamp.unixEpochOffset) << 32 | 0x8000_0000
        let t = ProxyTimestamp(ntp: ntp)
        #expect(t == stamp && t.unixSeconds == 1_796_589_164 && t.description == "1796589164.5000s")
        #expect(ProxyTimestamp(unixSeconds: 1_796_589_164, nanoseconds: 500_000_000) == t)
        let later = ProxyTimestamp(unixSeconds: 1_796_589_164, nanoseconds: 800_000_000)
        #expect(later > t && later.milliseconds(since: t) == 299 && t.milliseconds(since: later) == -299)
        let now = ProxyTimestamp.now()
        #expect(now.unixSeconds > 1_700_000_000 && now.unixSeconds < 1 << 40, "seconds since 1970, not 1900")
    }
}
