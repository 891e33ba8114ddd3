/// IPv6 next-header value of the Mobility Header (RFC 6275 §6.1).
public let ipProtoMobility: UInt8 = 135
/// "No next header", the only Payload Proto value allowed in a Mobility Header (§6.1.1, §9.2).
public let ipProtoNone: UInt8 = 59

/// MH Type values (RFC 6275 §6.1.2 ... §6.1.9).
public enum MHType: UInt8, Sendable, CaseIterable {
    case bindingRefreshRequest = 0
    case homeTestInit = 1
    case careOfTestInit = 2
    case homeTest = 3
    case careOfTest = 4
    case bindingUpdate = 5
    case bindingAcknowledgement = 6
    case bindingError = 7

    /// Smallest Header Len value for the type (§6.1.2 ... §6.1.9, checked per §9.2):
    /// BRR 0, HoTI/CoTI 1, HoT/CoT 2, BU 1, BA 1, BE 2.
    public var minimumHeaderLength: Int {
        switch self {
        case .bindingRefreshRequest: return 0
        case .homeTestInit, .careOfTestInit: return 1
        case .homeTest, .careOfTest: return 2
        case .bindingUpdate, .bindingAcknowledgement: return 1
        case .bindingError: return 2
        }
    }
}

/// Binding Update flags (RFC 6275 §6.1.7, 16-bit field holding the flags and Reserved).
public struct BUFlags: OptionSet, Sendable, Hashable, Codable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A: acknowledge requested (§6.1.7).
    public static let ack = BUFlags(rawValue: 0x8000)
    /// H: home registration (§6.1.7).
    public static let home = BUFlags(rawValue: 0x4000)
    /// L: link-local address compatibility (§6.1.7).
    public static let linkLocal = BUFlags(rawValue: 0x2000)
    /// K: key management mobility capability (§6.1.7).
    public static let key = BUFlags(rawValue: 0x1000)
    /// M: MAP registration (RFC 5380 HMIPv6). Same bit scapy and Wireshark call M.
    public static let mapRegistration = BUFlags(rawValue: 0x0800)
    /// R: mobile router (RFC 3963 NEMO §4.1). Note: R is 0x0400; 0x0800 is HMIPv6's M.
    public static let mobileRouter = BUFlags(rawValue: 0x0400)
    /// P: proxy registration (RFC 5213 §8.1).
    public static let proxy = BUFlags(rawValue: 0x0200)
}

/// Binding Acknowledgement flags (RFC 6275 §6.1.8, the 8-bit field after Status).
public struct BAFlags: OptionSet, Sendable, Hashable, Codable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// K: key management mobility capability (§6.1.8).
    public static let key = BAFlags(rawValue: 0x80)
    /// R: mobile router (RFC 3963 §4.2).
    public static let mobileRouter = BAFlags(rawValue: 0x40)
    /// P: proxy registration (RFC 5213 §8.2).
    public static let proxy = BAFlags(rawValue: 0x20)
}

/// Binding Acknowledgement Status (RFC 6275 §6.1.8; IANA "Mobility IPv6 parameters").
public struct BAStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Codable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let accepted = BAStatus(0)
    public static let acceptedPrefixDiscovery = BAStatus(1)
    public static let unspecified = BAStatus(128)
    public static let prohibited = BAStatus(129)
    public static let insufficientResources = BAStatus(130)
    public static let homeRegistrationNotSupported = BAStatus(131)
    public static let notHomeSubnet = BAStatus(132)
    public static let notHomeAgentForThisMN = BAStatus(133)
    public static let duplicateAddressDetectionFailed = BAStatus(134)
    public static let sequenceOutOfWindow = BAStatus(135)
    public static let expiredHomeNonceIndex = BAStatus(136)
    public static let expiredCareOfNonceIndex = BAStatus(137)
    public static let expiredNonces = BAStatus(138)
    public static let registrationTypeChangeDisallowed = BAStatus(139)
    public static let idMismatch = BAStatus(144)
    public static let messageIDRequired = BAStatus(145)
    public static let authenticationFailed = BAStatus(146)
    public static let invalidCareOfAddress = BAStatus(174)
    // RFC 5213 §8.9: Proxy Binding Acknowledgement statuses.
    public static let proxyRegistrationNotEnabled = BAStatus(152)
    public static let notLMAForThisMobileNode = BAStatus(153)
    public static let magNotAuthorizedForProxyRegistration = BAStatus(154)
    public static let notAuthorizedForHomeNetworkPrefix = BAStatus(155)
    public static let timestampMismatch = BAStatus(156)
    public static let timestampLowerThanPreviousAccepted = BAStatus(157)
    public static let missingHomeNetworkPrefixOption = BAStatus(158)
    public static let bcePBUPrefixSetDoNotMatch = BAStatus(159)
    public static let missingMNIdentifierOption = BAStatus(160)
    public static let missingHandoffIndicatorOption = BAStatus(161)
    public static let missingAccessTechTypeOption = BAStatus(162)

    /// Values below 128 mean the Binding Update was accepted (§6.1.8).
    public var isAccepted: Bool { rawValue < 128 }

    public var name: String? {
        switch rawValue {
        case 0: return "binding update accepted"
        case 1: return "accepted but prefix discovery necessary"
        case 128: return "reason unspecified"
        case 129: return "administratively prohibited"
        case 130: return "insufficient resources"
        case 131: return "home registration not supported"
        case 132: return "not home subnet"
        case 133: return "not home agent for this mobile node"
        case 134: return "duplicate address detection failed"
        case 135: return "sequence number out of window"
        case 136: return "expired home nonce index"
        case 137: return "expired care-of nonce index"
        case 138: return "expired nonces"
        case 139: return "registration type change disallowed"
        case 144: return "MN identity mismatch"
        case 145: return "message ID required"
        case 146: return "authentication failed"
        case 152: return "proxy registration not enabled"
        case 153: return "not local mobility anchor for this mobile node"
        case 154: return "MAG not authorized for proxy registration"
        case 155: return "not authorized for home network prefix"
        case 156: return "timestamp mismatch"
        case 157: return "timestamp lower than previously accepted"
        case 158: return "missing home network prefix option"
        case 159: return "BCE and PBU prefix sets do not match"
        case 160: return "missing mobile node identifier option"
        case 161: return "missing handoff indicator option"
        case 162: return "missing access technology type option"
        case 174: return "invalid care-of address"
        default: return nil
        }
    }

    /// "135 (sequence number out of window)"
    public var description: String {
        if let name { return "\(rawValue) (\(name))" }
        return "\(rawValue)"
    }
}

/// Binding Refresh Request (RFC 6275 §6.1.2).
public struct BindingRefreshRequest: Equatable, Hashable, Sendable {
    public var options: [MobilityOption]
    public init(options: [MobilityOption] = []) { self.options = options }
}

/// Offset of the first mobility option in each message type (RFC 6275 §6.1.2 ... §6.1.9).
extension MobilityMessage {
    var optionsOffset: Int? {
        switch self {
        case .bindingRefreshRequest: return 8
        case .bindingUpdate, .bindingAcknowledgement: return 12
        case .bindingError: return 24
        case .unrecognized: return nil
        }
    }

    /// The message's options (empty for unrecognized types).
    var options: [MobilityOption] {
        switch self {
        case .bindingRefreshRequest(let m): return m.options
        case .bindingUpdate(let m): return m.options
        case .bindingAcknowledgement(let m): return m.options
        case .bindingError(let m): return m.options
        case .unrecognized: return []
        }
    }
}

/// Binding Update (RFC 6275 §6.1.7).
public struct BindingUpdate: Equatable, Hashable, Sendable {
    public var sequence: UInt16
    public var flags: BUFlags
    /// Requested lifetime in units of 4 seconds; 0 asks for de-registration.
    public var lifetime: UInt16
    public var options: [MobilityOption]

    public init(sequence: UInt16, flags: BUFlags, lifetime: UInt16, options: [MobilityOption] = []) {
        self.sequence = sequence
        self.flags = flags
        self.lifetime = lifetime
        self.options = options
    }

    public var lifetimeSeconds: UInt32 { UInt32(lifetime) * 4 }

    /// The first Alternate Care-of Address option, if any (§6.2.5).
    public var alternateCareOfAddress: IPv6Address? {
        for case .alternateCareOfAddress(let a) in options { return a }
        return nil
    }
}

/// Binding Acknowledgement (RFC 6275 §6.1.8).
public struct BindingAcknowledgement: Equatable, Hashable, Sendable {
    public var status: BAStatus
    public var flags: BAFlags
    public var sequence: UInt16
    /// Granted lifetime in units of 4 seconds.
    public var lifetime: UInt16
    public var options: [MobilityOption]

    public init(status: BAStatus, flags: BAFlags = [], sequence: UInt16, lifetime: UInt16,
                options: [MobilityOption] = []) {
        self.status = status
        self.flags = flags
        self.sequence = sequence
        self.lifetime = lifetime
        self.options = options
    }

    public var lifetimeSeconds: UInt32 { UInt32(lifetime) * 4 }

    public var bindingRefreshAdvice: UInt16? {
        for case .bindingRefreshAdvice(let v) in options { return v }
        return nil
    }
}

/// Binding Error (RFC 6275 §6.1.9).
public struct BindingError: Equatable, Hashable, Sendable {
    /// Status 1: unknown binding for Home Address destination option.
    public static let unknownBindingForHomeAddressOption: UInt8 = 1
    /// Status 2: unrecognized MH Type value.
    public static let unrecognizedMHType: UInt8 = 2

    public var status: UInt8
    /// The home address from the offending packet's Home Address option, else unspecified.
    public var homeAddress: IPv6Address
    public var options: [MobilityOption]

    public init(status: UInt8, homeAddress: IPv6Address = .unspecified, options: [MobilityOption] = []) {
        self.status = status
        self.homeAddress = homeAddress
        self.options = options
    }
}

public enum MobilityMessage: Equatable, Hashable, Sendable {
    case bindingRefreshRequest(BindingRefreshRequest)
    case bindingUpdate(BindingUpdate)
    case bindingAcknowledgement(BindingAcknowledgement)
    case bindingError(BindingError)
    /// An MH type this codec does not implement. `data` is everything after the 6-byte common
    /// header (Payload Proto, Header Len, MH Type, Reserved, Checksum), padding included.
    case unrecognized(type: UInt8, data: [UInt8])

    public var mhType: UInt8 {
        switch self {
        case .bindingRefreshRequest: return MHType.bindingRefreshRequest.rawValue
        case .bindingUpdate: return MHType.bindingUpdate.rawValue
        case .bindingAcknowledgement: return MHType.bindingAcknowledgement.rawValue
        case .bindingError: return MHType.bindingError.rawValue
        case .unrecognized(let type, _): return type
        }
    }
}

/// Why a Mobility Header could not be decoded. RFC 6275 §9.2 says which of these are
/// silently discarded and which deserve an ICMP Parameter Problem.
public enum MHDecodeError: Error, Equatable, Hashable, Sendable {
    /// Shorter than the 8-octet minimum of any Mobility Header.
    case truncated
    /// The buffer is not (Header Len + 1) * 8 octets long.
    case lengthMismatch(headerLen: Int, actual: Int)
    /// Header Len below the minimum for this MH type (§9.2). `length` is the Header Len value.
    case belowMinimumLength(type: UInt8, length: Int)
    /// Payload Proto is not 59 (§9.2).
    case badPayloadProto(UInt8)
    /// `expected` is the checksum computed over the pseudo-header and header, `found` the field.
    case badChecksum(expected: UInt16, found: UInt16)
    /// An option at `offset` (from the start of the header) runs past the end.
    case optionOverrun(offset: Int)
    /// A fixed-size option (BRA 2, Alt-CoA 16, Nonce Indices 4, Replay Protection 8; RFC 5213's
    /// Home Network Prefix 18, Handoff Indicator and Access Technology Type 2, Link-local
    /// Address 16, Timestamp 8) with another length, a Home Network Prefix longer than 128
    /// bits, or a Mobile Node Identifier (< 1), Mobility Message Authentication (< 5) or MN
    /// Link-layer Identifier option (< 3) too short for its fixed fields.
    case badOptionLength(type: UInt8, length: Int)

    /// Byte offset in the Mobility Header of the field at fault, for ICMP Parameter Problem.
    public var fieldOffset: Int? {
        switch self {
        case .badPayloadProto: return 0
        case .belowMinimumLength, .lengthMismatch: return 1
        default: return nil
        }
    }
}

/// Mobility Header codec (RFC 6275 §6.1).
public enum MobilityHeaderCodec {
    /// MH Type of a buffer that is at least a minimal Mobility Header, without validation.
    public static func peekType(_ mh: [UInt8]) -> UInt8? {
        mh.count >= 8 ? mh[2] : nil
    }

    /// Decodes and validates a whole Mobility Header.
    ///
    /// `source`/`destination` are the pseudo-header addresses of §6.1.1: the home address when a
    /// Home Address option is present (else the IPv6 source), and the final destination (the
    /// Type 2 Routing Header address when one is present).
    ///
    /// Checks run in the order of §9.2, so that a corrupt packet is discarded silently before
    /// its type is looked at: length, Payload Proto, checksum, MH Type, Header Len minimum,
    /// then the message and its options.
    public static func decode(_ mh: [UInt8], source: IPv6Address, destination: IPv6Address,
                              verifyChecksum: Bool = true) throws(MHDecodeError) -> MobilityMessage {
        let result: Result<MobilityMessage, MHDecodeError> = mh.withUnsafeBytes { buf in
            do throws(MHDecodeError) {
                return .success(try decode(buf, source: source, destination: destination, verifyChecksum: verifyChecksum))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public static func decode(_ mh: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                              verifyChecksum: Bool = true) throws(MHDecodeError) -> MobilityMessage {
        guard mh.count >= 8 else { throw .truncated }
        let headerLen = Int(mh[1])
        guard mh.count == (headerLen + 1) * 8 else {
            throw .lengthMismatch(headerLen: headerLen, actual: mh.count)
        }
        // §9.2: Payload Proto MUST be IPPROTO_NONE.
        guard mh[0] == ipProtoNone else { throw .badPayloadProto(mh[0]) }
        // §6.1.1 / §9.2: a valid header sums to zero with its checksum field in place.
        if verifyChecksum {
            let check = InternetChecksum.upperLayer(source: source, destination: destination,
                                                    nextHeader: ipProtoMobility, payload: mh)
            if check != 0 {
                let found = UInt16(mh[4]) << 8 | UInt16(mh[5])
                // What the sender should have put there: recompute with the field zeroed.
                let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
                                                              nextHeader: ipProtoMobility, length: mh.count)
                let partial = InternetChecksum.partialSum(mh, initial: pseudo) &- UInt64(found)
                let expected = ~InternetChecksum.fold(partial)
                throw .badChecksum(expected: expected, found: found)
            }
        }
        let type = mh[2]
        // §9.2: unknown types go back to the caller, which answers with Binding Error status 2.
        guard let known = MHType(rawValue: type) else {
            return .unrecognized(type: type, data: Array(mh[6...]))
        }
        guard headerLen >= known.minimumHeaderLength else {
            throw .belowMinimumLength(type: type, length: headerLen)
        }
        func u16(_ i: Int) -> UInt16 { UInt16(mh[i]) << 8 | UInt16(mh[i + 1]) }
        switch known {
        case .bindingRefreshRequest:
            return .bindingRefreshRequest(BindingRefreshRequest(options: try MobilityOption.decode(mh, from: 8)))
        case .bindingUpdate:
            return .bindingUpdate(BindingUpdate(
                sequence: u16(6), flags: BUFlags(rawValue: u16(8)), lifetime: u16(10),
                options: try MobilityOption.decode(mh, from: 12)))
        case .bindingAcknowledgement:
            return .bindingAcknowledgement(BindingAcknowledgement(
                status: BAStatus(mh[6]), flags: BAFlags(rawValue: mh[7]), sequence: u16(8), lifetime: u16(10),
                options: try MobilityOption.decode(mh, from: 12)))
        case .bindingError:
            return .bindingError(BindingError(
                status: mh[6], homeAddress: IPv6Address(mh, at: 8),
                options: try MobilityOption.decode(mh, from: 24)))
        case .homeTestInit, .careOfTestInit, .homeTest, .careOfTest:
            // Return routability (§5.2.5) is correspondent-node business; not implemented here.
            return .unrecognized(type: type, data: Array(mh[6...]))
        }
    }

    /// Encodes `m` as a complete Mobility Header with Payload Proto 59, Header Len and checksum.
    /// `source`/`destination` are the pseudo-header addresses (§6.1.1): pass the home address as
    /// source when a Home Address option goes with it, and the final destination (the Type 2
    /// Routing Header address when there is one).
    public static func encode(_ m: MobilityMessage, source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        var out: [UInt8] = [ipProtoNone, 0, m.mhType, 0, 0, 0]
        out.reserveCapacity(64)
        func put16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xff)) }
        switch m {
        case .bindingRefreshRequest(let brr):
            put16(0)
            MobilityOption.encode(brr.options, into: &out)
        case .bindingUpdate(let bu):
            put16(bu.sequence)
            put16(bu.flags.rawValue)
            put16(bu.lifetime)
            MobilityOption.encode(bu.options, into: &out)
        case .bindingAcknowledgement(let ba):
            out.append(ba.status.rawValue)
            out.append(ba.flags.rawValue)
            put16(ba.sequence)
            put16(ba.lifetime)
            MobilityOption.encode(ba.options, into: &out)
        case .bindingError(let be):
            out.append(be.status)
            out.append(0)
            be.homeAddress.append(to: &out)
            MobilityOption.encode(be.options, into: &out)
        case .unrecognized(_, let data):
            out.append(contentsOf: data)
            // Opaque data: pad with zero octets, not with options it may not have.
            out.append(contentsOf: repeatElement(0, count: (8 - out.count % 8) % 8))
        }
        precondition(out.count % 8 == 0 && out.count <= 256 * 8, "Mobility Header too long")
        out[1] = UInt8(out.count / 8 - 1)
        let checksum = InternetChecksum.upperLayer(source: source, destination: destination,
                                                   nextHeader: ipProtoMobility, payload: out)
        out[4] = UInt8(checksum >> 8)
        out[5] = UInt8(checksum & 0xff)
        return out
    }
}
