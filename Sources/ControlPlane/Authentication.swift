#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto

// MN-HA authentication of Binding Updates and Acknowledgements: RFC 4285 (Authentication
// Protocol for Mobile IPv6) with the Mobile Node Identifier option of RFC 4283.
//
// What goes on the wire (RFC 4285 §5.1, §6; RFC 4283 §3), in this order at the end of the
// message, the authentication option last:
//
//     ... message options ... | MN-ID (NAI) | Replay Protection (timestamp) | MN-HA Auth (SPI, authenticator)
//
//     Authenticator = First(96, HMAC_SHA1(MN-HA key, Mobility Data))
//     Mobility Data = care-of address | home address | MH Data
//     MH Data       = the Mobility Header from its first octet up to and including the SPI field
//                     of the authentication option, with the MH Checksum field set to zero
//
// The Header Len field is inside MH Data, so the message is laid out completely (padding after
// the authentication option included) before the authenticator is computed; the checksum is
// computed last, over the finished header.
//
// Which addresses (RFC 4285 §5.1 "care-of address | home address"; the care-of and home address
// of the mobile node whose binding this is, for the Binding Update and its Binding
// Acknowledgement alike):
//   - home address: the Home Address destination option of the BU, else its IPv6 source
//     (RFC 6275 §9.5.1) - the address being registered, never the home agent's;
//   - care-of address: the care-of address RFC 6275 §9.5.1 registers, i.e. the Alternate
//     Care-of Address option when present, else the IPv6 source of the BU. For a de-registration
//     sent from home both are the home address. The Binding Acknowledgement uses the same pair as
//     the Binding Update it answers (not the home agent's address, not the routing header's
//     destination), so one exchange is protected with one (CoA, HoA) pair. KAME's shisad verifies
//     the BU the same way (Alternate CoA when present); for its BAs it hashes CoA | home agent
//     address, return-routability style, which is not what RFC 4285 §5.1 says - not followed.
//
// Alignment: MN-ID none (RFC 4283 §3), authentication 4n+1 (RFC 4285 §5), replay protection
// 8n+2 (RFC 4285 §6) - scapy's MIP6OptMNID/MIP6OptMsgAuth/MIP6OptReplayProtection agree. The
// authentication option is the last thing in the header (RFC 4285 §5.1): it is laid out at
// 8n+5 (which is 4n+1), so its 19 octets end the header on the multiple of 8 that RFC 6275
// §6.1.1 asks for with the padding before it; a received header with anything after it,
// Pad1/PadN included, is refused (authenticatorNotLast).

// MARK: Keys

/// A shared MN-HA key (RFC 4285 §5.1: the shared-key-based mobility security association).
/// Its text forms never show the key: `description`, `debugDescription`, `dump()` and its
/// `Encodable` form all say "<redacted, N bytes>". It decodes from a hex string, so a
/// configuration file can carry a key, but encoding never writes one back.
public struct MobilityKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable, Codable
{
    let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// From hexadecimal text (even length, no separators); nil when it is not hex.
    public init?(hex: String) {
        guard let bytes = Self.parseHex(hex), !bytes.isEmpty else { return nil }
        self.init(bytes: bytes)
    }

    public var count: Int { bytes.count }

    public var description: String { "<redacted, \(bytes.count) bytes>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["key": description], displayStyle: .struct) }

    /// Constant-time comparison, so that equality tests do not leak how many leading bytes match.
    public static func == (a: MobilityKey, b: MobilityKey) -> Bool {
        constantTimeEqual(a.bytes, b.bytes)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let key = MobilityKey(hex: text) else {
            // Never echo the text: it may be a key with one typo in it.
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "MN-HA key is not hexadecimal")
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    static func parseHex(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

@inline(never)
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// A shared-key mobility security association between a mobile node and its home agent
/// (RFC 4285 §5.1): the mobile node's NAI (sent in the MN-ID option, RFC 4283 §3.1), the
/// Mobility SPI and the HMAC-SHA1 key.
public struct MNHASecurityAssociation: Sendable, Equatable, CustomStringConvertible {
    public var nai: String
    public var spi: UInt32
    public var key: MobilityKey

    public init(nai: String, spi: UInt32, key: MobilityKey) {
        self.nai = nai
        self.spi = spi
        self.key = key
    }

    public var description: String { "MN-HA SA(nai: \(nai), spi: \(spi), key: \(key))" }
}

// MARK: Time

/// Wall-clock time for the Mobility Message Replay Protection option (RFC 4285 §6): a 64-bit
/// NTP timestamp (RFC 1305), seconds since 1900-01-01 00:00 UTC in the high 32 bits and the
/// fraction of a second in the low 32 bits. Injectable so tests can move time by hand.
public protocol WallClock: Sendable {
    func ntpTimestamp() -> UInt64
}

/// CLOCK_REALTIME as an NTP timestamp.
public struct SystemWallClock: WallClock {
    public init() {}

    public func ntpTimestamp() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return NTPTimestamp.from(unixSeconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }
}

/// 64-bit NTP timestamps (RFC 1305 §3.1, the format RFC 4285 §6 uses).
public enum NTPTimestamp {
    /// Seconds from 1900-01-01 to 1970-01-01.
    public static let unixEpochOffset: UInt64 = 2_208_988_800

    /// `unixSeconds` + `nanoseconds` as 32.32 fixed point since 1900. The seconds wrap modulo
    /// 2^32 (NTP era 1 starts in 2036); comparisons use `difference`, which copes with that.
    public static func from(unixSeconds: Int64, nanoseconds: Int64) -> UInt64 {
        let seconds = UInt64(bitPattern: unixSeconds &+ Int64(unixEpochOffset)) & 0xffff_ffff
        let fraction = (UInt64(max(0, min(nanoseconds, 999_999_999))) << 32) / 1_000_000_000
        return seconds << 32 | fraction
    }

    /// `a - b` as signed 32.32 fixed point, modulo 2^64 (right for any two times less than
    /// 2^31 seconds apart, across an NTP era boundary too).
    public static func difference(_ a: UInt64, _ b: UInt64) -> Int64 {
        Int64(bitPattern: a &- b)
    }

    /// True when `a` is later than `b`.
    public static func isNewer(_ a: UInt64, than b: UInt64) -> Bool {
        difference(a, b) > 0
    }

    /// True when `a` and `b` are at most `seconds` apart.
    public static func within(_ a: UInt64, _ b: UInt64, seconds: UInt32) -> Bool {
        difference(a, b).magnitude <= UInt64(seconds) << 32
    }

    /// `a - b` in seconds, for logs.
    public static func seconds(_ difference: Int64) -> Double {
        Double(difference) / 4_294_967_296
    }
}

// MARK: Key file

/// The home agent's MN-HA security associations, one per Mobility SPI.
///
/// Text form, one entry a line: `NAI HOME-ADDRESS|any SPI KEY-HEX`. `any` allows every home
/// address inside the home prefix. The SPI is decimal or 0x-hex; RFC 4285 §5.1 reserves SPIs
/// 0...255. The key is 16 to 64 octets in hex (RFC 4285 §5.1 uses 16-octet keys; HMAC-SHA1 takes
/// up to 64 without hashing them first). Blank lines and `#` comments (a token starting with `#`
/// ends the line) are skipped. Errors name the line; they never contain the key.
public struct KeyStore: Sendable, CustomStringConvertible {
    public struct Entry: Sendable, Equatable, CustomStringConvertible {
        public enum HomeAddress: Sendable, Hashable, CustomStringConvertible {
            case exact(IPv6Address)
            /// Any home address inside the home agent's home prefix.
            case anyInHomePrefix

            public var description: String {
                switch self {
                case .exact(let a): return "\(a)"
                case .anyInHomePrefix: return "any"
                }
            }
        }

        public var nai: String
        public var homeAddress: HomeAddress
        public var spi: UInt32
        public var key: MobilityKey
        /// Line in the key file (0 when built in code).
        public var line: Int

        public init(nai: String, homeAddress: HomeAddress, spi: UInt32, key: MobilityKey, line: Int = 0) {
            self.nai = nai
            self.homeAddress = homeAddress
            self.spi = spi
            self.key = key
            self.line = line
        }

        public var association: MNHASecurityAssociation { MNHASecurityAssociation(nai: nai, spi: spi, key: key) }

        /// Whether this entry may register `hoa` at a home agent serving `homePrefix`.
        public func permits(_ hoa: IPv6Address, homePrefix: IPv6Prefix) -> Bool {
            switch homeAddress {
            case .exact(let a): return a == hoa
            case .anyInHomePrefix: return homePrefix.contains(hoa)
            }
        }

        public var description: String { "\(nai) \(homeAddress) spi \(spi) key \(key)" }
    }

    public private(set) var entries: [Entry]
    private var bySPI: [UInt32: Int]

    public init(entries: [Entry]) throws(KeyStoreError) {
        self.entries = []
        self.bySPI = [:]
        for entry in entries { try add(entry) }
    }

    /// Parses the key file text described above.
    public init(parsing text: String) throws(KeyStoreError) {
        self.entries = []
        self.bySPI = [:]
        var number = 0
        // "\r\n" is one Character in Swift, so splitting on "\n" alone would read a CRLF file as a
        // single line (and a comment on its first line would hide every key after it).
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var fields: [Substring] = []
            for token in rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
                if token.hasPrefix("#") { break }
                fields.append(token)
            }
            if fields.isEmpty { continue }
            guard fields.count == 4 else { throw KeyStoreError(line: number, reason: .fieldCount(fields.count)) }
            let nai = String(fields[0])
            guard nai.utf8.count <= 254 else { throw KeyStoreError(line: number, reason: .badNAI) }
            let home: Entry.HomeAddress
            if fields[1].lowercased() == "any" {
                home = .anyInHomePrefix
            } else if let a = IPv6Address(String(fields[1])), a.isUnicastRoutable {
                home = .exact(a)
            } else {
                throw KeyStoreError(line: number, reason: .badHomeAddress(String(fields[1])))
            }
            let spiText = fields[2]
            let spi: UInt32?
            if spiText.hasPrefix("0x") || spiText.hasPrefix("0X") {
                spi = UInt32(spiText.dropFirst(2), radix: 16)
            } else {
                spi = UInt32(spiText, radix: 10)
            }
            guard let spi else { throw KeyStoreError(line: number, reason: .badSPI(String(spiText))) }
            guard let keyBytes = MobilityKey.parseHex(fields[3]), !keyBytes.isEmpty else {
                throw KeyStoreError(line: number, reason: .badKeyHex)
            }
            try add(Entry(nai: nai, homeAddress: home, spi: spi, key: MobilityKey(bytes: keyBytes), line: number))
        }
    }

    private mutating func add(_ entry: Entry) throws(KeyStoreError) {
        // RFC 4285 §5.1: "The mobility SPI is a number in the range [0-4294967296], where the
        // range [0-255] is reserved."
        guard entry.spi > 255 else { throw KeyStoreError(line: entry.line, reason: .reservedSPI(entry.spi)) }
        guard (16...64).contains(entry.key.count) else {
            throw KeyStoreError(line: entry.line, reason: .keyLength(entry.key.count))
        }
        guard !entry.nai.isEmpty else { throw KeyStoreError(line: entry.line, reason: .badNAI) }
        if let first = bySPI[entry.spi] {
            throw KeyStoreError(line: entry.line, reason: .duplicateSPI(entry.spi, firstLine: entries[first].line))
        }
        bySPI[entry.spi] = entries.count
        entries.append(entry)
    }

    public subscript(spi spi: UInt32) -> Entry? {
        bySPI[spi].map { entries[$0] }
    }

    public var count: Int { entries.count }

    public var description: String { "KeyStore(\(entries.count) entries: \(entries.map(\.description).joined(separator: "; ")))" }
}

/// A malformed key file line. The description names the line and the problem, never the key.
public struct KeyStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// Not `NAI HOME-ADDRESS|any SPI KEY-HEX`: this many fields.
        case fieldCount(Int)
        /// The NAI is empty or longer than the 254 octets an MN-ID option holds (RFC 4283 §3).
        case badNAI
        /// Not an IPv6 unicast routable address, nor "any".
        case badHomeAddress(String)
        case badSPI(String)
        /// RFC 4285 §5.1 reserves 0...255.
        case reservedSPI(UInt32)
        case duplicateSPI(UInt32, firstLine: Int)
        /// The key is not an even number of hex digits.
        case badKeyHex
        /// The key has this many octets; 16...64 are accepted.
        case keyLength(Int)
    }

    public var line: Int
    public var reason: Reason

    public init(line: Int, reason: Reason) {
        self.line = line
        self.reason = reason
    }

    public var description: String {
        let what: String
        switch reason {
        case .fieldCount(let n): what = "expected 'NAI HOME-ADDRESS|any SPI KEY-HEX', found \(n) fields"
        case .badNAI: what = "the NAI must be 1 to 254 octets"
        case .badHomeAddress(let text): what = "'\(text)' is not a unicast IPv6 home address nor 'any'"
        case .badSPI(let text): what = "'\(text)' is not a 32-bit SPI (decimal or 0x-hex)"
        case .reservedSPI(let spi): what = "SPI \(spi) is reserved (RFC 4285 §5.1: 0-255)"
        case .duplicateSPI(let spi, let first): what = "SPI \(spi) already used on line \(first)"
        case .badKeyHex: what = "the key is not an even number of hexadecimal digits"
        case .keyLength(let n): what = "the key has \(n) octets; 16 to 64 are accepted"
        }
        return "key file line \(line): \(what)"
    }
}

// MARK: Authenticator

/// Outcome of checking the MN-HA authentication of a received Binding Update or Binding
/// Acknowledgement, in the order the checks run.
public enum AuthenticationResult: String, CaseIterable, Sendable, Hashable, Codable {
    case ok
    /// No MN-HA Mobility Message Authentication option.
    case missingAuthenticator
    /// More than one MN-HA option, or Authentication Data that is not 96 bits.
    case malformedAuthenticator
    /// The MN-HA option is not the last option (RFC 4285 §5.1).
    case authenticatorNotLast
    /// No security association has this SPI (or, at the mobile node, not ours).
    case unknownSPI
    /// The authenticator does not verify with the SPI's key.
    case badAuthenticator
    /// No Mobile Node Identifier option with an NAI (RFC 4283 §3.1).
    case missingIdentifier
    /// The NAI is not the one of the security association.
    case identifierMismatch
    /// The security association does not cover this home address.
    case homeAddressMismatch
    /// No Mobility Message Replay Protection option (RFC 4285 §6).
    case missingTimestamp
    /// The timestamp is further from the receiver's clock than the allowed skew.
    case staleTimestamp
    /// The timestamp is not newer than the last one accepted (home agent), or is not the one the
    /// outstanding Binding Update carried (mobile node).
    case replayed

    /// Whether the message proved possession of the key: set from `identifierMismatch` on.
    public var isAuthenticated: Bool {
        switch self {
        case .missingAuthenticator, .malformedAuthenticator, .authenticatorNotLast, .unknownSPI, .badAuthenticator:
            return false
        default:
            return true
        }
    }

    /// The Binding Acknowledgement status a home agent answers with, or nil when the Binding
    /// Update is processed (`ok`) or silently discarded:
    /// - `missingAuthenticator`: RFC 4285 §5: a BU "received without a mobility message
    ///   authentication option" by an entity configured to use it is silently discarded.
    /// - `replayed`: an authentic BU seen before. Answering gives a replayer a fresh BA and the
    ///   mobile node nothing (it waits for a newer sequence number), so it is dropped.
    /// - `missingTimestamp`: 145 (MIPV6-MESG-ID-REQD): this home agent requires the RFC 4285 §6
    ///   option (the RFC makes it optional; 145 is its status for "message ID required").
    /// - `staleTimestamp`: 144 (MIPV6-ID-MISMATCH), the BA carrying the home agent's own time in
    ///   its Replay Protection option so that the mobile node can resynchronise (RFC 4285 §6, as
    ///   with Mobile IPv4's identification mismatch, RFC 5944 §5.7).
    /// - every other failure: 146 (MIPV6-AUTH-FAIL).
    public var homeAgentStatus: BAStatus? {
        switch self {
        case .ok, .missingAuthenticator, .replayed: return nil
        case .missingTimestamp: return .messageIDRequired
        case .staleTimestamp: return .idMismatch
        default: return .authenticationFailed
        }
    }
}

/// What a verification found out besides the result.
public struct AuthenticationVerdict: Sendable, Equatable {
    public var result: AuthenticationResult
    /// The security association whose key verified the authenticator (nil before that check
    /// passed): replies are authenticated with it.
    public var association: MNHASecurityAssociation?
    /// The Mobility SPI of the MN-HA option, when there was one.
    public var spi: UInt32?
    /// The Replay Protection timestamp, when there was one.
    public var timestamp: UInt64?

    public init(result: AuthenticationResult, association: MNHASecurityAssociation? = nil, spi: UInt32? = nil,
                timestamp: UInt64? = nil) {
        self.result = result
        self.association = association
        self.spi = spi
        self.timestamp = timestamp
    }
}

/// How an outgoing Binding Update or Acknowledgement is authenticated.
public struct MNHASeal: Sendable, Equatable {
    public var association: MNHASecurityAssociation
    /// The Replay Protection timestamp (nil: no Replay Protection option).
    public var timestamp: UInt64?
    /// The mobile node's care-of and home address (see the top of this file).
    public var careOf: IPv6Address
    public var homeAddress: IPv6Address

    public init(association: MNHASecurityAssociation, timestamp: UInt64?, careOf: IPv6Address, homeAddress: IPv6Address) {
        self.association = association
        self.timestamp = timestamp
        self.careOf = careOf
        self.homeAddress = homeAddress
    }
}

/// RFC 4285 MN-HA authentication of Mobility Header messages.
public enum MobilityAuthentication {
    /// Octets of the MN-HA authenticator: First(96, ...) (RFC 4285 §5.1).
    public static let authenticatorLength = 12

    /// RFC 4285 §5.1: First(96, HMAC_SHA1(key, careOf | homeAddress | mhData)). `mhData` runs
    /// from the first octet of the Mobility Header through the SPI of the authentication
    /// option, with the checksum field already zeroed.
    public static func authenticator(key: MobilityKey, careOf: IPv6Address, homeAddress: IPv6Address,
                                     mhData: some Collection<UInt8>) -> [UInt8] {
        var hmac = HMAC<Insecure.SHA1>(key: SymmetricKey(data: key.bytes))
        hmac.update(data: careOf.bytes)
        hmac.update(data: homeAddress.bytes)
        hmac.update(data: Array(mhData))
        return Array(Array(hmac.finalize()).prefix(authenticatorLength))
    }

    /// Encodes `message` as a complete Mobility Header with the MN-ID (NAI), Replay Protection
    /// (when `seal.timestamp` is set) and MN-HA authentication options appended, in that order,
    /// the authentication option last (RFC 4285 §5.1). Header Len, padding, authenticator and
    /// checksum (over `checksumSource`/`checksumDestination`, RFC 6275 §6.1.1) are all filled in.
    public static func seal(_ message: MobilityMessage, with seal: MNHASeal,
                            checksumSource: IPv6Address, checksumDestination: IPv6Address) -> [UInt8] {
        let extra: [MobilityOption] = [.mobileNodeIdentifier(subtype: MobilityOption.IdentifierSubtype.nai,
                                                             identifier: Array(seal.association.nai.utf8))]
            + (seal.timestamp.map { [MobilityOption.replayProtection($0)] } ?? [])
            + [.mobilityMessageAuthentication(subtype: MobilityOption.AuthenticationSubtype.mnHA,
                                              spi: seal.association.spi,
                                              authenticator: [UInt8](repeating: 0, count: authenticatorLength))]
        let full: MobilityMessage
        switch message {
        case .bindingUpdate(var bu):
            bu.options += extra
            full = .bindingUpdate(bu)
        case .bindingAcknowledgement(var ba):
            ba.options += extra
            full = .bindingAcknowledgement(ba)
        case .bindingRefreshRequest(var brr):
            brr.options += extra
            full = .bindingRefreshRequest(brr)
        case .bindingError(var be):
            be.options += extra
            full = .bindingError(be)
        case .unrecognized:
            preconditionFailure("cannot authenticate an opaque Mobility Header message")
        }
        var mh = MobilityHeaderCodec.encode(full, source: checksumSource, destination: checksumDestination)
        // The authentication option is the last non-padding TLV; its SPI ends 7 octets in.
        guard let start = full.optionsOffset, let tlvs = MobilityOption.offsets(in: mh, from: start),
              let auth = tlvs.last(where: { $0.type != MobilityOption.Kind.pad1 && $0.type != MobilityOption.Kind.padN }),
              auth.type == MobilityOption.Kind.authentication
        else { preconditionFailure("authentication option not laid out last") }
        let spiEnd = auth.offset + 7
        mh[4] = 0
        mh[5] = 0
        let value = authenticator(key: seal.association.key, careOf: seal.careOf, homeAddress: seal.homeAddress,
                                  mhData: mh[0..<spiEnd])
        mh.replaceSubrange(spiEnd..<spiEnd + authenticatorLength, with: value)
        let checksum = InternetChecksum.upperLayer(source: checksumSource, destination: checksumDestination,
                                                   nextHeader: ipProtoMobility, payload: mh)
        mh[4] = UInt8(checksum >> 8)
        mh[5] = UInt8(checksum & 0xff)
        return mh
    }

    /// The structural and cryptographic part, shared by both directions: exactly one MN-HA
    /// option, last among the options, 96-bit authenticator, known SPI, authenticator verifies.
    static func checkAuthenticator(mh: [UInt8], message: MobilityMessage, careOf: IPv6Address,
                                   homeAddress: IPv6Address,
                                   lookup: (UInt32) -> MNHASecurityAssociation?) -> AuthenticationVerdict {
        let options = message.options
        let mnha = options.enumerated().compactMap { index, option -> (Int, UInt32, [UInt8])? in
            if case .mobilityMessageAuthentication(MobilityOption.AuthenticationSubtype.mnHA, let spi, let auth) = option {
                return (index, spi, auth)
            }
            return nil
        }
        guard let (index, spi, received) = mnha.first else { return AuthenticationVerdict(result: .missingAuthenticator) }
        // RFC 4285 §5: one instance per subtype; §5.1: the MN-HA authenticator is 96 bits.
        guard mnha.count == 1, received.count == authenticatorLength else {
            return AuthenticationVerdict(result: .malformedAuthenticator, spi: spi)
        }
        // RFC 4285 §5.1: "MUST be the last option in a message with a mobility header if it is
        // the only mobility message authentication option in the message". Last means last in
        // the header: no option after it, and no Pad1/PadN either (alignment padding goes before
        // it, which is why we lay it out at 8n+5). Octets after the authenticated data would be
        // covered by neither the authenticator nor anything else. (An MN-AAA option after it,
        // which §5 allows, is not supported here and makes it "not last".)
        guard index == options.count - 1 else { return AuthenticationVerdict(result: .authenticatorNotLast, spi: spi) }
        guard let start = message.optionsOffset, let tlvs = MobilityOption.offsets(in: mh, from: start),
              let tlv = tlvs.last(where: { $0.type == MobilityOption.Kind.authentication })
        else { return AuthenticationVerdict(result: .malformedAuthenticator, spi: spi) }
        guard tlv.offset == tlvs.last?.offset, tlv.offset + 2 + Int(mh[tlv.offset + 1]) == mh.count else {
            return AuthenticationVerdict(result: .authenticatorNotLast, spi: spi)
        }
        guard let association = lookup(spi) else { return AuthenticationVerdict(result: .unknownSPI, spi: spi) }
        let spiEnd = tlv.offset + 7
        var data = Array(mh[0..<spiEnd])
        data[4] = 0
        data[5] = 0
        let expected = authenticator(key: association.key, careOf: careOf, homeAddress: homeAddress, mhData: data)
        guard constantTimeEqual(expected, received) else { return AuthenticationVerdict(result: .badAuthenticator, spi: spi) }
        return AuthenticationVerdict(result: .ok, association: association, spi: spi)
    }

    static func nai(in options: [MobilityOption]) -> [UInt8]? {
        for case .mobileNodeIdentifier(MobilityOption.IdentifierSubtype.nai, let id) in options where !id.isEmpty {
            return id
        }
        return nil
    }

    static func timestamp(in options: [MobilityOption]) -> UInt64? {
        for case .replayProtection(let t) in options { return t }
        return nil
    }

    /// Home agent side: checks a received Binding Update, in this order (each failure stops):
    /// MN-HA option present, well formed and last; SPI known; authenticator verifies with
    /// `careOf | homeAddress | MH data` (the §9.5.1 care-of and home address); an MN-ID NAI
    /// equal to the association's; the association covers `homeAddress` (or "any" and it is in
    /// `homePrefix`); a Replay Protection timestamp within `allowedSkew` seconds of `now`; and
    /// newer than `lastAccepted`.
    ///
    /// `mh` is the Mobility Header as received (its checksum already verified) and `bu` its
    /// decoding.
    public static func verifyBindingUpdate(mh: [UInt8], bu: BindingUpdate, careOf: IPv6Address,
                                           homeAddress: IPv6Address, keys: KeyStore, homePrefix: IPv6Prefix,
                                           now: UInt64, allowedSkew: UInt32, lastAccepted: UInt64?) -> AuthenticationVerdict {
        var verdict = checkAuthenticator(mh: mh, message: .bindingUpdate(bu), careOf: careOf, homeAddress: homeAddress) {
            keys[spi: $0]?.association
        }
        guard verdict.result == .ok, let spi = verdict.spi, let entry = keys[spi: spi] else { return verdict }
        verdict.timestamp = timestamp(in: bu.options)
        // The mobile node identifies itself with an MN-ID option carrying its NAI (RFC 4283
        // §3.1; RFC 4285 §3 shows it in every authenticated BU). Required here, and it must be
        // the association's NAI: the SPI alone must not let one mobile node speak for another.
        guard let id = nai(in: bu.options) else { verdict.result = .missingIdentifier; return verdict }
        guard id == Array(entry.nai.utf8) else { verdict.result = .identifierMismatch; return verdict }
        guard entry.permits(homeAddress, homePrefix: homePrefix) else { verdict.result = .homeAddressMismatch; return verdict }
        // RFC 4285 §6: timestamps within the allowed skew of the receiver's clock.
        guard let ts = verdict.timestamp else { verdict.result = .missingTimestamp; return verdict }
        guard NTPTimestamp.within(ts, now, seconds: allowedSkew) else { verdict.result = .staleTimestamp; return verdict }
        if let lastAccepted, !NTPTimestamp.isNewer(ts, than: lastAccepted) {
            verdict.result = .replayed
        }
        return verdict
    }

    /// Mobile node side: checks a received Binding Acknowledgement against our association:
    /// MN-HA option present, well formed and last; our SPI; authenticator verifies; an MN-ID,
    /// when present, carries our NAI; a Replay Protection option that is `expectedTimestamp`
    /// (the one our outstanding BU carried) - or any timestamp when `expectedTimestamp` is nil
    /// (status 144 carries the home agent's clock instead, status 145 none at all).
    public static func verifyBindingAcknowledgement(mh: [UInt8], ba: BindingAcknowledgement, careOf: IPv6Address,
                                                    homeAddress: IPv6Address, association: MNHASecurityAssociation,
                                                    expectedTimestamp: UInt64?) -> AuthenticationVerdict {
        var verdict = checkAuthenticator(mh: mh, message: .bindingAcknowledgement(ba), careOf: careOf,
                                         homeAddress: homeAddress) { $0 == association.spi ? association : nil }
        guard verdict.result == .ok else { return verdict }
        verdict.timestamp = timestamp(in: ba.options)
        for case .mobileNodeIdentifier(MobilityOption.IdentifierSubtype.nai, let id) in ba.options
            where id != Array(association.nai.utf8) {
            verdict.result = .identifierMismatch
            return verdict
        }
        if ba.status == .messageIDRequired { return verdict }
        guard let ts = verdict.timestamp else { verdict.result = .missingTimestamp; return verdict }
        if let expectedTimestamp, ts != expectedTimestamp { verdict.result = .replayed }
        return verdict
    }
}

// MARK: Packets

extension PacketBuilder {
    /// `bindingUpdate(_:careOf:homeAgent:homeAddress:hopLimit:)` with the MN-ID, Replay
    /// Protection and MN-HA authentication options appended (RFC 4285 §5.1, §6).
    public static func bindingUpdate(_ bu: BindingUpdate, careOf: IPv6Address, homeAgent: IPv6Address,
                                     homeAddress: IPv6Address, hopLimit: UInt8 = 64,
                                     authentication seal: MNHASeal) -> [UInt8] {
        let mh = MobilityAuthentication.seal(.bindingUpdate(bu), with: seal, checksumSource: homeAddress,
                                             checksumDestination: homeAgent)
        return bindingUpdatePacket(mh: mh, careOf: careOf, homeAgent: homeAgent, homeAddress: homeAddress, hopLimit: hopLimit)
    }

    /// `bindingAcknowledgement(_:from:to:homeAddress:hopLimit:)` with the MN-ID, Replay
    /// Protection (when the seal has a timestamp) and MN-HA authentication options appended.
    public static func bindingAcknowledgement(_ ba: BindingAcknowledgement, from ha: IPv6Address, to careOf: IPv6Address,
                                              homeAddress: IPv6Address?, hopLimit: UInt8 = 64,
                                              authentication seal: MNHASeal) -> [UInt8] {
        let finalDestination = homeAddress ?? careOf
        let mh = MobilityAuthentication.seal(.bindingAcknowledgement(ba), with: seal, checksumSource: ha,
                                             checksumDestination: finalDestination)
        return bindingAcknowledgementPacket(mh: mh, from: ha, to: careOf, homeAddress: homeAddress, hopLimit: hopLimit)
    }
}
