import CMip6
import ControlPlane
import Testing
@testable import DataPlane
import Mip6Daemon
import Mip6TestSupport

/// Hostile packets against the home-agent XDP program: every truncation, bad lengths,
/// spoofed tunnels, invalid NS, every protocol to the HA's own address. Each has an
/// expected verdict and counter; nothing hostile may ever be sent on (XDP_TX/REDIRECT)
/// except where the row says so.
@Suite("XDP home-agent program: hostile input", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct HostileFixtureTests {
    typealias F = PacketFixtures
    static let drop: UInt32 = 1, pass: UInt32 = 2, tx: UInt32 = 3

    static let env: Result<XDPFixtureEnvironment, Error> = Result { try XDPFixtureEnvironment(tag: "hostile") }

    static let bu = F.ethernet(PacketBuilder.bindingUpdate(
        BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
        careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress))
    static let tunneled = F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent,
                                              F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64)))
    static let toHoA = F.ethernet(F.echoRequest())

    /// Sum of the named counters.
    func total(_ env: XDPFixtureEnvironment, _ names: [String]) throws -> UInt64 {
        try names.reduce(0) { $0 + (try env.counter($1)) }
    }

    @Test("a Binding Update cut at every length is dropped or passed, never sent on, and counted",
          arguments: [("BU to the HA", bu), ("reverse tunnel", tunneled), ("packet to a home address", toHoA)])
    func truncations(_ name: String, _ frame: [UInt8]) throws {
        let env = try Self.env.get()
        let counted = ["pass_not_ipv6", "drop_malformed", "drop_tunnel_malformed", "mh_punt", "pass_local", "pass_other"]
        // BPF_PROG_TEST_RUN wants at least an Ethernet header.
        for cut in 14..<frame.count {
            let before = try total(env, counted)
            let r = try env.run(Array(frame.prefix(cut)))
            #expect(r.verdict == Self.drop || r.verdict == Self.pass, "\(name) cut at \(cut): verdict \(r.verdict)")
            #expect(try total(env, counted) == before + 1, "\(name) cut at \(cut): not counted once")
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let frame: [UInt8]
        let verdict: UInt32
        let counter: String
        var testDescription: String { name }
    }

    static var cases: [Case] {
        func toHA(_ nh: UInt8, _ payload: [UInt8]) -> [UInt8] {
            F.ethernet(F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: nh, payloadLength: payload.count) + payload)
        }
        let mh: [UInt8] = [59, 1, 5, 0, 0, 0, 0, 1, 0xC0, 0, 0, 1, 1, 2, 0, 0]
        var longerThanThere = F.echoRequest()
        longerThanThere[5] &+= 40 // payload length claims 40 bytes that are not there
        var jumbo = F.echoRequest()
        (jumbo[4], jumbo[5]) = (0, 0)
        let spoofedInner = F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent,
                                               F.echoRequest(src: XDPFixtureEnvironment.hoaNoNeigh, dst: F.correspondent)))
        let nsZeroLengthOption = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 1, 0], {
            var ns = PacketBuilder.neighborSolicitation(target: F.homeAddress, source: IPv6Address("2001:db8:1::1")!,
                                                        destination: F.homeAddress.solicitedNodeMulticast, sourceLinkLayer: F.routerMAC)
            ns[40 + 25] = 0 // option length 0 (RFC 4861 §7.1.1: invalid)
            return ns
        }())
        let dadWithSLLA = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 1, 0], {
            var ns = PacketBuilder.neighborSolicitation(target: F.homeAddress, source: IPv6Address("2001:db8:1::1")!,
                                                        destination: F.homeAddress.solicitedNodeMulticast, sourceLinkLayer: F.routerMAC)
            for i in 8..<24 { ns[i] = 0 } // source :: with a source link-layer option
            return ns
        }())
        let nsToMulticastTarget = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 1, 0], {
            var ns = PacketBuilder.neighborSolicitation(target: F.homeAddress, source: IPv6Address("2001:db8:1::1")!,
                                                        destination: F.homeAddress.solicitedNodeMulticast, sourceLinkLayer: F.routerMAC)
            ns[40 + 8] = 0xff // target becomes multicast: not a binding either, so it is the kernel's
            return ns
        }())
        return [
            Case(name: "payload length longer than the packet, to a home address", frame: F.ethernet(longerThanThere),
                 verdict: drop, counter: "drop_malformed"),
            Case(name: "payload length 0 (jumbogram) to a home address", frame: F.ethernet(jumbo), verdict: drop, counter: "drop_malformed"),
            Case(name: "tunnel whose inner source is another registered home address", frame: spoofedInner, verdict: drop,
                 counter: "drop_tunnel_spoofed"),
            Case(name: "tunnel with a non-IPv6 inner packet", frame: toHA(41, [0x45] + [UInt8](repeating: 0, count: 39)),
                 verdict: drop, counter: "drop_tunnel_malformed"),
            Case(name: "NS with a zero-length option", frame: nsZeroLengthOption, verdict: drop, counter: "drop_ns_invalid"),
            Case(name: "DAD probe carrying a source link-layer option", frame: dadWithSLLA, verdict: drop, counter: "drop_ns_invalid"),
            Case(name: "NS for a multicast target", frame: nsToMulticastTarget, verdict: pass, counter: "pass_other"),
            Case(name: "MH behind Hop-by-Hop and Routing headers: punted", frame: toHA(0, [43, 0, 1, 4, 0, 0, 0, 0, 135, 0, 0, 0, 0, 0, 0, 0] + mh),
                 verdict: drop, counter: "mh_punt"),
            Case(name: "TCP to the HA", frame: toHA(6, [UInt8](repeating: 0, count: 20)), verdict: pass, counter: "pass_local"),
            Case(name: "UDP to the HA", frame: toHA(17, [UInt8](repeating: 0, count: 8)), verdict: pass, counter: "pass_local"),
            Case(name: "ESP to the HA", frame: toHA(50, [UInt8](repeating: 0, count: 16)), verdict: pass, counter: "pass_local"),
            Case(name: "GRE to the HA", frame: toHA(47, [UInt8](repeating: 0, count: 8)), verdict: pass, counter: "pass_local"),
            Case(name: "no next header (59) to the HA", frame: toHA(59, []), verdict: pass, counter: "pass_local"),
            Case(name: "unknown protocol 253 to the HA", frame: toHA(253, [1, 2, 3, 4]), verdict: pass, counter: "pass_local"),
            Case(name: "fragment of something else to the HA", frame: toHA(44, [17, 0, 0, 1, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 8)),
                 verdict: pass, counter: "pass_local"),
        ]
    }

    @Test(arguments: cases)
    func table(_ c: Case) throws {
        let env = try Self.env.get()
        let before = try env.counter(c.counter)
        let r = try env.run(c.frame)
        #expect(r.verdict == c.verdict, "verdict \(r.verdict)")
        #expect(try env.counter(c.counter) == before + 1, "counter \(c.counter)")
    }
}
