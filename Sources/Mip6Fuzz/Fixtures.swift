import ControlPlane
import Logging

// The fixed world every fuzz target runs in: addresses, keys, clocks. The seed generator
// (Seeds.swift) builds its messages from the same values, so seeds reach deep paths (a BU
// that is for us, authenticates, has a fresh timestamp) before the fuzzer mutates them.

enum Fixture {
    static let homeAgent = IPv6Address("2001:db8:1::a")!
    static let otherLocal = IPv6Address("2001:db8:1::2")!
    static let homePrefix = IPv6Prefix("2001:db8:1::/64")!
    static let homeAddress = IPv6Address("2001:db8:1::100")!
    static let homeAddress2 = IPv6Address("2001:db8:1::200")!
    static let careOf = IPv6Address("2001:db8:f1::100")!
    static let careOf2 = IPv6Address("2001:db8:f2::100")!
    static let correspondent = IPv6Address("2001:db8:c::2")!
    static let localAddresses: Set<IPv6Address> = [homeAgent, otherLocal]

    /// Keys are test values only. Line 1 covers one home address, line 2 any in the prefix.
    static let keyFile = """
        # NAI                 home address      SPI     key
        mn1@example.net       2001:db8:1::100   0x1001  000102030405060708090a0b0c0d0e0f
        any@example.net       any               8194    f0e1d2c3b4a5968778695a4b3c2d1e0f00112233
        """
    static let keys: KeyStore = {
        do { return try KeyStore(parsing: keyFile) } catch { fatalError("fixture key file: \(error)") }
    }()
    static var mn1: MNHASecurityAssociation { keys[spi: 0x1001]!.association }
    static var anyMN: MNHASecurityAssociation { keys[spi: 8194]!.association }

    /// Wall clock at the start of every input (2025-06-15, as an NTP timestamp).
    static let ntpBase = NTPTimestamp.from(unixSeconds: 1_750_000_000, nanoseconds: 0)
    /// Monotonic clock at the start of every input.
    static let monotonicBase: UInt64 = 1_000_000_000_000

    /// The mobile node's first sequence number: just below the wrap, so that wrap-around
    /// comparisons are on the fuzzed paths.
    static let mnInitialSequence: UInt16 = 0xfffe

    /// Logs nothing: the cores' log statements are skipped before their messages are built.
    static let quietLogger = Logger(label: "mip6.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Builds every message and metadata value at trace level, then drops them, so that the
    /// formatting code runs on fuzzed values as it does in a daemon run with --log-level trace.
    static let traceLogger: Logger = {
        var logger = Logger(label: "mip6.fuzz", factory: { _ in SinkLogHandler() })
        logger.logLevel = .trace
        return logger
    }()
}

/// Renders each record (message and metadata) and throws the text away.
struct SinkLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    nonisolated(unsafe) static var rendered = 0

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var n = event.message.description.utf8.count
        for (key, value) in event.metadata ?? [:] { n &+= key.utf8.count &+ value.description.utf8.count }
        Self.rendered &+= n
    }
}

/// Both clocks, moved by the input. One input runs on one thread.
final class FuzzClock: MonotonicClock, WallClock, @unchecked Sendable {
    var mono: UInt64 = Fixture.monotonicBase
    var ntp: UInt64 = Fixture.ntpBase

    func nanoseconds() -> UInt64 { mono }
    func ntpTimestamp() -> UInt64 { ntp }

    func advance(seconds: UInt64) {
        mono &+= seconds * 1_000_000_000
        ntp &+= seconds << 32
    }
}

/// Records nothing, accepts every write.
final class NullDataPlane: BindingDataPlane {
    var failNext = false
    func install(_ binding: Binding) throws {
        if failNext { failNext = false; throw NullDataPlaneError() }
    }
    func remove(homeAddress: IPv6Address) throws {
        if failNext { failNext = false; throw NullDataPlaneError() }
    }
}

struct NullDataPlaneError: Error {}

/// Reads an input front to back; past the end it yields zeros / empty slices.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }
    var isEmpty: Bool { remaining <= 0 }

    mutating func u8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }

    mutating func take(_ n: Int) -> [UInt8] {
        let n = max(0, min(n, remaining))
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func address() -> IPv6Address {
        let b = take(16)
        return b.count == 16 ? IPv6Address(bytes: b) : .unspecified
    }

    mutating func rest() -> [UInt8] { take(remaining) }
}

/// Helpers that repair what random mutation almost never gets right (checksums, HMACs) so
/// that the fuzzer gets past them. Written from the RFCs, independently of the code under test.
enum Repair {
    /// Offset of the first option for MH types with options (RFC 6275 §6.1.2 ... §6.1.9).
    static func optionsOffset(mhType: UInt8) -> Int? {
        switch mhType {
        case 0: return 8
        case 5, 6: return 12
        case 7: return 24
        default: return nil
        }
    }

    /// Recomputes the Mobility Header checksum (RFC 6275 §6.1.1) in place.
    static func mhChecksum(_ mh: inout [UInt8], source: IPv6Address, destination: IPv6Address) {
        guard mh.count >= 6 else { return }
        mh[4] = 0
        mh[5] = 0
        let c = InternetChecksum.upperLayer(source: source, destination: destination, nextHeader: ipProtoMobility,
                                            payload: mh)
        mh[4] = UInt8(c >> 8)
        mh[5] = UInt8(c & 0xff)
    }

    /// Offset of the last MN-HA authentication option (type 9, length 17, subtype 1) among
    /// the TLVs of `mh`, if the TLVs can be walked that far.
    static func authOptionOffset(_ mh: [UInt8]) -> Int? {
        guard mh.count >= 8, let start = optionsOffset(mhType: mh[2]) else { return nil }
        var i = start
        var found: Int?
        while i < mh.count {
            if mh[i] == 0 { i += 1; continue }
            guard i + 2 <= mh.count else { break }
            let len = Int(mh[i + 1])
            guard i + 2 + len <= mh.count else { break }
            if mh[i] == 9, len == 17, mh[i + 2] == 1 { found = i }
            i += 2 + len
        }
        return found
    }

    /// Rewrites the MN-HA authenticator (RFC 4285 §5.1) with the key of its SPI, if known.
    static func authenticator(_ mh: inout [UInt8], careOf: IPv6Address, homeAddress: IPv6Address,
                              lookup: (UInt32) -> MobilityKey?) {
        guard let off = authOptionOffset(mh) else { return }
        var spi: UInt32 = 0
        for k in 3...6 { spi = spi << 8 | UInt32(mh[off + k]) }
        guard let key = lookup(spi) else { return }
        var data = Array(mh[0..<off + 7])
        data[4] = 0
        data[5] = 0
        let value = MobilityAuthentication.authenticator(key: key, careOf: careOf, homeAddress: homeAddress, mhData: data)
        mh.replaceSubrange(off + 7..<off + 7 + 12, with: value)
    }

    /// The value of the first Replay Protection option (type 10, length 8), and its offset.
    static func replayProtection(_ mh: [UInt8]) -> (offset: Int, value: UInt64)? {
        guard mh.count >= 8, let start = optionsOffset(mhType: mh[2]) else { return nil }
        var i = start
        while i < mh.count {
            if mh[i] == 0 { i += 1; continue }
            guard i + 2 <= mh.count else { return nil }
            let len = Int(mh[i + 1])
            guard i + 2 + len <= mh.count else { return nil }
            if mh[i] == 10, len == 8 {
                var v: UInt64 = 0
                for k in 0..<8 { v = v << 8 | UInt64(mh[i + 2 + k]) }
                return (i, v)
            }
            i += 2 + len
        }
        return nil
    }

    /// Runs `body` on the Mobility Header of an IPv6 packet and writes it back. No-op when the
    /// packet does not parse as one.
    static func withMobilityHeader(_ packet: inout [UInt8], _ body: (MobilityPacket, inout [UInt8]) -> Void) {
        guard let p = try? IPv6PacketParser.parseMobility(packet) else { return }
        var mh = p.mh
        body(p, &mh)
        guard mh.count == p.mh.count else { return }
        packet.replaceSubrange(p.mhOffset..<p.mhOffset + mh.count, with: mh)
    }
}

/// A failed property: print what broke and trap, so libFuzzer records the input.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
           file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("fuzz property violated: \(message())", file: file, line: line)
    }
}

/// An IPv6 header with optional extension bytes in front of an upper-layer payload.
func ipv6Packet(source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, hopLimit: UInt8 = 64,
                extensionHeaders: [UInt8] = [], payload: [UInt8]) -> [UInt8] {
    let length = extensionHeaders.count + payload.count
    var out: [UInt8] = [0x60, 0, 0, 0, UInt8(length >> 8 & 0xff), UInt8(length & 0xff), nextHeader, hopLimit]
    out += source.bytes
    out += destination.bytes
    out += extensionHeaders
    out += payload
    return out
}

func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xf)]) }
    return s
}
