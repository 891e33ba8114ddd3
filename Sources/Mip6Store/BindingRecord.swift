// A binding as the replicas and forwarders share it: the key is the home address under the
// store prefix, the value a fixed binary layout with wall-clock times (CLOCK_MONOTONIC is per
// host; each node converts to its own, so clocks must be NTP-synced: the skew is the expiry
// error). Binary, not JSON: at 10,000 BU/s encoding and decoding the JSON value cost more CPU
// in the replicas than the BUs themselves, and etcd's gateway base64-encodes every value into
// every watch event (perf/README.md "Binding Updates through the shared store").
import ControlPlane
import Foundation

public struct BindingRecord: Codable, Sendable, Equatable {
    public var coa: IPv6Address
    public var seq: UInt16
    public var flags: UInt16
    public var lifetime: UInt32
    public var registeredUnixNs: Int64
    public var expiresUnixNs: Int64
    /// RFC 4285 §6: the last accepted Mobility Message Replay Protection timestamp, so
    /// another replica refuses a replay of it.
    public var authTimestamp: UInt64?
    /// The replica that accepted the BU (for inspection).
    public var writer: String

    enum CodingKeys: String, CodingKey {
        case coa, seq, flags, lifetime, writer
        case registeredUnixNs = "registered_unix_ns", expiresUnixNs = "expires_unix_ns", authTimestamp = "auth_ts"
    }

    /// Monotonic <-> wall clock at one moment, to convert times between the two.
    public struct Clocks: Sendable {
        public var monotonicNs: UInt64
        public var wallNs: Int64

        public init(monotonicNs: UInt64, wallNs: Int64) {
            self.monotonicNs = monotonicNs
            self.wallNs = wallNs
        }

        public static func now(_ clock: MonotonicClock) -> Clocks {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return Clocks(monotonicNs: clock.nanoseconds(), wallNs: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
        }

        func wall(_ mono: UInt64) -> Int64 { wallNs &+ (Int64(bitPattern: mono) &- Int64(bitPattern: monotonicNs)) }
        /// A wall time before this host's boot maps to 1 (expired), never to a wrapped value.
        func monotonic(_ wall: Int64) -> UInt64 {
            let m = Int64(bitPattern: monotonicNs) &+ (wall &- wallNs)
            return m > 0 ? UInt64(m) : 1
        }
    }

    public init(_ b: Binding, clocks: Clocks, authTimestamp: UInt64?, writer: String) {
        coa = b.careOfAddress
        seq = b.sequence
        flags = b.flags.rawValue
        lifetime = b.lifetime
        registeredUnixNs = clocks.wall(b.registeredAt)
        expiresUnixNs = clocks.wall(b.expiresAt)
        self.authTimestamp = authTimestamp
        self.writer = writer
    }

    /// The binding in this host's monotonic time.
    public func binding(homeAddress: IPv6Address, clocks: Clocks) -> Binding {
        Binding(homeAddress: homeAddress, careOfAddress: coa, sequence: seq, flags: BUFlags(rawValue: flags),
                lifetime: lifetime, registeredAt: clocks.monotonic(registeredUnixNs), expiresAt: clocks.monotonic(expiresUnixNs))
    }

    // MARK: the stored value

    /// Version 1, all integers big-endian:
    ///   0 version (1) | 1 options (bit 0: auth timestamp present) | 2 care-of address (16)
    ///   18 sequence (2) | 20 flags (2) | 22 lifetime (4) | 26 registered, unix ns (8)
    ///   34 expires, unix ns (8) | 42 [auth timestamp (8)] | writer id, UTF-8, to the end
    /// A value starting with "{" is the JSON form of the same fields (CodingKeys), accepted so
    /// that a record written by hand (etcdctl, a test's fill script) still reads.
    public static let version: UInt8 = 1
    static let fixedLength = 42

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.fixedLength + 8 + writer.utf8.count)
        out.append(Self.version)
        out.append(authTimestamp == nil ? 0 : 1)
        coa.withBytes { out.append(contentsOf: $0) }
        func be<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) } }
        be(seq); be(flags); be(lifetime); be(registeredUnixNs); be(expiresUnixNs)
        if let authTimestamp { be(authTimestamp) }
        out.append(contentsOf: writer.utf8)
        return out
    }

    public init(decoding value: [UInt8]) throws {
        if value.first == UInt8(ascii: "{") {
            self = try JSONDecoder().decode(BindingRecord.self, from: Data(value))
            return
        }
        guard value.count >= Self.fixedLength else { throw StoreError("\(value.count)-byte value: a binding record is at least \(Self.fixedLength)") }
        guard value[0] == Self.version else { throw StoreError("binding record version \(value[0]), this build reads \(Self.version)") }
        let hasAuth = value[1] & 1 != 0
        guard value[1] & ~1 == 0, !hasAuth || value.count >= Self.fixedLength + 8 else {
            throw StoreError("binding record options \(value[1]) in a \(value.count)-byte value")
        }
        self = value.withUnsafeBytes { p in
            func be<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(bigEndian: p.loadUnaligned(fromByteOffset: at, as: T.self)) }
            let writerStart = Self.fixedLength + (hasAuth ? 8 : 0)
            return BindingRecord(coa: IPv6Address(bytes: p[2..<18]), seq: be(18, UInt16.self), flags: be(20, UInt16.self),
                                 lifetime: be(22, UInt32.self), registeredUnixNs: be(26, Int64.self), expiresUnixNs: be(34, Int64.self),
                                 authTimestamp: hasAuth ? be(42, UInt64.self) : nil,
                                 writer: String(decoding: p[writerStart...], as: UTF8.self))
        }
    }

    init(coa: IPv6Address, seq: UInt16, flags: UInt16, lifetime: UInt32, registeredUnixNs: Int64, expiresUnixNs: Int64,
         authTimestamp: UInt64?, writer: String) {
        self.coa = coa
        self.seq = seq
        self.flags = flags
        self.lifetime = lifetime
        self.registeredUnixNs = registeredUnixNs
        self.expiresUnixNs = expiresUnixNs
        self.authTimestamp = authTimestamp
        self.writer = writer
    }
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
