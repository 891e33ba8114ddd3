// A binding as the replicas and forwarders share it: the key is the home address under the
// store prefix, the value JSON with wall-clock times (CLOCK_MONOTONIC is per host; each node
// converts to its own, so clocks must be NTP-synced: the skew is the expiry error).
import ControlPlane
import Foundation

public struct BindingRecord: Codable, Sendable, Equatable {
    public var coa: String
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
        coa = "\(b.careOfAddress)"
        seq = b.sequence
        flags = b.flags.rawValue
        lifetime = b.lifetime
        registeredUnixNs = clocks.wall(b.registeredAt)
        expiresUnixNs = clocks.wall(b.expiresAt)
        self.authTimestamp = authTimestamp
        self.writer = writer
    }

    /// The binding in this host's monotonic time.
    public func binding(homeAddress: IPv6Address, clocks: Clocks) throws -> Binding {
        guard let careOf = IPv6Address(coa) else { throw StoreError("stored binding of \(homeAddress): bad care-of address \(coa)") }
        return Binding(homeAddress: homeAddress, careOfAddress: careOf, sequence: seq, flags: BUFlags(rawValue: flags),
                       lifetime: lifetime, registeredAt: clocks.monotonic(registeredUnixNs), expiresAt: clocks.monotonic(expiresUnixNs))
    }
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
