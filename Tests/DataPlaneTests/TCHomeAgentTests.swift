import CMip6
import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6Daemon
import Mip6TestSupport

/// The home agent's TC program (`mip6_ha_tc`, sched_cls for clsact ingress) run with
/// BPF_PROG_TEST_RUN on skbs. It is the XDP program's body on another context, so the XDP
/// table runs through it unchanged, verdicts translated (XDP_TX becomes a redirect to the
/// arrival device's egress); then what only skbs have: GSO.
/// Needs root (CI runs as root); skipped, with this reason printed, otherwise.
@Suite("TC home-agent program (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct TCHomeAgentTests {
    typealias F = PacketFixtures
    typealias Env = XDPFixtureEnvironment
    typealias XDP = XDPProgramTests

    /// TC_ACT_UNSPEC (-1): passed on to the next filter, then the stack (bpf/lib/ctx.h m6_act_pass).
    static let tcOK = UInt32(bitPattern: -1), tcShot: UInt32 = 2, tcRedirect: UInt32 = 7

    /// XDP verdict -> TC verdict: DROP -> SHOT, PASS -> OK, TX and REDIRECT -> TC_ACT_REDIRECT.
    static func tcVerdict(_ xdp: UInt32) -> UInt32 {
        switch xdp {
        case XDP.xdpDrop: return tcShot
        case XDP.xdpPass: return tcOK
        default: return tcRedirect
        }
    }

    /// The XDP table, as TC cases. An skb test run refuses a frame shorter than an IPv6
    /// header (EINVAL), so the truncated-header row is replaced by a version-4 header, which
    /// takes the same branch.
    static var cases: [XDP.Case] {
        var notVersion6 = F.ethernet(F.echoRequest())
        notVersion6[14] = 0x40
        return XDP.cases.filter { $0.input.count >= 14 + 40 }.map {
            XDP.Case(name: $0.name, input: $0.input, verdict: tcVerdict($0.verdict), output: $0.output, counters: $0.counters,
                     flags: $0.flags, unchanged: $0.unchanged)
        } + [XDP.Case(name: "IPv6 header with version 4: dropped", input: notVersion6, verdict: tcShot, output: nil,
                      counters: ["drop_malformed"])]
    }

    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env(tag: "tcha") }

    @Test("the XDP table through the TC program", arguments: cases)
    func table(_ c: XDP.Case) throws {
        let env = try Self.env.get()
        try XDP.check(c, env: env) { frame in
            let r = try env.runSKB(frame)
            return (r.verdict, r.output)
        }
    }

    @Test("encapsulation: outer header HA -> CoA, next header 41, inner hop limit - 1, MACs of the next hop")
    func encapsulation() throws {
        let env = try Self.env.get()
        let inner = F.echoRequest(trafficClass: 0x2E, flowLabel: 0xABCDE)
        let r = try env.runSKB(F.ethernet(inner))
        #expect(r.verdict == Self.tcRedirect)
        let o = r.output
        #expect(o.count == 14 + 40 + inner.count)
        #expect(Array(o[0..<12]) == F.routerMAC + F.haMAC, "MACs from the next hop")
        #expect(Array(o[14..<18]) == Array(inner[0..<4]), "version, traffic class, flow label copied out")
        #expect(Int(o[18]) << 8 | Int(o[19]) == inner.count, "outer payload length")
        #expect(o[20] == 41 && o[21] == 64, "next header 41, tunnel hop limit")
        #expect(Array(o[22..<38]) == F.homeAgent.bytes && Array(o[38..<54]) == F.careOf.bytes)
        var hopped = inner
        hopped[7] -= 1
        #expect(Array(o[54...]) == hopped, "inner packet intact but for its hop limit")
    }

    @Test("encapsulation and decapsulation count per binding")
    func perBindingCounters() throws {
        let env = try Self.env.get()
        let before = try env.maps.stats(for: F.homeAddress)
        let echo = F.ethernet(F.echoRequest())
        _ = try env.runSKB(echo)
        _ = try env.runSKB(F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent,
                                               F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64))))
        let after = try env.maps.stats(for: F.homeAddress)
        #expect(after.to_mn_packets == before.to_mn_packets + 1)
        #expect(after.to_mn_bytes == before.to_mn_bytes + UInt64(echo.count - 14))
        #expect(after.from_mn_packets == before.from_mn_packets + 1)
    }

    @Test("a Binding Update reaches the ring buffer byte for byte")
    func puntRecord() throws {
        let env = try Self.env.get()
        let bu = PacketBuilder.bindingUpdate(BindingUpdate(sequence: 9, flags: [.ack, .home], lifetime: 10, options: []),
                                             careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress)
        try env.ring.consume()
        env.punted.removeAll()
        #expect(try env.runSKB(F.ethernet(bu)).verdict == Self.tcShot)
        try env.ring.consume()
        #expect(env.punted.count == 1)
        #expect(env.punted.first?.kind == UInt32(MIP6_PUNT_MH.rawValue))
        #expect(env.punted.first?.bytes == bu)
    }

    @Test("signaling punts keep the XDP program's rate limits")
    func puntRateLimit() throws {
        let env = try Self.env.get()
        defer { try? env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                                          limits: .unlimited) }
        try env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                                 limits: PuntLimits(rate: 100_000, burst: 100_000, perSourceRate: 1, perSourceBurst: 3))
        let bu = F.ethernet(PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                                        careOf: IPv6Address("2001:db8:f8::1")!, homeAgent: F.homeAgent,
                                                        homeAddress: F.homeAddress))
        let (limited, punts) = (try env.counter("drop_punt_src_rate_limited"), try env.counter("mh_punt"))
        for _ in 0..<6 { #expect(try env.runSKB(bu).verdict == Self.tcShot) }
        #expect(try env.counter("mh_punt") - punts == 3)
        #expect(try env.counter("drop_punt_src_rate_limited") - limited == 3)
    }

    @Test("an inner packet too big for the tunnel gets Packet Too Big, redirected back out")
    func packetTooBig() throws {
        let env = try Self.env.get()
        let big = F.echoRequest(dataSize: 1500 - 40 - 8)
        let before = try env.counter("encap_too_big")
        let r = try env.runSKB(F.ethernet(big))
        #expect(r.verdict == Self.tcRedirect)
        try Self.checkTooBig(r.output, quoting: big, mtu: 1460)
        #expect(try env.counter("encap_too_big") == before + 1)
    }

    /// An ICMPv6 Packet Too Big from the home agent to the correspondent, bounced to its router.
    static func checkTooBig(_ frame: [UInt8], quoting original: [UInt8], mtu expected: UInt32) throws {
        #expect(Array(frame.prefix(12)) == F.routerMAC + F.haMAC, "bounced to the sender's neighbour")
        let ip = Array(frame.dropFirst(14))
        #expect(ip.count == 1280, "ICMPv6 error fills the minimum MTU")
        guard ip.count == 1280 else { return }
        #expect(Array(ip[8..<24]) == F.homeAgent.bytes)
        #expect(Array(ip[24..<40]) == F.correspondent.bytes)
        #expect(ip[6] == 58 && ip[40] == 2 && ip[41] == 0)
        let mtu = UInt32(ip[44]) << 24 | UInt32(ip[45]) << 16 | UInt32(ip[46]) << 8 | UInt32(ip[47])
        #expect(mtu == expected, "tunnel MTU")
        #expect(Array(ip[48...]) == Array(original.prefix(1232)), "quotes the start of the offending packet")
        #expect(InternetChecksum.upperLayer(source: F.homeAgent, destination: F.correspondent, nextHeader: 58,
                                            payload: Array(ip[40...])) == 0, "checksum verifies to zero")
    }

    @Test("the next-hop cache serves the TC program too")
    func nextHopCache() throws {
        let env = try Self.env.get()
        let echo = F.ethernet(F.echoRequest())
        try env.maps.bumpNextHopGeneration()
        let (hit0, miss0) = (try env.counter("nexthop_cache_hit"), try env.counter("nexthop_cache_miss"))
        _ = try env.runSKB(echo)
        #expect(try env.counter("nexthop_cache_miss") == miss0 + 1)
        let cached = try env.runSKB(echo)
        #expect(try env.counter("nexthop_cache_hit") == hit0 + 1)
        #expect(cached.output == XDP.encapsulated(F.echoRequest(), to: F.careOf))
    }

    // MARK: - GSO
    //
    // BPF_PROG_TEST_RUN takes gso_size and gso_segs from the __sk_buff context (Linux 5.11+)
    // but not gso_type, so a test-run skb is GSO of no known type: bpf_skb_adjust_room
    // refuses to encapsulate or decapsulate it (-ENOTSUPP, the answer it gives a GSO type it
    // cannot re-segment). What can be tested here is the program's side: the MTU check uses
    // one segment, not the whole skb; segments that do not fit get Packet Too Big; and the
    // refusal is counted. That the kernel really lowers gso_size by 40 and TSO/GSO emit
    // fitting segments needs a live TCP flow (the testbed's iperf3).

    /// A TCP "superpacket" of `segments` segments of `mss` bytes, as GRO/TSO would hand it over.
    static func tcpSuperpacket(mss: Int, segments: Int) -> [UInt8] {
        F.ethernet(F.tcpSegment(dataSize: mss * segments))
    }

    @Test("GSO TCP longer than the MTU but with fitting segments: no Packet Too Big; the test skb's missing gso_type is refused and counted")
    func gsoTCPFits() throws {
        let env = try Self.env.get()
        let frame = Self.tcpSuperpacket(mss: 1000, segments: 3) // 3074 bytes, segments of 1060
        let (tooBig, gso) = (try env.counter("encap_too_big"), try env.counter("drop_encap_gso"))
        // The same frame without GSO does not fit: Packet Too Big.
        let plain = try env.runSKB(frame)
        #expect(plain.verdict == Self.tcRedirect && plain.output.count == 14 + 1280)
        #expect(try env.counter("encap_too_big") == tooBig + 1)
        let r = try env.runSKB(frame, gsoSize: 1000, gsoSegs: 3)
        #expect(r.verdict == Self.tcShot)
        #expect(try env.counter("encap_too_big") == tooBig + 1, "a GSO skb is checked one segment at a time")
        #expect(try env.counter("drop_encap_gso") == gso + 1, "bpf_skb_adjust_room refused the typeless GSO skb")
    }

    @Test("GSO TCP whose segments already fill the link: the segment stays that long after encapsulation, so it fits")
    func gsoTCPFullSized() throws {
        let env = try Self.env.get()
        // 40 + 20 + 1440 = 1500: encapsulated with gso_size lowered to 1400, every segment is 1500 again.
        let frame = Self.tcpSuperpacket(mss: 1440, segments: 2)
        let (tooBig, gso) = (try env.counter("encap_too_big"), try env.counter("drop_encap_gso"))
        let r = try env.runSKB(frame, gsoSize: 1440, gsoSegs: 2)
        #expect(r.verdict == Self.tcShot)
        #expect(try env.counter("encap_too_big") == tooBig)
        #expect(try env.counter("drop_encap_gso") == gso + 1)
    }

    @Test("GSO TCP whose segments exceed the link MTU: Packet Too Big, GSO state reset")
    func gsoTCPTooBig() throws {
        let env = try Self.env.get()
        let frame = Self.tcpSuperpacket(mss: 1460, segments: 2) // segments of 1520 > 1500
        let before = try env.counter("encap_too_big")
        let r = try env.runSKB(frame, gsoSize: 1460, gsoSegs: 2)
        #expect(r.verdict == Self.tcRedirect)
        // bpf_skb_change_tail reset GSO (gso_segs 0); had it not, the next bpf_skb_adjust_room
        // would have refused the typeless GSO skb and there would be no Packet Too Big.
        #expect(r.gsoSegs == 0, "the Packet Too Big is one plain packet")
        try Self.checkTooBig(r.output, quoting: Array(frame.dropFirst(14)), mtu: 1460)
        #expect(try env.counter("encap_too_big") == before + 1)
    }

    @Test("GSO UDP: datagrams keep their size (FIXED_GSO), so one that no longer fits with 40 more gets Packet Too Big")
    func gsoUDP() throws {
        let env = try Self.env.get()
        let (tooBig, gso) = (try env.counter("encap_too_big"), try env.counter("drop_encap_gso"))
        // 40 + 8 + 1000 + 40 fits 1500: on to bpf_skb_adjust_room, which refuses the typeless skb.
        let fits = F.ethernet(F.udpDatagram(dataSize: 1000 * 3))
        #expect(try env.runSKB(fits, gsoSize: 1000, gsoSegs: 3).verdict == Self.tcShot)
        #expect(try env.counter("drop_encap_gso") == gso + 1)
        #expect(try env.counter("encap_too_big") == tooBig)
        // 40 + 8 + 1440 + 40 = 1528 does not.
        let big = F.ethernet(F.udpDatagram(dataSize: 1440 * 2))
        let r = try env.runSKB(big, gsoSize: 1440, gsoSegs: 2)
        #expect(r.verdict == Self.tcRedirect)
        try Self.checkTooBig(r.output, quoting: Array(big.dropFirst(14)), mtu: 1460)
        #expect(try env.counter("encap_too_big") == tooBig + 1)
    }

    @Test("GSO of another protocol (an ICMPv6 skb marked GSO): counted and dropped, never sent on")
    func gsoOther() throws {
        let env = try Self.env.get()
        let before = try env.counter("drop_encap_gso")
        let r = try env.runSKB(F.ethernet(F.echoRequest(dataSize: 2000)), gsoSize: 1000, gsoSegs: 2)
        #expect(r.verdict == Self.tcShot)
        #expect(try env.counter("drop_encap_gso") == before + 1)
    }

    @Test("GSO reverse tunnel: checked per segment; the test skb's missing gso_type makes bpf_skb_adjust_room refuse it, counted")
    func gsoDecap() throws {
        let env = try Self.env.get()
        let inner = F.tcpSegment(src: F.homeAddress, dst: F.correspondent, hopLimit: 64, dataSize: 1000 * 2)
        let frame = F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent, inner))
        let before = try env.counter("drop_adjust_fail")
        let r = try env.runSKB(frame, gsoSize: 1000, gsoSegs: 2)
        #expect(r.verdict == Self.tcShot)
        #expect(try env.counter("drop_adjust_fail") == before + 1)
        // Without GSO the same 2080-byte inner packet is too big for the 1500-byte link: decapsulated
        // and left to the kernel, which answers Packet Too Big itself.
        let plain = try env.runSKB(frame)
        #expect(plain.verdict == Self.tcOK)
        #expect(plain.output == F.ethernet(inner))
    }

    @Test("TC, a route MTU of 1300 (RFC 2473 §7.1(b)): a 1280-byte skb is punted for a fragmented tunnel packet; a GSO skb of 1280 bytes is no packet to punt: counted and dropped")
    func fragmentPunt() throws {
        let env = try Self.env.get()
        try XDP.resetFragmentBucket(env)
        try env.ring.consume()
        env.punted.removeAll()
        try XDP.withRouteMTU(env, 1300) {
            let inner = F.udpDatagram(dataSize: 1280 - 48)
            let punts = try env.counter("encap_frag_punt")
            #expect(try env.runSKB(F.ethernet(inner)).verdict == Self.tcShot)
            #expect(try env.counter("encap_frag_punt") == punts + 1)
            try env.ring.consume()
            #expect(env.punted.last?.kind == UInt32(MIP6_PUNT_FRAGMENT.rawValue) && env.punted.last?.bytes == inner)
            // GRO's merge of two UDP datagrams (1268 + 12 bytes on the wire): its bytes are not
            // what goes out, and its checksum may be left to offload.
            let drops = try env.counter("drop_encap_tunnel_mtu")
            #expect(try env.runSKB(F.ethernet(inner), gsoSize: 1220, gsoSegs: 2).verdict == Self.tcShot)
            #expect(try env.counter("drop_encap_tunnel_mtu") == drops + 1 && env.counter("encap_frag_punt") == punts + 1)
        }
        try env.ring.consume()
        env.punted.removeAll()
    }

    @Test("with the config disabled every skb is passed untouched")
    func disabled() throws {
        let env = try Self.env.get()
        try env.maps.setConfigFlag(UInt32(MIP6_CFG_ENABLED), false)
        defer { try? env.maps.setConfigFlag(UInt32(MIP6_CFG_ENABLED), true) }
        let echo = F.ethernet(F.echoRequest())
        let r = try env.runSKB(echo)
        #expect(r.verdict == Self.tcOK && r.output == echo)
    }
}
