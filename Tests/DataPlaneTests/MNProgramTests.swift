import CMip6
import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6Daemon
import Mip6TestSupport

/// The mobile node's TC programs run with BPF_PROG_TEST_RUN on crafted frames, as a table of
/// {case, direction, input, expected verdict, expected output bytes, counters that must move}.
/// Needs root (CI runs as root); skipped, with this reason printed, otherwise.
@Suite("TC mobile-node programs (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct MNProgramTests {
    typealias F = PacketFixtures
    typealias Env = MNFixtureEnvironment

    /// TC_ACT_UNSPEC (-1): passed on to the next filter, then the stack (bpf/lib/ctx.h m6_act_pass).
    static let tcOK = UInt32(bitPattern: -1), tcShot: UInt32 = 2, tcRedirect: UInt32 = 7

    enum Direction: String, Sendable { case ingress, egress }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let direction: Direction
        let input: [UInt8]
        let verdict: UInt32
        /// Exact output frame; nil when only the verdict and counters matter.
        let output: [UInt8]?
        let counters: [String]
        var testDescription: String { "\(direction.rawValue): \(name)" }
    }

    /// A frame as it arrives at the mobile node from its router.
    static func received(_ ip: [UInt8]) -> [UInt8] { F.ethernet(dst: Env.mnMAC, src: F.routerMAC, ip) }
    /// A frame as the mobile node's stack hands it to the interface.
    static func sent(_ ip: [UInt8], src: [UInt8] = Env.mnMAC) -> [UInt8] { F.ethernet(dst: F.routerMAC, src: src, ip) }

    /// What the egress program makes of `inner`: outer header CoA -> HA, first word copied, MACs from the FIB.
    static func encapsulated(_ inner: [UInt8], ha: IPv6Address = F.homeAgent,
                             dstMAC: [UInt8] = F.routerMAC, srcMAC: [UInt8] = Env.mnMAC) -> [UInt8] {
        var outer = F.tunnel(outerSrc: F.careOf, outerDst: ha, hopLimit: 64, inner)
        outer[0...3] = inner[0...3] // version, traffic class and flow label copied out
        return F.ethernet(dst: dstMAC, src: srcMAC, outer)
    }

    static let toMN = F.echoRequest(src: F.correspondent, dst: F.homeAddress, trafficClass: 0x2E, flowLabel: 0xABCDE)
    static let fromMN = F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64, trafficClass: 0xB8, flowLabel: 0x12345)

    static func bindingAck(to coa: IPv6Address = F.careOf, homeAddress: IPv6Address? = F.homeAddress,
                           from ha: IPv6Address = F.homeAgent) -> [UInt8] {
        PacketBuilder.bindingAcknowledgement(BindingAcknowledgement(status: .accepted, flags: [], sequence: 7, lifetime: 150),
                                             from: ha, to: coa, homeAddress: homeAddress)
    }

    static var cases: [Case] {
        let tunneled = F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, toMN)
        // RFC 2473 §5.1: a Tunnel Encapsulation Limit option (limit 4) in a Destination Options header.
        let withLimit = F.ipv6Header(src: F.homeAgent, dst: F.careOf, nextHeader: 60, payloadLength: 8 + toMN.count)
            + [41, 0, 4, 1, 4, 1, 1, 0] + toMN
        var truncatedInner = tunneled
        truncatedInner.removeLast(20)
        truncatedInner[5] -= 20
        var notIPv6Inner = tunneled
        notIPv6Inner[40] = 0x45
        let brr = F.ipv6Header(src: F.homeAgent, dst: F.homeAddress, nextHeader: 135, payloadLength: 8)
            + MobilityHeaderCodec.encode(.bindingRefreshRequest(BindingRefreshRequest()), source: F.homeAgent, destination: F.homeAddress)
        let baRH2 = bindingAck()
        // Destination Options (PadN) in front of the Type 2 Routing Header.
        var baDstOpts = F.ipv6Header(src: F.homeAgent, dst: F.careOf, nextHeader: 60, payloadLength: Int(baRH2[4]) << 8 + Int(baRH2[5]) + 8)
        baDstOpts += [43, 0, 1, 4, 0, 0, 0, 0] + baRH2[40...]
        // RFC 2473 §7.1(b): a tunnel packet the home agent fragmented; first (more fragments,
        // offset 0) and last (offset 48 bytes) fragments, and the first from someone else / to another address.
        func tunnelFragment(src: IPv6Address = F.homeAgent, dst: IPv6Address = F.careOf, last: Bool = false) -> [UInt8] {
            let part = last ? Array(toMN.dropFirst(48)) : Array(toMN.prefix(48))
            return F.ipv6Header(src: src, dst: dst, nextHeader: 44, payloadLength: 8 + part.count)
                + (last ? [41, 0, 0, 48, 0, 0, 0, 1] : [41, 0, 0, 1, 0, 0, 0, 1]) + part
        }
        let mhFragment = F.ipv6Header(src: F.homeAgent, dst: F.careOf, nextHeader: 44, payloadLength: 16)
            + [135, 0, 0, 1, 0, 0, 0, 2] + [59, 1, 6, 0, 0, 0, 0, 0]
        // The BA at home behind an Authentication Header (RFC 4302; length in 4-octet units, minus 2).
        let baHome = bindingAck(to: F.homeAddress, homeAddress: nil)
        let ah: [UInt8] = [baHome[6], 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        let baAH = F.ipv6Header(src: F.homeAgent, dst: F.homeAddress, nextHeader: 51, payloadLength: ah.count + baHome.count - 40)
            + ah + baHome[40...]
        let truncatedExt = F.ipv6Header(src: F.homeAgent, dst: F.careOf, nextHeader: 60, payloadLength: 8)
            + [135, 1, 1, 4, 0, 0, 0, 0] // claims 16 bytes, has 8
        var chain: [UInt8] = []
        for _ in 0..<9 { chain += [60, 0, 1, 4, 0, 0, 0, 0] }
        chain[chain.count - 8] = 59
        let longChain = F.ipv6Header(src: F.correspondent, dst: F.careOf, nextHeader: 60, payloadLength: chain.count) + chain
        let arp = F.ethernet(dst: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], type: 0x0806, [UInt8](repeating: 0, count: 28))
        let pingCoA = F.echoRequest(src: F.correspondent, dst: F.careOf)
        var notVersion6 = pingCoA
        notVersion6[0] = 0x40
        var notVersion6Out = fromMN
        notVersion6Out[0] = 0x40

        let router = IPv6Address("2001:db8:f1::1")!
        let nudProbe = PacketBuilder.neighborSolicitation(target: router, source: F.homeAddress, destination: router,
                                                          sourceLinkLayer: Env.mnMAC)
        let fromCoA = F.echoRequest(src: F.careOf, dst: F.correspondent, hopLimit: 64)
        let ourTunnel = F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent, fromMN)
        let toGroup = F.echoRequest(src: F.homeAddress, dst: IPv6Address("ff0e::1")!, hopLimit: 64)
        let toLinkLocal = F.echoRequest(src: F.homeAddress, dst: IPv6Address("fe80::1")!, hopLimit: 64)

        return [
            Case(name: "echo request tunneled by the HA to the CoA: decapsulated, inner frame delivered", direction: .ingress,
                 input: received(tunneled), verdict: tcOK, output: received(toMN), counters: ["in_total", "decap"]),
            Case(name: "tunnel with a Tunnel Encapsulation Limit option: decapsulated", direction: .ingress,
                 input: received(withLimit), verdict: tcOK, output: received(toMN), counters: ["decap"]),
            Case(name: "tunnel with a spoofed outer source: dropped", direction: .ingress,
                 input: received(F.tunnel(outerSrc: IPv6Address("2001:db8:1::66")!, outerDst: F.careOf, toMN)),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_spoofed"]),
            Case(name: "tunnel to another address than the CoA: dropped", direction: .ingress,
                 input: received(F.tunnel(outerSrc: F.homeAgent, outerDst: IPv6Address("2001:db8:f1::200")!, toMN)),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_not_coa"]),
            Case(name: "tunnel whose inner packet is truncated: dropped", direction: .ingress, input: received(truncatedInner),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "tunnel whose inner packet is not IPv6: dropped", direction: .ingress, input: received(notIPv6Inner),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "tunnel to another inner destination than the HoA: dropped", direction: .ingress,
                 input: received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf,
                                          F.echoRequest(dst: IPv6Address("2001:db8:1::77")!))),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_not_hoa"]),
            Case(name: "first fragment of a tunnel packet from the HA to the CoA: to the kernel to reassemble", direction: .ingress,
                 input: received(tunnelFragment()), verdict: tcOK, output: received(tunnelFragment()),
                 counters: ["pass_tunnel_fragment"]),
            Case(name: "last fragment of a tunnel packet from the HA to the CoA: to the kernel to reassemble", direction: .ingress,
                 input: received(tunnelFragment(last: true)), verdict: tcOK, output: received(tunnelFragment(last: true)),
                 counters: ["pass_tunnel_fragment"]),
            Case(name: "fragment of a tunnel packet with a spoofed outer source: dropped", direction: .ingress,
                 input: received(tunnelFragment(src: IPv6Address("2001:db8:1::66")!)), verdict: tcShot, output: nil,
                 counters: ["drop_tunnel_spoofed"]),
            Case(name: "fragment of a tunnel packet to another address than the CoA: dropped", direction: .ingress,
                 input: received(tunnelFragment(dst: IPv6Address("2001:db8:f1::200")!)), verdict: tcShot, output: nil,
                 counters: ["drop_tunnel_not_coa"]),
            Case(name: "first fragment of an MH from the HA: dropped (signaling is never reassembled)", direction: .ingress,
                 input: received(mhFragment), verdict: tcShot, output: nil, counters: ["drop_fragment"]),
            Case(name: "BA behind a Type 2 Routing Header from the HA: punted, dropped", direction: .ingress,
                 input: received(baRH2), verdict: tcShot, output: nil, counters: ["mh_punt"]),
            Case(name: "BA behind Destination Options and a Type 2 Routing Header: punted", direction: .ingress,
                 input: received(baDstOpts), verdict: tcShot, output: nil, counters: ["mh_punt"]),
            Case(name: "BA to the home address at home (no routing header): punted", direction: .ingress,
                 input: received(bindingAck(to: F.homeAddress, homeAddress: nil)), verdict: tcShot, output: nil, counters: ["mh_punt"]),
            Case(name: "BA behind an Authentication Header from the HA: punted", direction: .ingress,
                 input: received(baAH), verdict: tcShot, output: nil, counters: ["mh_punt"]),
            Case(name: "Binding Refresh Request inside the tunnel: punted", direction: .ingress,
                 input: received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, brr)), verdict: tcShot, output: nil,
                 counters: ["mh_punt", "mh_punt_tunneled"]),
            Case(name: "MH from another node: to the kernel untouched", direction: .ingress,
                 input: received(bindingAck(from: IPv6Address("2001:db8:1::66")!)), verdict: tcOK,
                 output: received(bindingAck(from: IPv6Address("2001:db8:1::66")!)), counters: ["in_pass"]),
            Case(name: "ping to the CoA: to the kernel untouched", direction: .ingress, input: received(pingCoA), verdict: tcOK,
                 output: received(pingCoA), counters: ["in_pass"]),
            // A frame shorter than an IPv6 header cannot be test-run (the kernel refuses it with EINVAL);
            // a wrong version takes the same branch here, and `live()` sends a short frame for real.
            Case(name: "IPv6 header with version 4: dropped", direction: .ingress, input: received(notVersion6),
                 verdict: tcShot, output: nil, counters: ["drop_malformed"]),
            Case(name: "extension header longer than the packet: dropped", direction: .ingress, input: received(truncatedExt),
                 verdict: tcShot, output: nil, counters: ["drop_malformed"]),
            Case(name: "nine extension headers: left to the kernel", direction: .ingress, input: received(longChain),
                 verdict: tcOK, output: received(longChain), counters: ["pass_ext_chain"]),
            Case(name: "ARP: passed", direction: .ingress, input: arp, verdict: tcOK, output: arp, counters: ["in_pass"]),

            Case(name: "echo request from the HoA: reverse-tunneled, next hop on this link", direction: .egress,
                 input: sent(fromMN), verdict: tcOK, output: encapsulated(fromMN), counters: ["out_total", "encap", "encap_tx"]),
            Case(name: "NUD probe from the HoA: left alone", direction: .egress, input: sent(nudProbe), verdict: tcOK,
                 output: sent(nudProbe), counters: ["out_pass_nd"]),
            Case(name: "echo request from the CoA: left alone", direction: .egress, input: sent(fromCoA), verdict: tcOK,
                 output: sent(fromCoA), counters: ["out_pass"]),
            Case(name: "our own tunnel packet: left alone", direction: .egress, input: sent(ourTunnel), verdict: tcOK,
                 output: sent(ourTunnel), counters: ["out_pass"]),
            Case(name: "from the HoA to a multicast group: left alone", direction: .egress, input: sent(toGroup), verdict: tcOK,
                 output: sent(toGroup), counters: ["out_pass_scope"]),
            Case(name: "from the HoA to a link-local address: left alone", direction: .egress, input: sent(toLinkLocal),
                 verdict: tcOK, output: sent(toLinkLocal), counters: ["out_pass_scope"]),
            Case(name: "IPv6 header with version 4 from the HoA: left alone", direction: .egress, input: sent(notVersion6Out),
                 verdict: tcOK, output: sent(notVersion6Out), counters: ["out_pass"]),
            Case(name: "ARP: left alone", direction: .egress, input: arp, verdict: tcOK, output: arp, counters: ["out_pass"]),
        ] + encapsulationLimitCases
    }

    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env() }

    func run(_ env: Env, _ d: Direction, _ frame: [UInt8], ifindex: UInt32? = nil) throws -> BPFProgram.TestRun {
        d == .ingress ? try env.ingress(frame, ifindex: ifindex) : try env.egress(frame, ifindex: ifindex)
    }

    @Test(arguments: cases)
    func table(_ c: Case) throws {
        let env = try Self.env.get()
        let before = try c.counters.map { try env.counter($0) }
        let r = try run(env, c.direction, c.input)
        #expect(r.verdict == c.verdict, "verdict")
        if let out = c.output {
            #expect(r.output == out, "output bytes differ:\n got \(hex(r.output))\nwant \(hex(out))")
        }
        for (i, name) in c.counters.enumerated() {
            #expect(try env.counter(name) == before[i] + 1, "counter \(name)")
        }
    }

    @Test("a Binding Acknowledgement with a Type 2 Routing Header reaches the ring byte for byte")
    func puntRecord() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let ba = Self.bindingAck()
        #expect(try env.ingress(Self.received(ba)).verdict == Self.tcShot)
        let punts = try env.drainPunts()
        #expect(punts.count == 1)
        #expect(punts.first?.kind == UInt32(MIP6_PUNT_MH.rawValue))
        #expect(punts.first?.ifindex == env.m0)
        #expect(punts.first?.bytes == ba)
        // The control plane's parser takes it as the BA for the home address.
        let parsed = try IPv6PacketParser.parseMobility(punts.first?.bytes ?? [])
        #expect(parsed.source == F.homeAgent)
    }

    @Test("a Binding Refresh Request inside the tunnel is punted as the inner packet")
    func puntTunneled() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let brr = F.ipv6Header(src: F.homeAgent, dst: F.homeAddress, nextHeader: 135, payloadLength: 8)
            + MobilityHeaderCodec.encode(.bindingRefreshRequest(BindingRefreshRequest()), source: F.homeAgent, destination: F.homeAddress)
        _ = try env.ingress(Self.received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, brr)))
        #expect(try env.drainPunts().map(\.bytes) == [brr])
    }

    @Test("with the tunnel down: tunneled packets dropped, HoA packets untouched, BAs still punted")
    func tunnelDown() throws {
        let env = try Self.env.get()
        try env.maps.tunnelDown()
        defer { try? env.maps.tunnelUp(careOf: F.careOf, ifindex: env.m0, gateway: nil) }
        let dropsBefore = try env.counter("drop_tunnel_down")
        let r1 = try env.ingress(Self.received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, Self.toMN)))
        #expect(r1.verdict == Self.tcShot)
        #expect(try env.counter("drop_tunnel_down") == dropsBefore + 1)
        // A fragment of one too: nothing to reassemble it for.
        let fragment = F.ipv6Header(src: F.homeAgent, dst: F.careOf, nextHeader: 44, payloadLength: 8 + 48)
            + [41, 0, 0, 1, 0, 0, 0, 1] + Self.toMN.prefix(48)
        #expect(try env.ingress(Self.received(fragment)).verdict == Self.tcShot)
        #expect(try env.counter("drop_tunnel_down") == dropsBefore + 2)

        let passBefore = try env.counter("out_pass_tunnel_down")
        let r2 = try env.egress(Self.sent(Self.fromMN))
        #expect(r2.verdict == Self.tcOK && r2.output == Self.sent(Self.fromMN))
        #expect(try env.counter("out_pass_tunnel_down") == passBefore + 1)

        #expect(try env.ingress(Self.received(Self.bindingAck())).verdict == Self.tcShot)
        #expect(try env.drainPunts().count == 1)
    }

    @Test("make-before-break: the tunnel to the care-of address of an outstanding BU is accepted before its BA")
    func pendingCareOf() throws {
        let env = try Self.env.get()
        let newCoA = IPv6Address("2001:db8:f2::100")!
        defer { try? env.maps.setPendingCareOf(nil) }
        let toNew = Self.received(F.tunnel(outerSrc: F.homeAgent, outerDst: newCoA, Self.toMN))
        let notCoABefore = try env.counter("drop_tunnel_not_coa")
        #expect(try env.ingress(toNew).verdict == Self.tcShot, "no BU outstanding: not ours yet")
        #expect(try env.counter("drop_tunnel_not_coa") == notCoABefore + 1)

        try env.maps.setPendingCareOf(newCoA)
        let decapBefore = try env.counter("decap")
        #expect(try env.ingress(toNew).verdict == Self.tcOK, "the HA already switched to the new CoA")
        #expect(try env.ingress(Self.received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, Self.toMN))).verdict == Self.tcOK,
                "the old CoA still works")
        #expect(try env.counter("decap") == decapBefore + 2)

        // The BA arrives: the new CoA becomes current and nothing is pending any more.
        try env.maps.tunnelUp(careOf: newCoA, ifindex: env.m0, gateway: nil)
        defer { try? env.maps.tunnelUp(careOf: F.careOf, ifindex: env.m0, gateway: nil) }
        #expect(try env.maps.readConfig().map { IPv6Address(cAddress: $0.pending_coa) } == .unspecified)
    }

    @Test("with the control plane's next hop: redirected through it on the CoA's interface, the FIB not asked")
    func controlPlaneGateway() throws {
        // The main table may prefer a route through another link (one that just came back up
        // and cannot send yet); the tunnel leaves by the registered link's router.
        let env = try Self.env.get()
        try env.maps.tunnelUp(careOf: F.careOf, ifindex: env.m0, gateway: IPv6Address("2001:db8:f1::1")!)
        defer { try? env.maps.tunnelUp(careOf: F.careOf, ifindex: env.m0, gateway: nil) }
        let (neigh, fib) = (try env.counter("encap_redirect_neigh"), try env.counter("encap_redirect"))
        let r = try env.egress(Self.sent(Self.fromMN, src: Env.m2MAC), ifindex: env.m2)
        #expect(r.verdict == Self.tcRedirect)
        #expect(try env.counter("encap_redirect_neigh") == neigh + 1 && env.counter("encap_redirect") == fib)
        // The gateway goes with the tunnel: nil again means the FIB.
        try env.maps.setGateway(nil)
        #expect(try env.egress(Self.sent(Self.fromMN, src: Env.m2MAC), ifindex: env.m2).verdict == Self.tcRedirect)
        #expect(try env.counter("encap_redirect") == fib + 1)
    }

    @Test("sent on another interface: encapsulated and redirected to the CoA's interface")
    func redirect() throws {
        let env = try Self.env.get()
        let before = try env.counter("encap_redirect")
        let r = try env.egress(Self.sent(Self.fromMN, src: Env.m2MAC), ifindex: env.m2)
        #expect(r.verdict == Self.tcRedirect)
        #expect(r.output == Self.encapsulated(Self.fromMN), "MACs of m0 from the FIB")
        #expect(try env.counter("encap_redirect") == before + 1)
    }

    @Test("next hop to the HA unresolved: encapsulated, bpf_redirect_neigh")
    func noNeighbour() throws {
        let env = try Self.env.get()
        try env.maps.writeConfig(homeAddress: F.homeAddress, homeAgent: Env.haNoNeigh, careOf: F.careOf, careOfIfindex: env.m0, tunnelUp: true)
        defer { try? env.maps.writeConfig(homeAddress: F.homeAddress, homeAgent: F.homeAgent, careOf: F.careOf, careOfIfindex: env.m0, tunnelUp: true) }
        let before = try env.counter("encap_redirect_neigh")
        let r = try env.egress(Self.sent(Self.fromMN))
        #expect(r.verdict == Self.tcRedirect)
        // MACs stay as they were: the kernel writes them once it knows the neighbour.
        #expect(r.output == Self.encapsulated(Self.fromMN, ha: Env.haNoNeigh, dstMAC: F.routerMAC, srcMAC: Env.mnMAC))
        #expect(try env.counter("encap_redirect_neigh") == before + 1)
    }

    @Test("forwarding off on the CoA interface (a host): bpf_fib_lookup refuses, bpf_redirect_neigh instead")
    func forwardingOff() throws {
        let env = try Self.env.get()
        try env.ns.sysctl("net.ipv6.conf.m0.forwarding=0")
        defer { try? env.ns.sysctl("net.ipv6.conf.m0.forwarding=1") }
        let before = try env.counter("encap_redirect_neigh")
        let frame = Self.sent(Self.fromMN, src: [0x02, 0, 0, 0, 0, 0x77])
        let r = try env.egress(frame)
        #expect(r.verdict == Self.tcRedirect)
        #expect(r.output == Self.encapsulated(Self.fromMN, srcMAC: [0x02, 0, 0, 0, 0, 0x77]), "MACs left for the kernel")
        #expect(try env.counter("encap_redirect_neigh") == before + 1)
    }

    @Test("no route to the HA: dropped after encapsulation")
    func noRoute() throws {
        let env = try Self.env.get()
        try env.maps.writeConfig(homeAddress: F.homeAddress, homeAgent: Env.haUnreachable, careOf: F.careOf, careOfIfindex: env.m0, tunnelUp: true)
        defer { try? env.maps.writeConfig(homeAddress: F.homeAddress, homeAgent: F.homeAgent, careOf: F.careOf, careOfIfindex: env.m0, tunnelUp: true) }
        let before = try env.counter("drop_encap_no_route")
        #expect(try env.egress(Self.sent(Self.fromMN)).verdict == Self.tcShot)
        #expect(try env.counter("drop_encap_no_route") == before + 1)
    }

    @Test("a packet from the HoA too big for the tunnel becomes Packet Too Big to the local stack")
    func packetTooBig() throws {
        let env = try Self.env.get()
        let big = F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64, dataSize: 1500 - 40 - 8) // fills m0's MTU
        let before = try env.counter("encap_too_big")
        let r = try env.egress(Self.sent(big))
        #expect(r.verdict == Self.tcRedirect, "redirected to m0's ingress")
        #expect(Array(r.output.prefix(12)) == Env.mnMAC + F.routerMAC, "addressed to our own MAC")
        let ip = Array(r.output.dropFirst(14))
        #expect(ip.count == 1280, "the ICMPv6 error fills the minimum MTU")
        #expect(Array(ip[0..<8]) == [0x60, 0, 0, 0, 0x04, 0xD8, 58, 64])
        #expect(Array(ip[8..<24]) == F.careOf.bytes)
        #expect(Array(ip[24..<40]) == F.homeAddress.bytes)
        #expect(ip[40] == 2 && ip[41] == 0)
        let mtu = UInt32(ip[44]) << 24 | UInt32(ip[45]) << 16 | UInt32(ip[46]) << 8 | UInt32(ip[47])
        #expect(mtu == 1460, "tunnel MTU = link MTU - 40")
        #expect(Array(ip[48...]) == Array(big.prefix(1232)), "quotes the start of the offending packet")
        #expect(InternetChecksum.upperLayer(source: F.careOf, destination: F.homeAddress, nextHeader: 58,
                                            payload: Array(ip[40...])) == 0, "checksum verifies to zero")
        #expect(try env.counter("encap_too_big") == before + 1)

        // One byte less than the tunnel MTU allows: tunneled.
        let fits = F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64, dataSize: 1460 - 40 - 8)
        let r2 = try env.egress(Self.sent(fits))
        #expect(r2.verdict == Self.tcOK && r2.output == Self.encapsulated(fits))
    }

    @Test("map key and value sizes match MemoryLayout, every counter has a name")
    func layout() throws {
        let env = try Self.env.get()
        let expected: [(String, Int, Int)] = [
            (MIP6_MAP_MN_CONFIG, 4, MemoryLayout<mip6_mn_config>.size),
            (MIP6_MAP_MN_COUNTERS, 4, 8),
        ]
        for (name, k, v) in expected {
            let s = try env.object.mapSizes(name)
            #expect(s.key == k && s.value == v, "\(name): libbpf \(s), Swift \(k)/\(v)")
        }
        #expect(MemoryLayout<mip6_mn_config>.size == 88)
        #expect(Set(env.object.mapNames) == Set(MobileNodeMaps.pinnedNames))
        let names = (0..<UInt32(MIP6_MN_CNT_MAX.rawValue)).map { cmip6_mn_counter_name($0).map { String(cString: $0) } ?? "" }
        #expect(!names.contains(""))
        #expect(Set(names).count == names.count, "counter names are unique")
        #expect(cmip6_mn_counter_name(UInt32(MIP6_MN_CNT_MAX.rawValue)) == nil)
    }

    @Test("TC attachment: clsact made if absent, removed only if we made it")
    func attachDetach() throws {
        let env = try Self.env.get()
        let ingress = try env.object.program(MIP6_PROG_MN_INGRESS), egress = try env.object.program(MIP6_PROG_MN_EGRESS)
        let (m2, ns) = (env.m2, env.ns.name)
        func qdiscs() throws -> String { try sh("tc -n \(ns) qdisc show dev m2") }

        // m2 has no clsact: the first attachment makes one, the last one removes it.
        var a: TCAttachment? = try env.ns.run { try TCAttachment.mobileNode(ingress, ifindex: m2, direction: .ingress) }
        var b: TCAttachment? = try env.ns.run { try TCAttachment.mobileNode(egress, ifindex: m2, direction: .egress) }
        #expect(try qdiscs().contains("clsact"))
        #expect(try env.ns.run { try TCAttachment.query(ifindex: m2, direction: .ingress, handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY) } == a?.programID)
        #expect(try env.ns.run { try TCAttachment.query(ifindex: m2, direction: .egress, handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY) } == b?.programID)
        #expect(try sh("tc -n \(ns) filter show dev m2 egress").contains("direct-action"))
        try a?.detach() // from this thread, outside the namespace: the attachment goes back into it
        a = nil
        #expect(try env.ns.run { try TCAttachment.query(ifindex: m2, direction: .ingress, handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY) } == nil)
        #expect(try qdiscs().contains("clsact"), "still used by the egress filter")
        b = nil // deinit detaches
        #expect(try !qdiscs().contains("clsact"))
        _ = b

        // A clsact someone else made stays, with their filters.
        try sh("tc -n \(ns) qdisc add dev m2 clsact")
        try sh("tc -n \(ns) filter add dev m2 ingress pref 9 protocol all u32 match u32 0 0 flowid 1:1")
        var c: TCAttachment? = try env.ns.run { try TCAttachment.mobileNode(ingress, ifindex: m2, direction: .ingress) }
        #expect(c?.isAttached == true)
        c = nil
        _ = c
        #expect(try qdiscs().contains("clsact"))
        #expect(try sh("tc -n \(ns) filter show dev m2 ingress").contains("u32"))
        try sh("tc -n \(ns) qdisc del dev m2 clsact")
    }

    @Test("TC slot: the mobile node keeps off `tc ... bpf da`'s default slot and never replaces a filter it did not install")
    func tcSlotIsOurs() throws {
        let env = try Self.env.get()
        let ingress = try env.object.program(MIP6_PROG_MN_INGRESS)
        let (m2, ns) = (env.m2, env.ns.name)
        try sh("tc -n \(ns) qdisc add dev m2 clsact")
        defer { _ = try? sh("tc -n \(ns) qdisc del dev m2 clsact") }
        // Someone's filter at the common default priority 1: ours goes beside it.
        try sh("tc -n \(ns) filter add dev m2 ingress pref 1 protocol all u32 match u32 0 0 flowid 1:1")
        var a: TCAttachment? = try env.ns.run { try TCAttachment.mobileNode(ingress, ifindex: m2, direction: .ingress) }
        #expect(try sh("tc -n \(ns) filter show dev m2 ingress").contains("u32"), "the other filter is still there")
        #expect(try env.ns.run { try TCAttachment.query(ifindex: m2, direction: .ingress, handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY) } == a?.programID)
        // A stale filter of ours in our slot (a killed daemon) is replaced.
        a?.keep()
        a = nil
        let b: TCAttachment = try env.ns.run { try TCAttachment.mobileNode(ingress, ifindex: m2, direction: .ingress) }
        #expect(b.isAttached)
        try b.detach()
        // Someone else's BPF program in our very slot (here the home agent's, standing in for
        // any program that is not the mobile node's): refused with EEXIST, and it stays.
        let other = try BPFObject(.homeAgent)
        try other.setBindingCapacity(16)
        try other.load()
        let foreign: TCAttachment = try env.ns.run {
            try TCAttachment(program: other.program(MIP6_PROG_HA_TC), ifindex: m2, direction: .ingress,
                             handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY, mayReplace: { _ in false })
        }
        defer { try? foreign.detach() }
        let refused = #expect(throws: SystemError.self) { try env.ns.run { try TCAttachment.mobileNode(ingress, ifindex: m2, direction: .ingress) } }
        #expect(refused?.errno.rawValue == EEXIST)
        #expect(try env.ns.run { try TCAttachment.query(ifindex: m2, direction: .ingress, handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY) }
                == foreign.programID, "the other program still sits in the slot")
    }

    @Test("live on m0: a tunneled ping to the HoA is answered through the reverse tunnel; a short frame is dropped")
    func live() throws {
        let env = try Self.env.get()
        let (ns, m0, m1) = (env.ns, env.m0, try env.ns.ifindex("m1"))
        let ingress = try env.object.program(MIP6_PROG_MN_INGRESS), egress = try env.object.program(MIP6_PROG_MN_EGRESS)
        try ns.ip("-6 addr add 2001:db8:1::100/128 dev lo nodad")
        defer { try? ns.ip("-6 addr del 2001:db8:1::100/128 dev lo") }
        let attachments = try ns.run {
            [try TCAttachment.mobileNode(ingress, ifindex: m0, direction: .ingress),
             try TCAttachment.mobileNode(egress, ifindex: m0, direction: .egress)]
        }
        defer { for a in attachments { try? a.detach() } }
        let names = ["decap", "encap", "encap_tx", "drop_malformed"]
        let before = try names.map { try env.counter($0) }

        let ping = F.echoRequest(src: F.correspondent, dst: F.homeAddress, identifier: 0x4D4E, sequence: 9)
        let short = Array(Self.received(ping).prefix(14 + 20))
        let reply: [UInt8]? = try ns.run {
            let tap = try FrameTap(ifindex: m1)
            try tap.send(short)
            try tap.send(Self.received(F.tunnel(outerSrc: F.homeAgent, outerDst: F.careOf, ping)))
            // The reply leaves m0 reverse-tunneled: outer CoA -> HA, next header 41.
            return try tap.receive(within: 2.0) { f in
                f.count >= 14 + 80 && f[12] == 0x86 && f[13] == 0xDD && f[14 + 6] == 41 && Array(f[22..<38]) == F.careOf.bytes
            }
        }
        let frame = try #require(reply, "no reverse-tunneled reply on m1")
        #expect(Array(frame[0..<12]) == F.routerMAC + Env.mnMAC, "MACs from the FIB")
        let outer = Array(frame[14..<54]), inner = Array(frame[54...])
        #expect(outer[7] == 64 && Array(outer[24..<40]) == F.homeAgent.bytes)
        #expect(Int(outer[4]) << 8 | Int(outer[5]) == inner.count)
        #expect(Array(inner[8..<24]) == F.homeAddress.bytes && Array(inner[24..<40]) == F.correspondent.bytes)
        #expect(inner[6] == 58 && inner[40] == 129, "an echo reply")
        #expect(Array(inner[44..<48]) == [0x4D, 0x4E, 0, 9], "to our identifier and sequence")
        let after = try names.map { try env.counter($0) }
        for (i, n) in names.enumerated() {
            #expect(after[i] >= before[i] + 1, "counter \(n)")
        }
    }
}
