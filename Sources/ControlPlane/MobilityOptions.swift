/// Mobility options (RFC 6275 §6.2): TLVs after the fixed part of a Mobility Header message.
public enum MobilityOption: Equatable, Hashable, Sendable {
    /// §6.2.2: a single zero byte.
    case pad1
    /// §6.2.3: `n` is the total option length including the type and length bytes (n >= 2).
    case padN(Int)
    /// §6.2.4: refresh interval in units of 4 seconds.
    case bindingRefreshAdvice(UInt16)
    /// §6.2.5
    case alternateCareOfAddress(IPv6Address)
    /// §6.2.6
    case nonceIndices(home: UInt16, careOf: UInt16)
    /// §6.2.7: the authenticator bytes.
    case bindingAuthorizationData([UInt8])
    /// RFC 4283 §3 Mobile Node Identifier option (type 8): Subtype (1 = NAI, RFC 4283 §3.1) and
    /// the identifier bytes (at most 254, since the Option Length covers the subtype too).
    case mobileNodeIdentifier(subtype: UInt8, identifier: [UInt8])
    /// RFC 4285 §5 Mobility Message Authentication option (type 9): Subtype (1 MN-HA, 2 MN-AAA),
    /// Mobility SPI, Authentication Data (the 96-bit authenticator for MN-HA, §5.1).
    case mobilityMessageAuthentication(subtype: UInt8, spi: UInt32, authenticator: [UInt8])
    /// RFC 4285 §6 Mobility Message Replay Protection option (type 10): a 64-bit NTP timestamp
    /// (seconds since 1900 in the high 32 bits, the fraction in the low 32 bits).
    case replayProtection(UInt64)
    /// RFC 5213 §8.3 Home Network Prefix option (type 22): the mobile node's prefix; `::/0`
    /// (all zero) in a PBU asks the LMA to assign one (§6.9.1.1).
    case homeNetworkPrefix(IPv6Prefix)
    /// RFC 5213 §8.4 Handoff Indicator option (type 23): `HandoffIndicator` values.
    case handoffIndicator(UInt8)
    /// RFC 5213 §8.5 Access Technology Type option (type 24): `AccessTechnology` values.
    case accessTechnologyType(UInt8)
    /// RFC 5213 §8.6 Mobile Node Link-layer Identifier option (type 25): the identifier in
    /// RFC 4861 §4.6 form (the 6-byte MAC on Ethernet).
    case mobileNodeLinkLayerIdentifier([UInt8])
    /// RFC 5213 §8.7 Link-local Address option (type 26): the MAG's link-local address.
    case linkLocalAddress(IPv6Address)
    /// RFC 5213 §8.8 Timestamp option (type 27): 48.16 fixed point since 1970 (not RFC
    /// 4285's NTP format).
    case timestamp(ProxyTimestamp)
    /// Any other type, data kept raw.
    case unknown(type: UInt8, data: [UInt8])

    public enum Kind {
        public static let pad1: UInt8 = 0
        public static let padN: UInt8 = 1
        public static let bindingRefreshAdvice: UInt8 = 2
        public static let alternateCareOfAddress: UInt8 = 3
        public static let nonceIndices: UInt8 = 4
        public static let bindingAuthorizationData: UInt8 = 5
        public static let mobileNodeIdentifier: UInt8 = 8
        public static let authentication: UInt8 = 9
        public static let replayProtection: UInt8 = 10
        public static let homeNetworkPrefix: UInt8 = 22
        public static let handoffIndicator: UInt8 = 23
        public static let accessTechnologyType: UInt8 = 24
        public static let mobileNodeLinkLayerIdentifier: UInt8 = 25
        public static let linkLocalAddress: UInt8 = 26
        public static let timestamp: UInt8 = 27
    }

    /// Handoff Indicator values (RFC 5213 §8.4).
    public enum HandoffIndicator {
        public static let attachmentOverNewInterface: UInt8 = 1
        public static let handoffBetweenInterfaces: UInt8 = 2
        public static let handoffBetweenMAGsSameInterface: UInt8 = 3
        public static let unknown: UInt8 = 4
        public static let notChanged: UInt8 = 5
    }

    /// Access Technology Type values (RFC 5213 §8.5).
    public enum AccessTechnology {
        public static let virtual: UInt8 = 1
        public static let ppp: UInt8 = 2
        public static let ethernet: UInt8 = 3   // IEEE 802.3
        public static let wlan: UInt8 = 4       // IEEE 802.11a/b/g
        public static let wimax: UInt8 = 5      // IEEE 802.16e
    }

    /// Mobile Node Identifier subtypes (RFC 4283 §3.1).
    public enum IdentifierSubtype {
        /// MN-NAI: a Network Access Identifier (RFC 4282).
        public static let nai: UInt8 = 1
    }

    /// Mobility Message Authentication subtypes (RFC 4285 §5.1, §5.2).
    public enum AuthenticationSubtype {
        /// MN-HA: shared key between mobile node and home agent (§5.1).
        public static let mnHA: UInt8 = 1
        /// MN-AAA: key shared with an AAA server (§5.2). Decoded, not verified here.
        public static let mnAAA: UInt8 = 2
    }

    public var type: UInt8 {
        switch self {
        case .pad1: return Kind.pad1
        case .padN: return Kind.padN
        case .bindingRefreshAdvice: return Kind.bindingRefreshAdvice
        case .alternateCareOfAddress: return Kind.alternateCareOfAddress
        case .nonceIndices: return Kind.nonceIndices
        case .bindingAuthorizationData: return Kind.bindingAuthorizationData
        case .mobileNodeIdentifier: return Kind.mobileNodeIdentifier
        case .mobilityMessageAuthentication: return Kind.authentication
        case .replayProtection: return Kind.replayProtection
        case .homeNetworkPrefix: return Kind.homeNetworkPrefix
        case .handoffIndicator: return Kind.handoffIndicator
        case .accessTechnologyType: return Kind.accessTechnologyType
        case .mobileNodeLinkLayerIdentifier: return Kind.mobileNodeLinkLayerIdentifier
        case .linkLocalAddress: return Kind.linkLocalAddress
        case .timestamp: return Kind.timestamp
        case .unknown(let type, _): return type
        }
    }

    var isPadding: Bool {
        switch self {
        case .pad1, .padN: return true
        default: return false
        }
    }

    /// Alignment requirement xn+y from §6.2 as (x, y); the option's type byte must sit at an
    /// offset ≡ y (mod x) from the start of the Mobility Header.
    var alignment: (multiple: Int, offset: Int) {
        switch self {
        case .pad1, .padN: return (1, 0)
        case .bindingRefreshAdvice: return (2, 0)          // §6.2.4: 2n
        case .alternateCareOfAddress: return (8, 6)        // §6.2.5: 8n+6
        case .nonceIndices: return (2, 0)                  // §6.2.6: 2n
        case .bindingAuthorizationData: return (8, 2)      // §6.2.7: 8n+2
        case .mobileNodeIdentifier: return (1, 0)          // RFC 4283 §3: no alignment requirement
        // RFC 4285 §5: 4n+1 (the SPI lands 4-aligned); 8n+5 so that the 19-octet MN-HA option,
        // which must be last (§5.1), ends the header on a multiple of 8 with no padding after it.
        case .mobilityMessageAuthentication: return (8, 5)
        case .replayProtection: return (8, 2)              // RFC 4285 §6: 8n+2
        case .homeNetworkPrefix: return (8, 4)             // RFC 5213 §8.3: 8n+4 (the prefix 8-aligned)
        case .handoffIndicator, .accessTechnologyType: return (1, 0) // §8.4, §8.5: none
        // §8.6: "aligned appropriately" for its size: 8n+6 puts the Reserved field and a
        // 6-byte MAC (8 octets) on an 8-octet boundary, as 8n+6 does for a 16-byte address.
        case .mobileNodeLinkLayerIdentifier: return (8, 6)
        case .linkLocalAddress: return (8, 6)              // §8.7: 8n+6
        case .timestamp: return (8, 2)                     // §8.8: 8n+2
        case .unknown: return (1, 0)
        }
    }

    /// Appends the option's wire form.
    func append(to out: inout [UInt8]) {
        switch self {
        case .pad1:
            out.append(0)
        case .padN(let n):
            precondition(n >= 2 && n <= 257, "PadN total length must be 2...257")
            out.append(Kind.padN)
            out.append(UInt8(n - 2))
            out.append(contentsOf: repeatElement(0, count: n - 2))
        case .bindingRefreshAdvice(let interval):
            out.append(contentsOf: [Kind.bindingRefreshAdvice, 2, UInt8(interval >> 8), UInt8(interval & 0xff)])
        case .alternateCareOfAddress(let address):
            out.append(contentsOf: [Kind.alternateCareOfAddress, 16])
            address.append(to: &out)
        case .nonceIndices(let home, let careOf):
            out.append(contentsOf: [Kind.nonceIndices, 4,
                                    UInt8(home >> 8), UInt8(home & 0xff),
                                    UInt8(careOf >> 8), UInt8(careOf & 0xff)])
        case .bindingAuthorizationData(let data):
            precondition(data.count <= 255)
            out.append(Kind.bindingAuthorizationData)
            out.append(UInt8(data.count))
            out.append(contentsOf: data)
        case .mobileNodeIdentifier(let subtype, let identifier):
            precondition(identifier.count <= 254, "Mobile Node Identifier longer than 254 octets")
            out.append(Kind.mobileNodeIdentifier)
            out.append(UInt8(1 + identifier.count))
            out.append(subtype)
            out.append(contentsOf: identifier)
        case .mobilityMessageAuthentication(let subtype, let spi, let authenticator):
            precondition(authenticator.count <= 250, "Authentication Data longer than 250 octets")
            out.append(Kind.authentication)
            out.append(UInt8(5 + authenticator.count))
            out.append(subtype)
            out.append(contentsOf: [UInt8(spi >> 24), UInt8(spi >> 16 & 0xff), UInt8(spi >> 8 & 0xff), UInt8(spi & 0xff)])
            out.append(contentsOf: authenticator)
        case .replayProtection(let timestamp):
            out.append(Kind.replayProtection)
            out.append(8)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(timestamp >> UInt64(shift) & 0xff)) }
        case .homeNetworkPrefix(let prefix):
            out.append(contentsOf: [Kind.homeNetworkPrefix, 18, 0, UInt8(prefix.length)])
            prefix.address.append(to: &out)
        case .handoffIndicator(let value):
            out.append(contentsOf: [Kind.handoffIndicator, 2, 0, value])
        case .accessTechnologyType(let value):
            out.append(contentsOf: [Kind.accessTechnologyType, 2, 0, value])
        case .mobileNodeLinkLayerIdentifier(let identifier):
            precondition(identifier.count <= 253, "Link-layer Identifier longer than 253 octets")
            out.append(contentsOf: [Kind.mobileNodeLinkLayerIdentifier, UInt8(2 + identifier.count), 0, 0])
            out.append(contentsOf: identifier)
        case .linkLocalAddress(let address):
            out.append(contentsOf: [Kind.linkLocalAddress, 16])
            address.append(to: &out)
        case .timestamp(let timestamp):
            out.append(contentsOf: [Kind.timestamp, 8])
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(timestamp.rawValue >> UInt64(shift) & 0xff)) }
        case .unknown(let type, let data):
            precondition(data.count <= 255 && type != Kind.pad1)
            out.append(type)
            out.append(UInt8(data.count))
            out.append(contentsOf: data)
        }
    }

    /// Appends minimal padding so that the next byte lands at offset ≡ `offset` (mod `multiple`),
    /// offsets counted from the start of `out` (the start of the Mobility Header).
    static func pad(_ out: inout [UInt8], multiple: Int, offset: Int) {
        guard multiple > 1 else { return }
        let needed = ((offset - out.count) % multiple + multiple) % multiple
        switch needed {
        case 0: break
        case 1: MobilityOption.pad1.append(to: &out)
        default: MobilityOption.padN(needed).append(to: &out)
        }
    }

    /// Encodes `options` starting at the current end of `out`, inserting Pad1/PadN before each
    /// option to meet its alignment (§6.2), then pads to a multiple of 8 octets (§6.1.1).
    /// Explicit `.pad1`/`.padN` entries are written as given.
    static func encode(_ options: [MobilityOption], into out: inout [UInt8]) {
        for option in options {
            let (multiple, offset) = option.alignment
            pad(&out, multiple: multiple, offset: offset)
            option.append(to: &out)
        }
        pad(&out, multiple: 8, offset: 0)
    }

    /// Decodes the options in `mh[start..<mh.count]`; they must fill it exactly.
    /// Pad1 and PadN are consumed and not returned: they carry no information (§6.2.2, §6.2.3).
    static func decode(_ mh: UnsafeRawBufferPointer, from start: Int) throws(MHDecodeError) -> [MobilityOption] {
        var options: [MobilityOption] = []
        var i = start
        let end = mh.count
        while i < end {
            let type = mh[i]
            if type == Kind.pad1 {
                i += 1
                continue
            }
            guard i + 2 <= end else { throw .optionOverrun(offset: i) }
            let length = Int(mh[i + 1])
            let data = i + 2
            guard data + length <= end else { throw .optionOverrun(offset: i) }
            switch type {
            case Kind.padN:
                break
            case Kind.bindingRefreshAdvice:
                guard length == 2 else { throw .badOptionLength(type: type, length: length) }
                options.append(.bindingRefreshAdvice(UInt16(mh[data]) << 8 | UInt16(mh[data + 1])))
            case Kind.alternateCareOfAddress:
                guard length == 16 else { throw .badOptionLength(type: type, length: length) }
                options.append(.alternateCareOfAddress(IPv6Address(mh, at: data)))
            case Kind.nonceIndices:
                guard length == 4 else { throw .badOptionLength(type: type, length: length) }
                options.append(.nonceIndices(home: UInt16(mh[data]) << 8 | UInt16(mh[data + 1]),
                                             careOf: UInt16(mh[data + 2]) << 8 | UInt16(mh[data + 3])))
            case Kind.bindingAuthorizationData:
                options.append(.bindingAuthorizationData(Array(mh[data..<data + length])))
            case Kind.mobileNodeIdentifier:
                // RFC 4283 §3: Option Length counts the Subtype and the Identifier.
                guard length >= 1 else { throw .badOptionLength(type: type, length: length) }
                options.append(.mobileNodeIdentifier(subtype: mh[data], identifier: Array(mh[data + 1..<data + length])))
            case Kind.authentication:
                // RFC 4285 §5: Subtype (1) + Mobility SPI (4) + Authentication Data.
                guard length >= 5 else { throw .badOptionLength(type: type, length: length) }
                var spi: UInt32 = 0
                for k in 1...4 { spi = spi << 8 | UInt32(mh[data + k]) }
                options.append(.mobilityMessageAuthentication(subtype: mh[data], spi: spi,
                                                              authenticator: Array(mh[data + 5..<data + length])))
            case Kind.replayProtection:
                // RFC 4285 §6: exactly the 64-bit timestamp.
                guard length == 8 else { throw .badOptionLength(type: type, length: length) }
                var timestamp: UInt64 = 0
                for k in 0..<8 { timestamp = timestamp << 8 | UInt64(mh[data + k]) }
                options.append(.replayProtection(timestamp))
            case Kind.homeNetworkPrefix:
                // RFC 5213 §8.3: Reserved, Prefix Length, Prefix (16): Length MUST be 18.
                guard length == 18, mh[data + 1] <= 128,
                      let prefix = IPv6Prefix(address: IPv6Address(mh, at: data + 2), length: Int(mh[data + 1]))
                else { throw .badOptionLength(type: type, length: length) }
                options.append(.homeNetworkPrefix(prefix))
            case Kind.handoffIndicator, Kind.accessTechnologyType:
                // §8.4, §8.5: Reserved, value; Length MUST be 2.
                guard length == 2 else { throw .badOptionLength(type: type, length: length) }
                options.append(type == Kind.handoffIndicator ? .handoffIndicator(mh[data + 1]) : .accessTechnologyType(mh[data + 1]))
            case Kind.mobileNodeLinkLayerIdentifier:
                // §8.6: Reserved (2) + an identifier of at least one octet.
                guard length >= 3 else { throw .badOptionLength(type: type, length: length) }
                options.append(.mobileNodeLinkLayerIdentifier(Array(mh[data + 2..<data + length])))
            case Kind.linkLocalAddress:
                guard length == 16 else { throw .badOptionLength(type: type, length: length) }
                options.append(.linkLocalAddress(IPv6Address(mh, at: data)))
            case Kind.timestamp:
                guard length == 8 else { throw .badOptionLength(type: type, length: length) }
                var raw: UInt64 = 0
                for k in 0..<8 { raw = raw << 8 | UInt64(mh[data + k]) }
                options.append(.timestamp(ProxyTimestamp(rawValue: raw)))
            default:
                options.append(.unknown(type: type, data: Array(mh[data..<data + length])))
            }
            i = data + length
        }
        return options
    }

    /// Where each option TLV of `mh[start...]` begins (Pad1 and PadN included), without
    /// decoding them. Nil if the TLVs do not fill the buffer exactly.
    static func offsets(in mh: [UInt8], from start: Int) -> [(offset: Int, type: UInt8)]? {
        var result: [(offset: Int, type: UInt8)] = []
        var i = start
        while i < mh.count {
            let type = mh[i]
            result.append((i, type))
            if type == Kind.pad1 { i += 1; continue }
            guard i + 2 <= mh.count else { return nil }
            i += 2 + Int(mh[i + 1])
        }
        return i == mh.count ? result : nil
    }
}
