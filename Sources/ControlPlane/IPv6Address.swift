#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv6 address as two 64-bit halves. `high` holds bytes 0...7 and `low` bytes 8...15,
/// each read big-endian, so comparing (high, low) orders addresses like their byte strings.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From exactly 16 bytes in network order.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16, "an IPv6 address is 16 bytes, got \(bytes.count)")
        var h: UInt64 = 0
        var l: UInt64 = 0
        var i = 0
        for b in bytes {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
            i += 1
        }
        self.init(high: h, low: l)
    }

    /// Reads 16 bytes at `offset` of `buffer` (caller checks bounds).
    @inline(__always)
    init(_ buffer: UnsafeRawBufferPointer, at offset: Int) {
        self.init(
            high: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            low: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
    }

    /// Reads 16 bytes at `offset` of `array` (caller checks bounds).
    init(_ array: [UInt8], at offset: Int) {
        self = array.withUnsafeBytes { IPv6Address($0, at: offset) }
    }

    /// Parses any textual form inet_pton accepts ("2001:db8::1", "::ffff:192.0.2.1").
    public init?(_ text: String) {
        var storage = in6_addr()
        let ok = text.withCString { inet_pton(AF_INET6, $0, &storage) }
        guard ok == 1 else { return nil }
        self = withUnsafeBytes(of: &storage) { IPv6Address($0, at: 0) }
    }

    public static let unspecified = IPv6Address(high: 0, low: 0)

    public var bytes: [UInt8] {
        withBytes { Array($0) }
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var be = (high.bigEndian, low.bigEndian)
        return try withUnsafeBytes(of: &be) { try body($0) }
    }

    /// Appends the 16 network-order bytes to `out`.
    func append(to out: inout [UInt8]) {
        withBytes { out.append(contentsOf: $0) }
    }

    /// Canonical RFC 5952 text, as produced by inet_ntop.
    public var description: String {
        var storage = in6_addr()
        withBytes { src in
            withUnsafeMutableBytes(of: &storage) { dst in dst.copyMemory(from: src) }
        }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let result = buffer.withUnsafeMutableBufferPointer { out in
            inet_ntop(AF_INET6, &storage, out.baseAddress, socklen_t(out.count))
        }
        guard result != nil else { return "<invalid>" }
        let utf8 = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: utf8, as: UTF8.self)
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    // MARK: Classification (RFC 4291 §2.4)

    public var isUnspecified: Bool { high == 0 && low == 0 }
    public var isLoopback: Bool { high == 0 && low == 1 }
    /// ff00::/8
    public var isMulticast: Bool { high >> 56 == 0xff }
    /// fe80::/10
    public var isLinkLocal: Bool { high >> 54 == 0xfe80 >> 6 }
    /// ::ffff:0:0/96
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xffff }

    /// What RFC 6275 §9.5.1 calls "unicast routable": usable as a home or care-of address
    /// beyond the local link.
    public var isUnicastRoutable: Bool {
        !(isUnspecified || isLoopback || isMulticast || isLinkLocal || isIPv4Mapped)
    }

    /// ff02::1:ffXX:XXXX with the low 24 bits of this address (RFC 4291 §2.7.1).
    public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(high: 0xff02_0000_0000_0000, low: 0x0000_0001_ff00_0000 | (low & 0x00ff_ffff))
    }

    /// The "derived link-local" of RFC 6275 §10.3.1: fe80::/64 with this address's interface
    /// identifier (its low 64 bits, RFC 4291 §2.5.6). For a home address, the mobile node's
    /// link-local address, which a home registration with the L flag has the home agent defend too.
    public var derivedLinkLocal: IPv6Address {
        IPv6Address(high: 0xfe80_0000_0000_0000, low: low)
    }

    // MARK: Codable as text

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let address = IPv6Address(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not an IPv6 address: \(text)")
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An address prefix such as 2001:db8::/64. The stored address has its host bits cleared.
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible, Codable {
    public let address: IPv6Address
    public let length: Int

    public init?(address: IPv6Address, length: Int) {
        guard (0...128).contains(length) else { return nil }
        self.length = length
        let (mh, ml) = IPv6Prefix.mask(length)
        self.address = IPv6Address(high: address.high & mh, low: address.low & ml)
    }

    /// "2001:db8::/64"
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2,
              let address = IPv6Address(String(parts[0])),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), !parts[1].isEmpty, parts[1].count <= 3,
              let length = Int(parts[1])
        else { return nil }
        self.init(address: address, length: length)
    }

    public func contains(_ a: IPv6Address) -> Bool {
        let (mh, ml) = IPv6Prefix.mask(length)
        return a.high & mh == address.high && a.low & ml == address.low
    }

    public var description: String { "\(address)/\(length)" }

    /// Codable as its text form, "2001:db8::/64".
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let prefix = IPv6Prefix(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an IPv6 prefix: \(text)")
        }
        self = prefix
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    static func mask(_ length: Int) -> (UInt64, UInt64) {
        switch length {
        case 0: return (0, 0)
        case 1...63: return (~UInt64(0) << (64 - length), 0)
        case 64: return (~UInt64(0), 0)
        case 65...127: return (~UInt64(0), ~UInt64(0) << (128 - length))
        default: return (~UInt64(0), ~UInt64(0))
        }
    }
}
