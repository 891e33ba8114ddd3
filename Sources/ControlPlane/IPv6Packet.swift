/// IPv6 next-header values used here (IANA protocol numbers).
enum IPProto {
    static let hopByHop: UInt8 = 0
    static let routing: UInt8 = 43
    static let fragment: UInt8 = 44
    static let authentication: UInt8 = 51
    static let icmpv6: UInt8 = 58
    static let destinationOptions: UInt8 = 60
    static let mobility: UInt8 = 135
}

/// Home Address destination option type (RFC 6275 §6.3): 0xC9, "discard and send ICMP
/// Parameter Problem if not understood".
let homeAddressOptionType: UInt8 = 201

/// A received IPv6 packet that carries a Mobility Header, with the fields the home agent uses.
public struct MobilityPacket: Sendable, Equatable {
    /// IPv6 header source (the care-of address for a mobile node away from home).
    public var source: IPv6Address
    /// IPv6 header destination.
    public var destination: IPv6Address
    public var hopLimit: UInt8
    /// Home address from a Home Address destination option (RFC 6275 §6.3).
    public var homeAddressOption: IPv6Address?
    /// Address from a Type 2 Routing Header with Segments Left 1 (RFC 6275 §6.4).
    public var routingType2Address: IPv6Address?
    /// The whole Mobility Header (up to the end of the IPv6 payload).
    public var mh: [UInt8]
    /// Byte offset of the Mobility Header in the packet (for ICMP Parameter Problem pointers).
    public var mhOffset: Int

    public init(source: IPv6Address, destination: IPv6Address, hopLimit: UInt8,
                homeAddressOption: IPv6Address?, routingType2Address: IPv6Address?, mh: [UInt8], mhOffset: Int) {
        self.source = source
        self.destination = destination
        self.hopLimit = hopLimit
        self.homeAddressOption = homeAddressOption
        self.routingType2Address = routingType2Address
        self.mh = mh
        self.mhOffset = mhOffset
    }

    /// Pseudo-header source for the MH checksum (RFC 6275 §6.1.1): the home address when a Home
    /// Address option is present, since that is what the receiving stack puts in the source.
    public var checksumSource: IPv6Address { homeAddressOption ?? source }

    /// Pseudo-header destination (RFC 8200 §8.1): the final destination. On a packet still
    /// carrying an unprocessed Type 2 Routing Header (Segments Left 1) that is the routing header's
    /// address; otherwise the IPv6 destination.
    public var checksumDestination: IPv6Address { routingType2Address ?? destination }

    /// The address this packet is finally for; same as `checksumDestination`.
    public var finalDestination: IPv6Address { checksumDestination }
}

public enum PacketParseError: Error, Equatable, Hashable, Sendable {
    /// Version field is not 6 (or the buffer is empty of a header).
    case notIPv6
    /// The buffer ends before the IPv6 header, the payload length or an extension header.
    case truncated
    /// More than `IPv6PacketParser.maxExtensionHeaders` extension headers.
    case tooManyExtensionHeaders
    /// A Fragment header: Mobility Headers are not reassembled here.
    case fragmented
    /// A Hop-by-Hop or Destination Options TLV that overruns its header, a Home Address option
    /// whose length is not 16, or a second Home Address option.
    case malformedOption
    /// An option we do not know whose type says "discard" (RFC 8200 §4.2, top bits not 00).
    case unrecognizedOption(UInt8)
    /// Hop-by-Hop Options not immediately after the IPv6 header (RFC 8200 §4.3).
    case hopByHopNotFirst
    /// The header chain ends in something other than a Mobility Header.
    case notMobilityHeader(UInt8)
    /// A Type 2 Routing Header with Hdr Ext Len other than 2 or Segments Left other than 0/1
    /// (RFC 6275 §6.4), or another routing type with Segments Left non-zero (RFC 8200 §4.4).
    case badRoutingHeader
}

/// Parses packets handed over by the data plane, starting at the IPv6 header.
public enum IPv6PacketParser {
    public static let maxExtensionHeaders = 8

    struct Chain {
        var source: IPv6Address
        var destination: IPv6Address
        var hopLimit: UInt8
        var homeAddressOption: IPv6Address?
        var routingType2Address: IPv6Address?
        var nextHeader: UInt8
        /// Offset of the upper-layer header.
        var offset: Int
        /// End of the IPv6 payload (trailing bytes beyond it are ignored).
        var end: Int
    }

    /// Walks the IPv6 header and its Hop-by-Hop, Routing, Destination Options and
    /// Authentication headers. A Fragment header throws `.fragmented`, or with
    /// `stopAtFragment` ends the walk there (next header 44, offset at the Fragment header).
    static func walk(_ p: UnsafeRawBufferPointer, stopAtFragment: Bool = false) throws(PacketParseError) -> Chain {
        guard p.count >= 1 else { throw .truncated }
        guard p[0] >> 4 == 6 else { throw .notIPv6 }
        guard p.count >= 40 else { throw .truncated }
        let payloadLength = Int(p[4]) << 8 | Int(p[5])
        let end = 40 + payloadLength
        // A longer buffer (link padding) is fine; a shorter one is not.
        guard end <= p.count else { throw .truncated }
        var chain = Chain(source: IPv6Address(p, at: 8), destination: IPv6Address(p, at: 24), hopLimit: p[7],
                          homeAddressOption: nil, routingType2Address: nil, nextHeader: p[6], offset: 40, end: end)
        var extensionHeaders = 0
        /// The next extension header's length from its second octet (`length(octet)`), checked
        /// against the limit on their number and against the payload's end.
        func next(_ length: (Int) -> Int) throws(PacketParseError) -> (start: Int, length: Int) {
            extensionHeaders += 1
            guard extensionHeaders <= maxExtensionHeaders else { throw .tooManyExtensionHeaders }
            let start = chain.offset
            guard start + 8 <= end else { throw .truncated }
            let n = length(Int(p[start + 1]))
            guard start + n <= end else { throw .truncated }
            return (start, n)
        }
        loop: while true {
            switch chain.nextHeader {
            case IPProto.hopByHop, IPProto.destinationOptions, IPProto.routing:
                if chain.nextHeader == IPProto.hopByHop && extensionHeaders != 0 { throw .hopByHopNotFirst }
                let (start, length) = try next { ($0 + 1) * 8 }
                if chain.nextHeader == IPProto.routing {
                    try routing(p, start: start, length: length, into: &chain)
                } else {
                    try options(p, from: start + 2, to: start + length,
                                destinationOptions: chain.nextHeader == IPProto.destinationOptions, into: &chain)
                }
                chain.nextHeader = p[start]
                chain.offset = start + length
            case IPProto.authentication:
                // RFC 4302 §2.2: Payload Len in 4-octet units, minus 2. Skipped, as the data
                // plane skips it (bpf/lib/parse.h); the ICV is not verified here (no IPsec SA
                // database): RFC 4285 is what authenticates a BU.
                let (start, length) = try next { ($0 + 2) * 4 }
                chain.nextHeader = p[start]
                chain.offset = start + length
            case IPProto.fragment:
                if stopAtFragment { break loop }
                throw .fragmented
            default:
                break loop
            }
        }
        return chain
    }

    private static func routing(_ p: UnsafeRawBufferPointer, start: Int, length: Int,
                                into chain: inout Chain) throws(PacketParseError) {
        let routingType = p[start + 2]
        let segmentsLeft = p[start + 3]
        if routingType == 2 {
            // RFC 6275 §6.4: Hdr Ext Len 2, exactly one address, Segments Left 1.
            guard p[start + 1] == 2 else { throw .badRoutingHeader }
            switch segmentsLeft {
            case 0: break // Already processed: the IPv6 destination is the final one (RFC 8200 §4.4).
            case 1: chain.routingType2Address = IPv6Address(p, at: start + 8)
            default: throw .badRoutingHeader
            }
        } else if segmentsLeft != 0 {
            // RFC 8200 §4.4: an unrecognized routing type with segments left must be discarded.
            throw .badRoutingHeader
        }
    }

    private static func options(_ p: UnsafeRawBufferPointer, from: Int, to end: Int, destinationOptions: Bool,
                                into chain: inout Chain) throws(PacketParseError) {
        var i = from
        while i < end {
            let type = p[i]
            if type == 0 { i += 1; continue } // Pad1
            guard i + 2 <= end else { throw .malformedOption }
            let length = Int(p[i + 1])
            guard i + 2 + length <= end else { throw .malformedOption }
            switch type {
            case 1:
                break // PadN
            case homeAddressOptionType where destinationOptions:
                // RFC 6275 §6.3: Option Length 16; the option MUST NOT appear more than once.
                guard length == 16, chain.homeAddressOption == nil else { throw .malformedOption }
                chain.homeAddressOption = IPv6Address(p, at: i + 2)
            default:
                // RFC 8200 §4.2: the two high-order bits say whether an unknown option may be skipped.
                guard type >> 6 == 0 else { throw .unrecognizedOption(type) }
            }
            i += 2 + length
        }
    }

    /// Parses an IPv6 packet whose header chain ends in a Mobility Header.
    public static func parseMobility(_ bytes: [UInt8]) throws(PacketParseError) -> MobilityPacket {
        let result: Result<MobilityPacket, PacketParseError> = bytes.withUnsafeBytes { p in
            do throws(PacketParseError) {
                let chain = try walk(p)
                guard chain.nextHeader == IPProto.mobility else {
                    return .failure(.notMobilityHeader(chain.nextHeader))
                }
                return .success(MobilityPacket(
                    source: chain.source, destination: chain.destination, hopLimit: chain.hopLimit,
                    homeAddressOption: chain.homeAddressOption, routingType2Address: chain.routingType2Address,
                    mh: Array(p[chain.offset..<chain.end]), mhOffset: chain.offset))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Parses an IPv6 packet carrying an ICMPv6 Neighbor Advertisement (RFC 4861 §4.4) and
    /// validates it as §7.1.2 asks: hop limit 255, code 0, length >= 24, valid checksum,
    /// target not multicast. Returns nil for anything else. `flags` is the R|S|O byte.
    public static func parseNeighborAdvertisement(_ bytes: [UInt8]) -> (source: IPv6Address, target: IPv6Address, flags: UInt8)? {
        bytes.withUnsafeBytes { p -> (source: IPv6Address, target: IPv6Address, flags: UInt8)? in
            guard let chain = try? walk(p),
                  chain.nextHeader == IPProto.icmpv6,
                  chain.hopLimit == 255,
                  chain.end - chain.offset >= 24
            else { return nil }
            let icmp = UnsafeRawBufferPointer(rebasing: p[chain.offset..<chain.end])
            guard icmp[0] == 136, icmp[1] == 0,
                  InternetChecksum.upperLayer(source: chain.source, destination: chain.checksumDestination,
                                              nextHeader: IPProto.icmpv6, payload: icmp) == 0
            else { return nil }
            let target = IPv6Address(icmp, at: 8)
            guard !target.isMulticast else { return nil }
            return (chain.source, target, icmp[4])
        }
    }
}

extension IPv6PacketParser.Chain {
    var checksumDestination: IPv6Address { routingType2Address ?? destination }
}

/// Builds the complete IPv6 packets (no link-layer header) that the home agent sends.
public enum PacketBuilder {
    static func ipv6Header(payloadLength: Int, nextHeader: UInt8, hopLimit: UInt8,
                           source: IPv6Address, destination: IPv6Address, into out: inout [UInt8]) {
        precondition(payloadLength <= 0xffff)
        out.append(contentsOf: [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xff), nextHeader, hopLimit])
        source.append(to: &out)
        destination.append(to: &out)
    }

    /// A Binding Acknowledgement from the home agent.
    ///
    /// RFC 6275 §9.5.4 / §10.3.1: when the Binding Update came from a care-of address with a Home
    /// Address option, the BA goes to that care-of address with a Type 2 Routing Header carrying
    /// the home address (`homeAddress` non-nil); otherwise straight to `careOf` (which then is
    /// the address the BU came from). The MH checksum uses the final destination, the home address.
    public static func bindingAcknowledgement(_ ba: BindingAcknowledgement, from ha: IPv6Address, to careOf: IPv6Address,
                                              homeAddress: IPv6Address?, hopLimit: UInt8 = 64) -> [UInt8] {
        let mh = MobilityHeaderCodec.encode(.bindingAcknowledgement(ba), source: ha, destination: homeAddress ?? careOf)
        return bindingAcknowledgementPacket(mh: mh, from: ha, to: careOf, homeAddress: homeAddress, hopLimit: hopLimit)
    }

    /// IPv6 header (+ Type 2 Routing Header with the home address when given) around an encoded BA.
    static func bindingAcknowledgementPacket(mh: [UInt8], from ha: IPv6Address, to careOf: IPv6Address,
                                             homeAddress: IPv6Address?, hopLimit: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(40 + 24 + mh.count)
        if let homeAddress {
            ipv6Header(payloadLength: 24 + mh.count, nextHeader: IPProto.routing, hopLimit: hopLimit,
                       source: ha, destination: careOf, into: &out)
            // RFC 6275 §6.4: Next Header, Hdr Ext Len 2, Routing Type 2, Segments Left 1, Reserved, Home Address.
            out.append(contentsOf: [IPProto.mobility, 2, 2, 1, 0, 0, 0, 0])
            homeAddress.append(to: &out)
        } else {
            ipv6Header(payloadLength: mh.count, nextHeader: IPProto.mobility, hopLimit: hopLimit,
                       source: ha, destination: careOf, into: &out)
        }
        out.append(contentsOf: mh)
        return out
    }

    /// A Binding Error (RFC 6275 §9.3.3): sent to the source address of the offending packet,
    /// never with a routing header; the home address travels in the message itself.
    public static func bindingError(_ be: BindingError, from: IPv6Address, to: IPv6Address, hopLimit: UInt8 = 64) -> [UInt8] {
        let mh = MobilityHeaderCodec.encode(.bindingError(be), source: from, destination: to)
        var out: [UInt8] = []
        out.reserveCapacity(40 + mh.count)
        ipv6Header(payloadLength: mh.count, nextHeader: IPProto.mobility, hopLimit: hopLimit,
                   source: from, destination: to, into: &out)
        out.append(contentsOf: mh)
        return out
    }

    /// A Binding Update as a mobile node away from home sends it (RFC 6275 §11.7.1): from the
    /// care-of address, with a Destination Options header holding PadN and the Home Address
    /// option at offset 6 mod 8 (§6.3 alignment 8n+6). The MH checksum uses the home address as
    /// source (§6.1.1). When `careOf == homeAddress` (at home) the option is left out.
    public static func bindingUpdate(_ bu: BindingUpdate, careOf: IPv6Address, homeAgent: IPv6Address,
                                     homeAddress: IPv6Address, hopLimit: UInt8 = 64) -> [UInt8] {
        bindingUpdatePacket(mh: MobilityHeaderCodec.encode(.bindingUpdate(bu), source: homeAddress, destination: homeAgent),
                            careOf: careOf, homeAgent: homeAgent, homeAddress: homeAddress, hopLimit: hopLimit)
    }

    /// IPv6 header (+ Destination Options with the Home Address option when away) around an encoded BU.
    static func bindingUpdatePacket(mh: [UInt8], careOf: IPv6Address, homeAgent: IPv6Address,
                                    homeAddress: IPv6Address, hopLimit: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        if careOf == homeAddress {
            ipv6Header(payloadLength: mh.count, nextHeader: IPProto.mobility, hopLimit: hopLimit,
                       source: careOf, destination: homeAgent, into: &out)
        } else {
            ipv6Header(payloadLength: 24 + mh.count, nextHeader: IPProto.destinationOptions, hopLimit: hopLimit,
                       source: careOf, destination: homeAgent, into: &out)
            // Next Header, Hdr Ext Len 2 (24 octets), PadN with 2 data octets, HAO type 201 length 16.
            out.append(contentsOf: [IPProto.mobility, 2, 1, 2, 0, 0, homeAddressOptionType, 16])
            homeAddress.append(to: &out)
        }
        out.append(contentsOf: mh)
        return out
    }

    /// ICMPv6 message in an IPv6 packet with the checksum filled in (RFC 4443 §2.3).
    static func icmpv6(_ body: [UInt8], source: IPv6Address, destination: IPv6Address, hopLimit: UInt8) -> [UInt8] {
        var icmp = body
        let checksum = InternetChecksum.upperLayer(source: source, destination: destination,
                                                   nextHeader: IPProto.icmpv6, payload: icmp)
        icmp[2] = UInt8(checksum >> 8)
        icmp[3] = UInt8(checksum & 0xff)
        var out: [UInt8] = []
        out.reserveCapacity(40 + icmp.count)
        ipv6Header(payloadLength: icmp.count, nextHeader: IPProto.icmpv6, hopLimit: hopLimit,
                   source: source, destination: destination, into: &out)
        out.append(contentsOf: icmp)
        return out
    }

    /// Link-layer address option (RFC 4861 §4.6.1), padded to a multiple of 8 octets.
    static func linkLayerOption(type: UInt8, _ address: [UInt8], into out: inout [UInt8]) {
        let total = (2 + address.count + 7) / 8 * 8
        out.append(type)
        out.append(UInt8(total / 8))
        out.append(contentsOf: address)
        out.append(contentsOf: repeatElement(0, count: total - 2 - address.count))
    }

    /// Neighbor Solicitation (RFC 4861 §4.3), hop limit 255. For Duplicate Address Detection
    /// pass `source: .unspecified` and the target's solicited-node multicast as destination;
    /// the Source Link-Layer Address option is then left out, as §4.3 requires.
    public static func neighborSolicitation(target: IPv6Address, source: IPv6Address, destination: IPv6Address,
                                            sourceLinkLayer: [UInt8]?) -> [UInt8] {
        var body: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0]
        target.append(to: &body)
        if let sourceLinkLayer, !source.isUnspecified {
            linkLayerOption(type: 1, sourceLinkLayer, into: &body)
        }
        return icmpv6(body, source: source, destination: destination, hopLimit: 255)
    }

    /// Echo Request (RFC 4443 §4.1). A MAG sends one to all-nodes on an access link whose
    /// carrier just came up: every host there answers at once from its own MAC, which tells the
    /// MAG who attached (a host that roamed with a carrier flap sends no RS, design doc §2.2).
    public static func echoRequest(source: IPv6Address, destination: IPv6Address, identifier: UInt16, sequence: UInt16,
                                   hopLimit: UInt8 = 255) -> [UInt8] {
        let body: [UInt8] = [128, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff),
                             UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        return icmpv6(body, source: source, destination: destination, hopLimit: hopLimit)
    }

    /// Neighbor Advertisement (RFC 4861 §4.4), hop limit 255. The home agent sends an
    /// unsolicited one (override set, to all-nodes ff02::1) to take over a home address
    /// (RFC 6275 §10.4.1).
    public static func neighborAdvertisement(target: IPv6Address, source: IPv6Address, destination: IPv6Address,
                                             flags: (router: Bool, solicited: Bool, override: Bool),
                                             targetLinkLayer: [UInt8]?) -> [UInt8] {
        var flagByte: UInt8 = 0
        if flags.router { flagByte |= 0x80 }
        if flags.solicited { flagByte |= 0x40 }
        if flags.override { flagByte |= 0x20 }
        var body: [UInt8] = [136, 0, 0, 0, flagByte, 0, 0, 0]
        target.append(to: &body)
        if let targetLinkLayer {
            linkLayerOption(type: 2, targetLinkLayer, into: &body)
        }
        return icmpv6(body, source: source, destination: destination, hopLimit: 255)
    }

    /// ICMPv6 Time Exceeded (RFC 4443 §3.3), code 0 (hop limit exceeded in transit), quoting as
    /// much of `invoking` as fits in the minimum MTU of 1280.
    public static func timeExceeded(invoking: [UInt8], from source: IPv6Address, to destination: IPv6Address,
                                    hopLimit: UInt8 = 64) -> [UInt8] {
        var body: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0]
        body.append(contentsOf: invoking.prefix(1280 - 40 - 8))
        return icmpv6(body, source: source, destination: destination, hopLimit: hopLimit)
    }

    /// ICMPv6 Parameter Problem (RFC 4443 §3.4) quoting as much of `invoking` as fits in the
    /// minimum MTU of 1280. RFC 6275 §9.2 asks for code 0 with the pointer at the bad MH field.
    public static func parameterProblem(code: UInt8, pointer: UInt32, invoking: [UInt8],
                                        from source: IPv6Address, to destination: IPv6Address,
                                        hopLimit: UInt8 = 64) -> [UInt8] {
        var body: [UInt8] = [4, code, 0, 0,
                             UInt8(pointer >> 24), UInt8(pointer >> 16 & 0xff), UInt8(pointer >> 8 & 0xff), UInt8(pointer & 0xff)]
        body.append(contentsOf: invoking.prefix(1280 - 40 - 8))
        return icmpv6(body, source: source, destination: destination, hopLimit: hopLimit)
    }
}
