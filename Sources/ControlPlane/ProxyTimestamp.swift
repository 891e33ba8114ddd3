/// The Proxy Mobile IPv6 Timestamp (RFC 5213 §8.8): seconds since 1970-01-01 00:00 UTC in
/// the high 48 bits, 1/65536 s in the low 16. Not RFC 4285's NTP 32.32-since-1900
/// (`NTPTimestamp`): the two must never be mixed up.
/// Codable as its raw 64-bit value (RawRepresentable's own conformance).
public struct ProxyTimestamp: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `unixSeconds` + `nanoseconds`, the fraction rounded down to 1/65536 s.
    public init(unixSeconds: UInt64, nanoseconds: UInt64) {
        let fraction = (min(nanoseconds, 999_999_999) << 16) / 1_000_000_000
        rawValue = (unixSeconds & 0xffff_ffff_ffff) << 16 | fraction
    }

    /// CLOCK_REALTIME now.
    public static func now(_ clock: some WallClock = SystemWallClock()) -> ProxyTimestamp {
        ProxyTimestamp(ntp: clock.ntpTimestamp())
    }

    /// The same instant as an RFC 4285 NTP timestamp (era 0: 1900-2036), which is what our
    /// `WallClock` reads; 1/65536 s is coarser than NTP's fraction, so it is rounded down.
    public init(ntp: UInt64) {
        let seconds = (ntp >> 32) &- NTPTimestamp.unixEpochOffset
        rawValue = (seconds & 0xffff_ffff_ffff) << 16 | (ntp & 0xffff_ffff) >> 16
    }

    public var unixSeconds: UInt64 { rawValue >> 16 }

    /// `self - other` in milliseconds (negative when `self` is earlier).
    public func milliseconds(since other: ProxyTimestamp) -> Int64 {
        let difference = Int64(bitPattern: rawValue &- other.rawValue) // 48.16 fixed point
        return difference * 1000 / 65536
    }

    public static func < (a: ProxyTimestamp, b: ProxyTimestamp) -> Bool { a.rawValue < b.rawValue }

    /// "1796589164.8144s" (seconds since 1970, four decimals: 1/65536 s is 15 µs).
    public var description: String {
        let fraction = (rawValue & 0xffff) * 10_000 / 65536
        let digits = String(fraction)
        return "\(unixSeconds).\(String(repeating: "0", count: 4 - digits.count))\(digits)s"
    }
}
