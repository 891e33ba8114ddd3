import DataPlane
import ControlPlane
import Foundation
import Glibc

/// An over-the-wire load generator for the local mobility anchor's control plane
/// (`mip6-bench pbu-load`, issue 13).
///
/// Runs on a MAG's side (the testbed's mobile-node namespace, as `testbed/scapy_mag.py` does):
/// sends Proxy Binding Updates (A and P flags; MN-ID, HNP, HI, ATT, MN-LL-ID, Timestamp, built
/// by `PacketBuilder.proxyBindingUpdate`) from one Proxy-CoA for many distinct mobile nodes,
/// and matches each Proxy Binding Acknowledgement to its PBU by the NAI in its MN-ID option
/// and the sequence number (the engine, sockets and figures: `WireLoadGenerator`).
///
/// Node i is `mn<8 digits of i>@<domain>`, MAC 02:bb:<4 bytes of i>, home network prefix
/// `prefixBase + i` (a /64): `policy(...)` writes the LMA's policy file listing them. PBU
/// number k of the run is for node `firstNode + k % pool` with sequence `firstSequence + k / pool`,
/// so a pool as large as the run makes every PBU a new registration and a smaller one makes
/// later rounds refreshes. The frames are built before each step with a placeholder
/// Timestamp; each gets the time it is sent (CLOCK_REALTIME, RFC 5213 §5.5: the LMA allows
/// 300 ms) and its checksum updated (RFC 1624) just before its sendmmsg.
final class PBULoadGenerator {
    struct Configuration: Sendable {
        /// Interface, MAC, rates, step length, burst, drain, receive: the engine's.
        var wire: WireLoadGenerator.Configuration
        /// The MAG's Proxy-CoA (source of the PBUs; the PBAs come back to it).
        var mag: IPv6Address
        var lma: IPv6Address
        /// Index of the first node.
        var firstNode: Int = 0
        /// Distinct mobile nodes; 0: one per PBU of the whole run (every PBU a new registration).
        var nodes: Int = 0
        var domain: String = PBUWorkload.defaultDomain
        /// High 64 bits of node 0's home network prefix.
        var prefixBase: UInt64 = PBUWorkload.defaultPrefixBase
        var lifetimeSeconds: UInt32 = 600
        var firstSequence: UInt16 = 1

        init(interface: String, destinationMAC: [UInt8], mag: IPv6Address, lma: IPv6Address) {
            wire = WireLoadGenerator.Configuration(interface: interface, destinationMAC: destinationMAC)
            self.mag = mag
            self.lma = lma
        }

    }

    typealias Step = WireLoadGenerator.Step

    struct Result: Codable, Sendable {
        var interface: String
        var mag: String
        var lma: String
        var nodes: Int
        var firstNode: Int
        var frameBytes: Int
        var burst: Int
        var lifetimeSeconds: UInt32
        var receive: Bool
        var steps: [Step]
    }

    let config: Configuration
    let workload: PBUWorkload
    let engine: WireLoadGenerator

    init(_ config: Configuration) throws(SystemError) {
        let total = config.wire.total
        let pool = config.nodes > 0 ? config.nodes : total
        guard total / pool < 30_000 else {
            throw SystemError("pbu-load", errno: EINVAL, "more than 30000 rounds over \(pool) nodes: sequence numbers would wrap")
        }
        guard config.firstNode >= 0, config.firstNode + pool <= PBUWorkload.maxNodes else {
            throw SystemError("pbu-load", errno: EINVAL, "nodes \(config.firstNode)..<\(config.firstNode + pool): at most \(PBUWorkload.maxNodes)")
        }
        self.config = config
        let w = try PBUWorkload(config: config, pool: pool)
        workload = w
        engine = try WireLoadGenerator(config.wire, workload: w) { first, count in
            (w.nai(config.firstNode + first % pool),
             w.sequence(first) == w.sequence(first + count - 1) ? "\(w.sequence(first))" : "\(w.sequence(first))-\(w.sequence(first + count - 1))")
        }
    }

    func run(progress: ((Step) -> Void)? = nil) throws -> Result {
        let steps = try engine.run(progress: progress)
        return Result(interface: config.wire.interface, mag: "\(config.mag)", lma: "\(config.lma)", nodes: workload.pool,
                      firstNode: config.firstNode, frameBytes: engine.frameBytes, burst: max(1, config.wire.burst),
                      lifetimeSeconds: config.lifetimeSeconds, receive: config.wire.receive, steps: steps)
    }

    /// The LMA policy file for nodes `first..<first+count` of `domain`, served through `mags`
    /// (ProxyPolicy's text form: `mag` lines, then one `mn` line a node).
    static func policy(first: Int, count: Int, mags: [IPv6Address], domain: String = PBUWorkload.defaultDomain,
                              prefixBase: UInt64 = PBUWorkload.defaultPrefixBase) -> String {
        var out = "# mip6-bench pbu-load: \(count) mobile nodes from \(first)\n"
        out.reserveCapacity(count * 96)
        for m in mags { out += "mag \(m)\n" }
        for i in first..<first + count {
            out += "mn \(PBUWorkload.nai(i, domain: domain)) mac \(formatMAC(PBUWorkload.mac(i))) prefix \(PBUWorkload.prefix(i, base: prefixBase))\n"
        }
        return out
    }
}

/// Proxy Binding Updates for distinct mobile nodes from one MAG; PBAs matched by the NAI of
/// their MN-ID option and the sequence number.
struct PBUWorkload: SignalingWorkload {
    static let defaultDomain = "pmip.bench"
    /// 2001:db8:8000::/33: node i's prefix is 2001:db8:8000:0000::/64 + i.
    static let defaultPrefixBase: UInt64 = 0x2001_0db8_8000_0000
    /// Eight decimal digits in the NAI.
    static let maxNodes = 100_000_000
    /// A placeholder Timestamp every frame is built with, found again to know where to write
    /// the real one.
    static let placeholder = ProxyTimestamp(rawValue: 0x5a5a_c3c3_3c3c_a5a5)

    static func nai(_ i: Int, domain: String) -> String {
        let digits = String(i)
        return "mn" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + "@" + domain
    }

    static func mac(_ i: Int) -> [UInt8] { [2, 0xbb, UInt8(i >> 24 & 0xff), UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)] }

    static func prefix(_ i: Int, base: UInt64) -> IPv6Prefix {
        IPv6Prefix(address: IPv6Address(high: base &+ UInt64(i), low: 0), length: 64)!
    }

    let config: PBULoadGenerator.Configuration
    let pool: Int
    /// Where the Timestamp option's 8 bytes and the Mobility Header checksum are in every packet.
    private(set) var timestampOffset: Int
    static let checksumOffset = 40 + 4
    /// Where the NAI's digits are in a PBA's MN-ID option, from the option's type byte.
    static let digitsInOption = 2 + 1 + 2

    init(config: PBULoadGenerator.Configuration, pool: Int) throws(SystemError) {
        self.config = config
        self.pool = pool
        timestampOffset = 0
        let p = packet(0)
        let needle = withUnsafeBytes(of: Self.placeholder.rawValue.bigEndian) { Array($0) }
        guard let at = (0...(p.count - 8)).first(where: { Array(p[$0..<$0 + 8]) == needle }), p[6] == 135 else {
            throw SystemError("pbu-load", errno: EINVAL, "no Timestamp option in the built PBU")
        }
        timestampOffset = at
    }

    func nai(_ i: Int) -> String { Self.nai(i, domain: config.domain) }

    func sequence(_ k: Int) -> UInt16 { config.firstSequence &+ UInt16(truncatingIfNeeded: k / pool) }

    func packet(_ k: Int) -> [UInt8] {
        let i = config.firstNode + k % pool
        return PacketBuilder.proxyBindingUpdate(
            BindingUpdate(sequence: sequence(k), flags: [.ack, .proxy], lifetime: UInt16(min(config.lifetimeSeconds / 4, 0xffff)), options: [
                .mobileNodeIdentifier(subtype: 1, identifier: Array(nai(i).utf8)),
                .homeNetworkPrefix(Self.prefix(i, base: config.prefixBase)),
                .handoffIndicator(MobilityOption.HandoffIndicator.unknown), .accessTechnologyType(3),
                .mobileNodeLinkLayerIdentifier(Self.mac(i)), .timestamp(Self.placeholder),
            ]), from: config.mag, to: config.lma)
    }

    /// The Timestamp now, and the checksum adjusted for the 8 bytes that changed (RFC 1624 eqn. 3:
    /// HC' = ~(~HC + ~m + m') over the four 16-bit words).
    var freshen: ((UnsafeMutableRawPointer) -> Void)? {
        let at = timestampOffset
        return { ipv6 in
            let now = ProxyTimestamp.now().rawValue
            var sum = UInt32(~UInt16(bigEndian: ipv6.loadUnaligned(fromByteOffset: Self.checksumOffset, as: UInt16.self)))
            for w in 0..<4 {
                let old = UInt16(bigEndian: ipv6.loadUnaligned(fromByteOffset: at + 2 * w, as: UInt16.self))
                let new = UInt16(truncatingIfNeeded: now >> (48 - 16 * UInt64(w)))
                sum += UInt32(~old) + UInt32(new)
                ipv6.storeBytes(of: new.bigEndian, toByteOffset: at + 2 * w, as: UInt16.self)
            }
            while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
            ipv6.storeBytes(of: (~UInt16(sum)).bigEndian, toByteOffset: Self.checksumOffset, as: UInt16.self)
        }
    }

    /// IPv6 whose next header is the Mobility Header, MH type 6 (PBA) or 7 (Binding Error).
    var receiveFilter: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)] {
        [
            (0x28, 0, 0, 12),          // 0: ldh [12]
            (0x15, 0, 6, 0x86dd),      // 1: jeq ETH_P_IPV6 else drop
            (0x30, 0, 0, 20),          // 2: ldb [20] (next header)
            (0x15, 0, 4, 135),         // 3: jeq mobility else drop
            (0x30, 0, 0, 56),          // 4: ldb [56] (MH type)
            (0x15, 1, 0, 6),           // 5: jeq 6 -> accept
            (0x15, 0, 1, 7),           // 6: jeq 7 -> accept else drop
            (0x06, 0, 0, 256),         // 7: accept
            (0x06, 0, 0, 0),           // 8: drop
        ]
    }

    func classify(_ p: UnsafeRawBufferPointer) -> SignalingAnswer {
        guard p.count >= 14 + 40 + 12, p[12] == 0x86, p[13] == 0xdd, p[20] == 135 else { return .ignored }
        if p[56] == 7 { return .error }
        guard p[56] == 6 else { return .unmatched }
        let status = p[60]
        let seq = UInt16(p[62]) << 8 | UInt16(p[63])
        // Options from MH offset 12; the MN-ID option (type 8) is the first the LMA writes.
        let end = min(p.count, 14 + 40 + (Int(p[55]) + 1) * 8)
        var i = 66
        while i + 1 < end {
            let type = p[i]
            if type == 0 { i += 1; continue } // Pad1
            let len = Int(p[i + 1])
            if type == 8 {
                let digits = i + Self.digitsInOption
                guard len >= 3 + 8, digits + 8 <= end, p[i + 2] == 1, p[i + 3] == UInt8(ascii: "m"), p[i + 4] == UInt8(ascii: "n") else {
                    return .unmatched
                }
                var node = 0
                for d in digits..<digits + 8 {
                    let c = p[d]
                    guard c >= 0x30, c <= 0x39 else { return .unmatched }
                    node = node * 10 + Int(c - 0x30)
                }
                let index = node - config.firstNode
                guard index >= 0, index < pool else { return .unmatched }
                return .ack(Int(seq &- config.firstSequence) * pool + index, status: status)
            }
            i += 2 + len
        }
        return .unmatched
    }
}
