import DataPlane
import ControlPlane
import Foundation
import Glibc

/// An over-the-wire load generator for the home agent's control plane (`mip6-bench bu-load`).
///
/// Runs on the care-of side (the testbed's mobile-node namespace): sends Binding Updates (A and H
/// flags) from one care-of address for many distinct home addresses of the home prefix, and
/// matches each Binding Acknowledgement to its BU by the home address in the Type 2 Routing
/// Header and the sequence number (the engine, sockets and figures: `WireLoadGenerator`).
///
/// BU number k of the run (counted over all steps) is for home address `firstHomeAddress + k % pool`
/// with sequence `firstSequence + k / pool`, so a pool as large as the run makes every BU a new
/// registration and a smaller one makes later rounds refreshes.
final class BULoadGenerator {
    struct Configuration: Sendable {
        /// Interface, MAC, rates, step length, burst, drain, receive: the engine's.
        var wire: WireLoadGenerator.Configuration
        var careOf: IPv6Address
        var homeAgent: IPv6Address
        /// The home prefix (/64 or shorter): home addresses are `prefix high 64 bits` : `firstHomeAddress + i`.
        var homePrefix: IPv6Prefix
        /// Interface identifier of the first home address.
        var firstHomeAddress: UInt64 = 0xb000_0000_0000_0000
        /// Distinct home addresses; 0: one per BU of the whole run (every BU a new registration).
        var homeAddresses: Int = 0
        var lifetimeSeconds: UInt32 = 600
        var firstSequence: UInt16 = 1

        init(interface: String, destinationMAC: [UInt8], careOf: IPv6Address, homeAgent: IPv6Address,
                    homePrefix: IPv6Prefix) {
            wire = WireLoadGenerator.Configuration(interface: interface, destinationMAC: destinationMAC)
            self.careOf = careOf
            self.homeAgent = homeAgent
            self.homePrefix = homePrefix
        }

    }

    typealias Step = WireLoadGenerator.Step

    struct Result: Codable, Sendable {
        var interface: String
        var careOf: String
        var homeAgent: String
        var homeAddresses: Int
        var frameBytes: Int
        var burst: Int
        var lifetimeSeconds: UInt32
        var receive: Bool
        var steps: [Step]
    }

    let config: Configuration
    let workload: BUWorkload
    let engine: WireLoadGenerator

    init(_ config: Configuration) throws(SystemError) {
        guard config.homePrefix.length <= 64 else {
            throw SystemError("bu-load", errno: EINVAL, "home prefix \(config.homePrefix) longer than /64")
        }
        let total = config.wire.total
        let pool = config.homeAddresses > 0 ? config.homeAddresses : total
        guard total / pool < 30_000 else {
            throw SystemError("bu-load", errno: EINVAL, "more than 30000 rounds over \(pool) home addresses: sequence numbers would wrap")
        }
        self.config = config
        let w = BUWorkload(config: config, pool: pool, total: total)
        workload = w
        engine = try WireLoadGenerator(config.wire, workload: w) { first, count in
            ("\(w.homeAddress(first % pool))",
             w.sequence(first) == w.sequence(first + count - 1) ? "\(w.sequence(first))" : "\(w.sequence(first))-\(w.sequence(first + count - 1))")
        }
    }

    func run(progress: ((Step) -> Void)? = nil) throws -> Result {
        let steps = try engine.run(progress: progress)
        return Result(interface: config.wire.interface, careOf: "\(config.careOf)", homeAgent: "\(config.homeAgent)",
                      homeAddresses: workload.pool, frameBytes: engine.frameBytes, burst: max(1, config.wire.burst),
                      lifetimeSeconds: config.lifetimeSeconds, receive: config.wire.receive, steps: steps)
    }
}

/// Binding Updates from one care-of address for distinct home addresses; BAs matched by the
/// home address in their Type 2 Routing Header and the sequence number.
struct BUWorkload: SignalingWorkload {
    let config: BULoadGenerator.Configuration
    let pool: Int
    let total: Int

    func homeAddress(_ index: Int) -> IPv6Address {
        IPv6Address(high: config.homePrefix.address.high, low: config.firstHomeAddress &+ UInt64(index))
    }

    func sequence(_ k: Int) -> UInt16 { config.firstSequence &+ UInt16(truncatingIfNeeded: k / pool) }

    func packet(_ k: Int) -> [UInt8] {
        PacketBuilder.bindingUpdate(BindingUpdate(sequence: sequence(k), flags: [.ack, .home],
                                                  lifetime: UInt16(min(config.lifetimeSeconds / 4, 0xffff))),
                                    careOf: config.careOf, homeAgent: config.homeAgent, homeAddress: homeAddress(k % pool))
    }

    var freshen: ((UnsafeMutableRawPointer) -> Void)? { nil }

    /// IPv6 with a routing header (BA to a care-of address) or a bare Mobility Header (Binding
    /// Error) right after the IPv6 header.
    var receiveFilter: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)] {
        [
            (0x28, 0, 0, 12),          // ldh [12]
            (0x15, 0, 4, 0x86dd),      // jeq ETH_P_IPV6 else drop
            (0x30, 0, 0, 20),          // ldb [20] (next header)
            (0x15, 1, 0, 43),          // jeq routing -> accept
            (0x15, 0, 1, 135),         // jeq mobility -> accept else drop
            (0x06, 0, 0, 256),         // accept
            (0x06, 0, 0, 0),           // drop
        ]
    }

    func classify(_ p: UnsafeRawBufferPointer) -> SignalingAnswer {
        guard p.count >= 14 + 40 + 8, p[12] == 0x86, p[13] == 0xdd else { return .ignored }
        switch p[20] {
        case 43:
            // Routing header type 2 (Hdr Ext Len 2) then the Mobility Header: a BA to the care-of address.
            guard p.count >= 78 + 12, p[54] == 135, p[55] == 2, p[56] == 2, p[80] == 6 else { return .unmatched }
            let hi = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 62, as: UInt64.self))
            let lo = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 70, as: UInt64.self))
            let index = lo &- config.firstHomeAddress
            guard hi == config.homePrefix.address.high, index < UInt64(pool) else { return .unmatched }
            let seq = UInt16(p[86]) << 8 | UInt16(p[87])
            return .ack(Int(seq &- config.firstSequence) * pool + Int(index), status: p[84])
        case 135:
            return p.count >= 54 + 8 && p[56] == 7 ? .error : .unmatched
        default:
            return .ignored
        }
    }
}
