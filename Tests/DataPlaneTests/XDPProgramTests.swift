import CMip6
import ControlPlane
import Glibc
import Logging
import Testing
@testable import DataPlane
import Mip6Daemon
import Mip6TestSupport

/// The home-agent XDP program run with BPF_PROG_TEST_RUN on crafted frames, as a table of
/// {case, input, expected verdict, expected output bytes, counters that must move}.
/// Needs root (CI runs as root); skipped, with this reason printed, otherwise.
@Suite("XDP home-agent program (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct XDPProgramTests {
    typealias F = PacketFixtures
    static let t0MAC: [UInt8] = F.haMAC
    static let (coaNoNeigh, coaRedirect, coaNoRoute) = (Env.coaNoNeigh, Env.coaRedirect, Env.coaNoRoute)
    static let (hoaNoNeigh, hoaRedirect, hoaNoRoute) = (Env.hoaNoNeigh, Env.hoaRedirect, Env.hoaNoRoute)

    typealias Env = XDPFixtureEnvironment

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let input: [UInt8]
        let verdict: UInt32
        /// Exact output frame; nil when only the verdict and counters matter.
        let output: [UInt8]?
        let counters: [String]
        /// Config flags set for this run only (MIP6_CFG_FORWARDER).
        var flags: UInt32 = 0
        /// Counters that must not move (a forwarder punts nothing).
        var unchanged: [String] = []
        var testDescription: String { name }
    }

    static let forwarder = UInt32(MIP6_CFG_FORWARDER)

    static let xdpDrop: UInt32 = 1, xdpPass: UInt32 = 2, xdpTX: UInt32 = 3, xdpRedirect: UInt32 = 4

    /// `inner` as the home agent tunnels it to `coa`; with `limit`, behind a Destination Options
    /// header holding a Tunnel Encapsulation Limit of that value and PadN (RFC 2473 §4.1.1, §5.1).
    static func encapsulated(_ inner: [UInt8], to coa: IPv6Address, limit: UInt8? = nil, dstMAC: [UInt8] = F.routerMAC,
                             srcMAC: [UInt8] = t0MAC) -> [UInt8] {
        var inner = inner
        inner[7] -= 1 // the inner hop limit is decremented (RFC 2473 §3.1)
        var outer = F.tunnel(outerSrc: F.homeAgent, outerDst: coa, hopLimit: 64, inner)
        if let limit {
            outer = F.ipv6Header(src: F.homeAgent, dst: coa, nextHeader: 60, payloadLength: inner.count + 8, hopLimit: 64)
                + [41, 0, 4, 1, limit, 1, 1, 0] + inner
        }
        outer[0...3] = inner[0...3] // version, traffic class and flow label copied out
        return F.ethernet(dst: dstMAC, src: srcMAC, outer)
    }

    static var cases: [Case] {
        let echo = F.echoRequest(trafficClass: 0x2E, flowLabel: 0xABCDE)
        let fromMN = F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64)
        var decapped = fromMN
        decapped[7] -= 1
        let bu = PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                             careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress)
        // Nine Destination Options headers in front of an MH: past MIP6_MAX_EXT_HEADERS.
        var chain: [UInt8] = []
        for _ in 0..<9 { chain += [60, 0, 1, 4, 0, 0, 0, 0] }
        chain[chain.count - 8] = 135
        let mhAfterChain = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 60, payloadLength: chain.count + 8)
            + chain + [59, 0, 5, 0, 0, 0, 0, 0]
        let fragMH = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 44, payloadLength: 16)
            + [135, 0, 0, 1, 0, 0, 0, 1] + [59, 1, 5, 0, 0, 0, 0, 0]
        let truncatedExt = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 60, payloadLength: 8)
            + [135, 1, 1, 4, 0, 0, 0, 0] // claims 16 bytes, has 8
        // An Authentication Header (RFC 4302: its length counts 4-octet units, minus 2) in front of an MH.
        let ah: [UInt8] = [135, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0] // 16 bytes: SPI, sequence, 4-byte ICV
        let mhAfterAH = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 51, payloadLength: ah.count + 8)
            + ah + [59, 0, 5, 0, 0, 0, 0, 0]
        let truncatedAH = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 51, payloadLength: 12)
            + [135, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] // claims 24 bytes, has 12
        var truncatedInner = F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent, fromMN)
        truncatedInner.removeLast(20)
        truncatedInner[5] -= 20
        let nsFrame = F.neighborSolicitationFrame()
        let naExpected = F.ethernet(dst: F.routerMAC, src: t0MAC, PacketBuilder.neighborAdvertisement(
            target: F.homeAddress, source: F.homeAddress, destination: IPv6Address("2001:db8:1::1")!,
            flags: (router: false, solicited: true, override: true), targetLinkLayer: t0MAC))
        var nsBadHop = nsFrame
        nsBadHop[14 + 7] = 254
        let dadProbe = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 1, 0], PacketBuilder.neighborSolicitation(
            target: F.homeAddress, source: .unspecified, destination: F.homeAddress.solicitedNodeMulticast, sourceLinkLayer: nil))
        let dadDefence = F.ethernet(dst: [0x33, 0x33, 0, 0, 0, 1], src: t0MAC, PacketBuilder.neighborAdvertisement(
            target: F.homeAddress, source: F.homeAddress, destination: IPv6Address("ff02::1")!,
            flags: (router: false, solicited: false, override: true), targetLinkLayer: t0MAC))
        let nsUnknown = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 0, 0x77], PacketBuilder.neighborSolicitation(
            target: IPv6Address("2001:db8:1::77")!, source: IPv6Address("2001:db8:1::1")!,
            destination: IPv6Address("2001:db8:1::77")!.solicitedNodeMulticast, sourceLinkLayer: F.routerMAC))
        let arp = F.ethernet(dst: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], type: 0x0806, [UInt8](repeating: 0, count: 28))
        let toExpired = F.ethernet(F.echoRequest(dst: Env.hoaExpired))
        let fromExpired = F.ethernet(F.tunnel(outerSrc: Env.coaExpired, outerDst: F.homeAgent,
                                              F.echoRequest(src: Env.hoaExpired, dst: F.correspondent, hopLimit: 64)))
        let nsExpired = F.ethernet(dst: [0x33, 0x33, 0xff, 0, 1, 5], PacketBuilder.neighborSolicitation(
            target: Env.hoaExpired, source: IPv6Address("2001:db8:1::1")!,
            destination: Env.hoaExpired.solicitedNodeMulticast, sourceLinkLayer: F.routerMAC))

        return [
            Case(name: "encapsulation, next hop on the same link: XDP_TX", input: F.ethernet(echo), verdict: xdpTX,
                 output: encapsulated(echo, to: F.careOf), counters: ["encap", "encap_tx"]),
            Case(name: "encapsulation, next hop not resolved: to the kernel, encapsulated", input: F.ethernet(F.echoRequest(dst: hoaNoNeigh)),
                 verdict: xdpPass, output: encapsulated(F.echoRequest(dst: hoaNoNeigh), to: coaNoNeigh, dstMAC: F.haMAC, srcMAC: F.routerMAC),
                 counters: ["encap", "encap_pass_no_neigh"]),
            Case(name: "encapsulation, next hop on another interface: redirect", input: F.ethernet(F.echoRequest(dst: hoaRedirect)),
                 verdict: xdpRedirect, output: nil, counters: ["encap", "encap_redirect"]),
            Case(name: "encapsulation, no route to the care-of address: dropped", input: F.ethernet(F.echoRequest(dst: hoaNoRoute)),
                 verdict: xdpDrop, output: F.ethernet(F.echoRequest(dst: hoaNoRoute)), counters: ["encap_fib_fail"]),
            Case(name: "hop limit 1 to a home address: the kernel sends Time Exceeded", input: F.ethernet(F.echoRequest(hopLimit: 1)),
                 verdict: xdpPass, output: F.ethernet(F.echoRequest(hopLimit: 1)), counters: ["encap_pass_hoplimit"]),
            Case(name: "reverse tunnel from the registered CoA: decapsulated and forwarded",
                 input: F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent, fromMN)), verdict: xdpTX,
                 output: F.ethernet(dst: F.routerMAC, src: t0MAC, decapped), counters: ["decap", "decap_tx"]),
            Case(name: "reverse tunnel with a spoofed outer source: dropped",
                 input: F.ethernet(F.tunnel(outerSrc: IPv6Address("2001:db8:f1::66")!, outerDst: F.homeAgent, fromMN)),
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_spoofed"]),
            Case(name: "tunnel with an inner source that has no binding: dropped",
                 input: F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent,
                                            F.echoRequest(src: IPv6Address("2001:db8:1::999")!, dst: F.correspondent))),
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_no_binding"]),
            Case(name: "tunnel whose inner packet is truncated: dropped", input: F.ethernet(truncatedInner),
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "NS for a home address: proxy NA with our MAC", input: nsFrame, verdict: xdpTX, output: naExpected,
                 counters: ["na_proxy"]),
            Case(name: "NS with hop limit 254: invalid, dropped", input: nsBadHop, verdict: xdpDrop, output: nil,
                 counters: ["drop_ns_invalid"]),
            Case(name: "DAD probe for a home address: defended to all-nodes", input: dadProbe, verdict: xdpTX, output: dadDefence,
                 counters: ["na_proxy"]),
            Case(name: "NS for an address without binding: to the kernel", input: nsUnknown, verdict: xdpPass, output: nsUnknown,
                 counters: ["pass_other"]),
            Case(name: "Binding Update to the home agent: punted, dropped", input: F.ethernet(bu), verdict: xdpDrop, output: nil,
                 counters: ["mh_punt"]),
            Case(name: "MH behind nine extension headers: dropped", input: F.ethernet(mhAfterChain), verdict: xdpDrop, output: nil,
                 counters: ["drop_ext_chain"]),
            Case(name: "fragmented MH: dropped", input: F.ethernet(fragMH), verdict: xdpDrop, output: nil, counters: ["drop_mh_fragment"]),
            Case(name: "MH behind an Authentication Header: punted, dropped", input: F.ethernet(mhAfterAH), verdict: xdpDrop,
                 output: nil, counters: ["mh_punt"]),
            Case(name: "Authentication Header longer than the packet: dropped", input: F.ethernet(truncatedAH), verdict: xdpDrop,
                 output: nil, counters: ["drop_malformed"]),
            Case(name: "extension header longer than the packet: dropped", input: F.ethernet(truncatedExt), verdict: xdpDrop, output: nil,
                 counters: ["drop_malformed"]),
            Case(name: "packet for an unknown address: passed untouched", input: F.passThroughFrame(), verdict: xdpPass,
                 output: F.passThroughFrame(), counters: ["pass_other"]),
            Case(name: "ping to the home agent itself: passed", input: F.ethernet(F.echoRequest(dst: F.homeAgent)), verdict: xdpPass,
                 output: F.ethernet(F.echoRequest(dst: F.homeAgent)), counters: ["pass_local"]),
            Case(name: "truncated IPv6 header: dropped", input: Array(F.ethernet(echo).prefix(14 + 20)), verdict: xdpDrop,
                 output: nil, counters: ["drop_malformed"]),
            Case(name: "ARP: passed", input: arp, verdict: xdpPass, output: arp, counters: ["pass_not_ipv6"]),
            // RFC 6275 §10.3.1: past its lifetime a binding is not used, daemon or not.
            Case(name: "to a home address whose binding expired (no daemon removed it): not tunneled, to the kernel",
                 input: toExpired, verdict: xdpPass, output: toExpired, counters: ["pass_expired"]),
            Case(name: "reverse tunnel from an expired binding's care-of address: dropped", input: fromExpired,
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_expired"]),
            Case(name: "NS for an expired binding's home address: not defended, to the kernel", input: nsExpired,
                 verdict: xdpPass, output: nsExpired, counters: ["pass_expired"]),
            // mip6 forwarder: the same program with MIP6_CFG_FORWARDER; the tunnels work as above,
            // signaling and ND go on to the replicas through the kernel, nothing is punted.
            Case(name: "forwarder: Binding Update to the home agent address: passed on, not punted", input: F.ethernet(bu),
                 verdict: xdpPass, output: F.ethernet(bu), counters: ["fwd_pass_mh"], flags: forwarder,
                 unchanged: ["mh_punt", "drop_punt_rate_limited", "drop_punt_src_rate_limited"]),
            Case(name: "forwarder: MH behind an Authentication Header: passed on", input: F.ethernet(mhAfterAH), verdict: xdpPass,
                 output: F.ethernet(mhAfterAH), counters: ["fwd_pass_mh"], flags: forwarder, unchanged: ["mh_punt"]),
            Case(name: "forwarder: fragmented MH: passed on (the replicas decide)", input: F.ethernet(fragMH), verdict: xdpPass,
                 output: F.ethernet(fragMH), counters: ["fwd_pass_mh"], flags: forwarder, unchanged: ["drop_mh_fragment"]),
            Case(name: "forwarder: encapsulation to the care-of address still works", input: F.ethernet(echo), verdict: xdpTX,
                 output: encapsulated(echo, to: F.careOf), counters: ["encap", "encap_tx"], flags: forwarder),
            Case(name: "forwarder: reverse tunnel from the registered CoA still decapsulated",
                 input: F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent, fromMN)), verdict: xdpTX,
                 output: F.ethernet(dst: F.routerMAC, src: t0MAC, decapped), counters: ["decap", "decap_tx"], flags: forwarder),
            Case(name: "forwarder: reverse tunnel with a spoofed outer source still dropped",
                 input: F.ethernet(F.tunnel(outerSrc: IPv6Address("2001:db8:f1::66")!, outerDst: F.homeAgent, fromMN)),
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_spoofed"], flags: forwarder),
            Case(name: "forwarder: NS for a home address: no proxy ND, to the kernel", input: nsFrame, verdict: xdpPass,
                 output: nsFrame, counters: ["pass_other"], flags: forwarder, unchanged: ["na_proxy"]),
        ] + encapsulationLimitCases + linkLocalCases
    }

    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env() }

    @Test(arguments: cases)
    func table(_ c: Case) throws {
        let env = try Self.env.get()
        try Self.check(c, env: env) { frame in
            let r = try env.run(frame)
            return (r.verdict, r.output)
        }
    }

    /// Runs one row (`run` is the XDP or the TC test run) with its config flags set for it alone.
    static func check(_ c: Case, env: Env, _ run: ([UInt8]) throws -> (verdict: UInt32, output: [UInt8])) throws {
        let before = try c.counters.map { try env.counter($0) }
        let still = try c.unchanged.map { try env.counter($0) }
        _ = try env.ring.consume() // what earlier rows punted
        let punted = env.punted.count
        if c.flags != 0 { try env.maps.setConfigFlag(c.flags, true) }
        defer { if c.flags != 0 { try? env.maps.setConfigFlag(c.flags, false) } }
        let r = try run(c.input)
        #expect(r.verdict == c.verdict, "verdict")
        if let out = c.output {
            #expect(r.output == out, "output bytes differ:\n got \(hex(r.output))\nwant \(hex(out))")
        }
        for (i, name) in c.counters.enumerated() {
            #expect(try env.counter(name) == before[i] + 1, "counter \(name)")
        }
        for (i, name) in c.unchanged.enumerated() {
            #expect(try env.counter(name) == still[i], "counter \(name) must not move")
        }
        if c.flags & forwarder != 0 {
            _ = try env.ring.consume()
            #expect(env.punted.count == punted, "a forwarder punts nothing")
        }
    }

    @Test("encapsulation and decapsulation count per binding")
    func perBindingCounters() throws {
        let env = try Self.env.get()
        let before = try env.maps.stats(for: F.homeAddress)
        let echo = F.ethernet(F.echoRequest())
        _ = try env.run(echo)
        _ = try env.run(F.ethernet(F.tunnel(outerSrc: F.careOf, outerDst: F.homeAgent,
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
        try env.ring.consume() // records left by earlier cases
        env.punted.removeAll()
        _ = try env.run(F.ethernet(bu))
        try env.ring.consume()
        #expect(env.punted.count == 1)
        #expect(env.punted.first?.kind == UInt32(MIP6_PUNT_MH.rawValue))
        #expect(env.punted.first?.bytes == bu)
    }

    @Test("NAs are copied to the control plane only while DAD runs")
    func naCopy() throws {
        let env = try Self.env.get()
        let na = F.ethernet(dst: [0x33, 0x33, 0, 0, 0, 1], PacketBuilder.neighborAdvertisement(
            target: IPv6Address("2001:db8:1::200")!, source: IPv6Address("2001:db8:1::200")!, destination: IPv6Address("ff02::1")!,
            flags: (router: false, solicited: false, override: true), targetLinkLayer: F.routerMAC))
        try env.ring.consume()
        env.punted.removeAll()
        #expect(try env.run(na).verdict == Self.xdpPass)
        try env.ring.consume()
        #expect(env.punted.isEmpty)
        try env.maps.setConfigFlag(UInt32(MIP6_CFG_PUNT_NA), true)
        defer { try? env.maps.setConfigFlag(UInt32(MIP6_CFG_PUNT_NA), false) }
        #expect(try env.run(na).verdict == Self.xdpPass)
        try env.ring.consume()
        #expect(env.punted.count == 1)
        #expect(env.punted.first?.kind == UInt32(MIP6_PUNT_NA.rawValue))
    }

    @Test("an inner packet too big for the tunnel gets Packet Too Big from the home agent")
    func packetTooBig() throws {
        let env = try Self.env.get()
        let big = F.echoRequest(dataSize: 1500 - 40 - 8) // 1500-byte IPv6 packet: no room for 40 more
        let r = try env.run(F.ethernet(big))
        #expect(r.verdict == Self.xdpTX)
        let ip = Array(r.output.dropFirst(14))
        #expect(Array(r.output.prefix(12)) == F.routerMAC + F.haMAC, "bounced to the sender's neighbour")
        #expect(ip.count == 1280, "ICMPv6 error fills the minimum MTU")
        #expect(Array(ip[8..<24]) == F.homeAgent.bytes)
        #expect(Array(ip[24..<40]) == F.correspondent.bytes)
        #expect(ip[6] == 58 && ip[40] == 2 && ip[41] == 0)
        let mtu = UInt32(ip[44]) << 24 | UInt32(ip[45]) << 16 | UInt32(ip[46]) << 8 | UInt32(ip[47])
        #expect(mtu == 1460, "tunnel MTU = link MTU - 40")
        #expect(Array(ip[48...]) == Array(big.prefix(1232)), "quotes the start of the offending packet")
        #expect(InternetChecksum.upperLayer(source: F.homeAgent, destination: F.correspondent, nextHeader: 58,
                                            payload: Array(ip[40...])) == 0, "checksum verifies to zero")
        #expect(try env.counter("encap_too_big") >= 1)
    }

    @Test("signaling punts are rate-limited per source /64 and overall; forwarding is not")
    func puntRateLimit() throws {
        let env = try Self.env.get()
        defer { try? env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                                          limits: .unlimited) }
        // One BU a second per source, a burst of 3; the global bucket is generous.
        try env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                                 limits: PuntLimits(rate: 100_000, burst: 100_000, perSourceRate: 1, perSourceBurst: 3))
        let bu = F.ethernet(PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                                        careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress))
        let limitedBefore = try env.counter("drop_punt_src_rate_limited")
        let puntsBefore = try env.counter("mh_punt")
        for _ in 0..<10 { #expect(try env.run(bu).verdict == Self.xdpDrop) }
        #expect(try env.counter("mh_punt") - puntsBefore == 3, "the burst gets through")
        #expect(try env.counter("drop_punt_src_rate_limited") - limitedBefore == 7, "the rest is counted, not punted")
        // Another /64 has its own bucket.
        let other = F.ethernet(PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                                           careOf: IPv6Address("2001:db8:f7::1")!, homeAgent: F.homeAgent,
                                                           homeAddress: F.homeAddress))
        _ = try env.run(other)
        #expect(try env.counter("mh_punt") - puntsBefore == 4)
        // The global bucket: burst 2, then everyone waits.
        try env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                                 limits: PuntLimits(rate: 1, burst: 2, perSourceRate: 0, perSourceBurst: 0))
        let globalBefore = try env.counter("drop_punt_rate_limited")
        for _ in 0..<5 { _ = try env.run(other) }
        #expect(try env.counter("drop_punt_rate_limited") - globalBefore >= 3)
        // Forwarding for a registered binding is untouched by the limiter.
        #expect(try env.run(F.ethernet(F.echoRequest())).verdict == Self.xdpTX)
    }

    @Test("the next-hop cache skips the FIB, and a generation bump after a neighbour change is obeyed at once")
    func nextHopCache() throws {
        let env = try Self.env.get()
        let echo = F.ethernet(F.echoRequest())
        try env.maps.bumpNextHopGeneration()
        let (hit0, miss0) = (try env.counter("nexthop_cache_hit"), try env.counter("nexthop_cache_miss"))
        #expect(try env.run(echo).verdict == Self.xdpTX)
        #expect(try env.counter("nexthop_cache_miss") == miss0 + 1, "first packet after a bump: FIB")
        let cached = try env.run(echo)
        #expect(try env.counter("nexthop_cache_hit") == hit0 + 1, "second: cache")
        #expect(cached.output == Self.encapsulated(F.echoRequest(), to: F.careOf), "a cached next hop gives the same frame")

        // The router's MAC changes; the control plane sees the neighbour event and bumps.
        let newMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x42]
        try env.ns.ip("-6 neigh replace 2001:db8:1::1 lladdr 02:00:00:00:00:42 dev t0 nud permanent")
        defer { try? env.ns.ip("-6 neigh replace 2001:db8:1::1 lladdr 02:00:00:00:00:01 dev t0 nud permanent") }
        try env.maps.bumpNextHopGeneration()
        defer { try? env.maps.bumpNextHopGeneration() }
        let after = try env.run(echo)
        #expect(Array(after.output.prefix(6)) == newMAC, "never the stale MAC after the bump")
        #expect(try env.counter("nexthop_cache_miss") == miss0 + 2)

        // A packet longer than any the FIB accepted on this route goes to the FIB (MTU check).
        let missBefore = try env.counter("nexthop_cache_miss")
        _ = try env.run(F.ethernet(F.echoRequest(dataSize: 1000)))
        #expect(try env.counter("nexthop_cache_miss") == missBefore + 1)
    }

    @Test("a move the maps refuse keeps the previous binding forwarding, in the maps and in the cache, and takes back the acceptance")
    func refusedWriteKeepsThePreviousBinding() throws {
        let env = try Self.env.get()
        let hoa = IPv6Address("2001:db8:1::106")!, newCoA = IPv6Address("2001:db8:f1::206")!
        let table = BPFBindingTable(maps: env.maps, homeLinkIfindex: env.t0)
        let cache = BindingCache(capacity: 16, dataPlane: table)
        table.current = { cache[$0] }
        let core = HomeAgentCore(configuration: HomeAgentConfiguration(homeAgentAddress: F.homeAgent, homePrefix: F.homePrefix,
                                                                       duplicateAddressDetection: false),
                                 cache: cache, clock: SystemMonotonicClock(), logger: Logger(label: "test"))
        func bu(_ seq: UInt16, from coa: IPv6Address) -> [UInt8] {
            PacketBuilder.bindingUpdate(BindingUpdate(sequence: seq, flags: [.ack, .home], lifetime: 100),
                                        careOf: coa, homeAgent: F.homeAgent, homeAddress: hoa)
        }
        defer { _ = try? env.maps.remove(hoa) }
        // Registered from the fixtures' care-of address, written through at once.
        _ = core.handlePacket(bu(7, from: F.careOf), localAddresses: [F.homeAgent])
        #expect(cache[hoa]?.careOfAddress == F.careOf)
        let accepted = core.counters.acksByStatus[0] ?? 0

        // A move in a ring drain: staged, answered in memory, then refused by the maps.
        table.deferring = true
        table.refuse = { $0 == hoa ? SystemError("bpf_map_update_batch", errno: ENOMEM) : nil }
        let actions = core.handlePacket(bu(8, from: newCoA), localAddresses: [F.homeAgent])
        #expect(actions.contains { if case .send = $0 { true } else { false } }, "a BA was built (the daemon withholds it)")
        let refused = table.flush()
        table.deferring = false
        #expect(refused.map(\.homeAddress) == [hoa])
        #expect(refused.first?.previous?.careOfAddress == F.careOf)
        for r in refused { core.dataPlaneWriteFailed(homeAddress: r.homeAddress, previous: r.previous, error: r.error) }

        #expect(cache[hoa]?.careOfAddress == F.careOf && cache[hoa]?.sequence == 7, "the cache holds what the maps hold")
        #expect(try env.maps.readBindings().first { $0.0 == hoa }.map { IPv6Address(cAddress: $0.1.coa) } == F.careOf)
        let out = try env.run(F.ethernet(F.echoRequest(dst: hoa)))
        #expect(out.verdict == Self.xdpTX && Array(out.output[14 + 24..<14 + 40]) == F.careOf.bytes, "still tunneled to the old CoA")
        #expect((core.counters.acksByStatus[0] ?? 0) == accepted, "the withheld BA is not counted as accepted")
        // The retransmitted BU, with the maps working again, moves it.
        table.refuse = nil
        _ = core.handlePacket(bu(8, from: newCoA), localAddresses: [F.homeAgent])
        #expect(cache[hoa]?.careOfAddress == newCoA)
    }

    /// Fills the ICMPv6 error bucket again (tests that spend it leave it as they found it).
    static func refillICMPBucket(_ env: Env) throws {
        try fillTokenBucket(env.object.map(MIP6_MAP_ICMP_LIMIT))
    }

    @Test("Packet Too Big is rate-limited (RFC 4443 §2.4(f)): a burst of too-big packets gets MIP6_ICMP_ERRORS_BURST answers, the rest are counted")
    func packetTooBigRateLimit() throws {
        let env = try Self.env.get()
        defer { try? Self.refillICMPBucket(env) }
        let tooBig = F.ethernet(F.echoRequest(dataSize: 1500 - 48)) // 1500 + 40 does not fit the 1500-byte link
        let (ptb0, limited0) = (try env.counter("encap_too_big"), try env.counter("drop_icmp_rate_limited"))
        let start = monotonicNanoseconds()
        var verdicts: [UInt32] = []
        for _ in 0..<60 { verdicts.append(try env.run(tooBig).verdict) }
        let elapsedMs = (monotonicNanoseconds() - start) / 1_000_000
        let answered = try env.counter("encap_too_big") - ptb0, limited = try env.counter("drop_icmp_rate_limited") - limited0
        print("60 too-big packets in \(elapsedMs) ms: \(answered) Packet Too Big, \(limited) rate-limited")
        #expect(answered + limited == 60)
        #expect(answered >= UInt64(MIP6_ICMP_ERRORS_BURST) || elapsedMs > 0)
        #expect(answered <= UInt64(MIP6_ICMP_ERRORS_BURST) + elapsedMs * UInt64(MIP6_ICMP_ERRORS_PER_S) / 1000 + 1,
                "no more than the burst plus the rate")
        #expect(limited > 0 && verdicts.filter { $0 == Self.xdpDrop }.count == Int(limited))
    }

    /// Runs `body` with the fixtures' route to the care-of address at a path MTU of `mtu`
    /// (RFC 2473 §7.1: below 1280 + 40, some packets of 1280 or less do not fit the tunnel).
    static func withRouteMTU<T>(_ env: Env, _ mtu: Int, _ body: () throws -> T) throws -> T {
        try env.ns.ip("-6 route replace 2001:db8:f1::/64 via 2001:db8:1::1 dev t0 mtu lock \(mtu)")
        try env.maps.bumpNextHopGeneration()
        defer {
            try? env.ns.ip("-6 route replace 2001:db8:f1::/64 via 2001:db8:1::1 dev t0")
            try? env.maps.bumpNextHopGeneration()
        }
        return try body()
    }

    /// Empties the fragment-punt bucket's state: the next punt finds it full (MIP6_FRAG_PUNTS_BURST).
    static func resetFragmentBucket(_ env: Env) throws {
        let tb = try BPFMap<UInt32, mip6_token_bucket>(env.object.map(MIP6_MAP_FRAG_LIMIT))
        try tb.update(0, zeroed())
    }

    @Test("a route MTU between 1280 and 1319 (RFC 2473 §7.1(b)): a packet of 1280 or less that does not fit with 40 more goes to the control plane for a fragmented tunnel packet, never a Packet Too Big that would loop; a larger one is asked down to 1280")
    func tunnelMTUBelowTheMinimum() throws {
        let env = try Self.env.get()
        try Self.refillICMPBucket(env)
        try Self.resetFragmentBucket(env)
        try env.ring.consume()
        env.punted.removeAll()
        try Self.withRouteMTU(env, 1300) {
            // 1260 + 40 = 1300 fits: tunneled whole, as ever.
            let fits = F.echoRequest(dataSize: 1260 - 48)
            let t = try env.run(F.ethernet(fits))
            #expect(t.verdict == Self.xdpTX && t.output == Self.encapsulated(fits, to: F.careOf), "1260: tunneled")
            // 1261 to 1280: only a fragmented tunnel packet carries them.
            for size in [1261, 1280] {
                let inner = F.echoRequest(dataSize: size - 48)
                let (punts, tooBig, drops) = (try env.counter("encap_frag_punt"), try env.counter("encap_too_big"),
                                              try env.counter("drop_encap_tunnel_mtu"))
                let r = try env.run(F.ethernet(inner))
                #expect(r.verdict == Self.xdpDrop, "\(size): dropped by the data plane")
                #expect(try env.counter("encap_frag_punt") == punts + 1, "\(size): punted")
                #expect(try env.counter("encap_too_big") == tooBig && env.counter("drop_encap_tunnel_mtu") == drops,
                        "\(size): no Packet Too Big, not dropped as before")
                try env.ring.consume()
                #expect(env.punted.count == 1 && env.punted.last?.kind == UInt32(MIP6_PUNT_FRAGMENT.rawValue))
                #expect(env.punted.last?.bytes == inner, "\(size): the packet as it came (the control plane decrements the hop limit)")
                env.punted.removeAll()
            }
            // 1281: the sender may go down to 1280, so it is asked to (RFC 2473 §7.1(a)).
            let p = try env.run(F.ethernet(F.echoRequest(dataSize: 1281 - 48)))
            #expect(p.verdict == Self.xdpTX && p.output[14 + 40] == 2, "Packet Too Big")
            let mtu = p.output[14 + 44..<14 + 48].reduce(0) { $0 << 8 | UInt32($1) }
            #expect(mtu == 1280, "never below the IPv6 minimum")
            try env.ring.consume()
            #expect(env.punted.isEmpty, "nothing punted for a packet the sender can shrink")
        }
    }

    @Test("forwarder (MIP6_CFG_FORWARDER), a route MTU of 1300: a packet only a fragmented tunnel packet carries passes on to the replicas (they have the tunnel socket); nothing is punted")
    func forwarderPassesFragmentedTunnel() throws {
        let env = try Self.env.get()
        try Self.resetFragmentBucket(env)
        try env.ring.consume()
        env.punted.removeAll()
        try env.maps.setConfigFlag(Self.forwarder, true)
        defer { try? env.maps.setConfigFlag(Self.forwarder, false) }
        try Self.withRouteMTU(env, 1300) {
            let inner = F.ethernet(F.echoRequest(dataSize: 1280 - 48))
            let (passed, punts) = (try env.counter("fwd_pass_encap_frag"), try env.counter("encap_frag_punt"))
            let r = try env.run(inner)
            #expect(r.verdict == Self.xdpPass && r.output == inner, "passed untouched")
            #expect(try env.counter("fwd_pass_encap_frag") == passed + 1 && env.counter("encap_frag_punt") == punts)
            try env.ring.consume()
            #expect(env.punted.isEmpty, "a forwarder punts nothing")
        }
    }

    @Test("punts for a fragmented tunnel have their own bucket (a burst of MIP6_FRAG_PUNTS_BURST, then MIP6_FRAG_PUNTS_PER_S), counted apart; signaling is still punted")
    func fragmentPuntRateLimit() throws {
        let env = try Self.env.get()
        try Self.resetFragmentBucket(env)
        try env.ring.consume()
        env.punted.removeAll()
        try Self.withRouteMTU(env, 1300) {
            let frame = F.ethernet(F.echoRequest(dataSize: 1280 - 48))
            let n = UInt64(MIP6_FRAG_PUNTS_BURST) + 600
            let (p0, l0) = (try env.counter("encap_frag_punt"), try env.counter("drop_frag_rate_limited"))
            let start = monotonicNanoseconds()
            let r = try env.run(frame, repeat: UInt32(n))
            let elapsedNs = monotonicNanoseconds() - start
            let punted = try env.counter("encap_frag_punt") - p0, limited = try env.counter("drop_frag_rate_limited") - l0
            print("\(n) packets in \(elapsedNs / 1000) µs: \(punted) punted, \(limited) rate-limited")
            #expect(r.verdict == Self.xdpDrop)
            #expect(punted + limited == n)
            #expect(punted >= UInt64(MIP6_FRAG_PUNTS_BURST), "the burst gets through")
            // The coarse clock may tick once more than the exact one within the run.
            let refill = (elapsedNs + 10_000_000) * UInt64(MIP6_FRAG_PUNTS_PER_S) / 1_000_000_000
            #expect(punted <= UInt64(MIP6_FRAG_PUNTS_BURST) + refill + 1, "no more than the burst plus the rate")
            #expect(limited > 0)
            try env.ring.consume()
            #expect(UInt64(env.punted.count) == punted && env.punted.allSatisfy { $0.kind == UInt32(MIP6_PUNT_FRAGMENT.rawValue) })
            env.punted.removeAll()
            // The signaling buckets are another matter: a BU is punted.
            let bu = F.ethernet(PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                                            careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress))
            let mh = try env.counter("mh_punt")
            _ = try env.run(bu)
            #expect(try env.counter("mh_punt") == mh + 1)
            try env.ring.consume()
            env.punted.removeAll()
        }
        try Self.resetFragmentBucket(env)
    }

    @Test("punts for a fragmented tunnel stop at MIP6_FRAG_PUNT_RING_SHARE of unconsumed ring: the rest is signaling's")
    func fragmentPuntRingShare() throws {
        let env = try Self.env.get()
        try Self.resetFragmentBucket(env)
        try env.ring.consume()
        env.punted.removeAll()
        defer {
            _ = try? env.ring.consume()
            env.punted.removeAll()
        }
        // A control plane that is behind: half the ring holds signaling it has not read yet.
        let bu = F.ethernet(PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10, options: []),
                                                        careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: F.homeAddress))
        let record = MemoryLayout<mip6_punt_hdr>.size + Int(MIP6_PUNT_SMALL) + 8 // + the ring's own record header
        let fill = Int(MIP6_FRAG_PUNT_RING_SHARE) / record + 1
        _ = try env.run(bu, repeat: UInt32(fill))
        try Self.withRouteMTU(env, 1300) {
            let (punts, full) = (try env.counter("encap_frag_punt"), try env.counter("drop_frag_ring_full"))
            #expect(try env.run(F.ethernet(F.echoRequest(dataSize: 1280 - 48))).verdict == Self.xdpDrop)
            #expect(try env.counter("drop_frag_ring_full") == full + 1 && env.counter("encap_frag_punt") == punts)
        }
        // Signaling still has the other half.
        let mh = try env.counter("mh_punt")
        _ = try env.run(bu)
        #expect(try env.counter("mh_punt") == mh + 1)
        try env.ring.consume()
        #expect(env.punted.count == fill + 1 && env.punted.allSatisfy { $0.kind == UInt32(MIP6_PUNT_MH.rawValue) })
    }

    @Test("a restarted daemon never makes an earlier daemon's next-hop entries valid again")
    func nextHopGenerationSurvivesRestart() throws {
        let env = try Self.env.get()
        let echo = F.ethernet(F.echoRequest())
        let before = try #require(try env.maps.readConfig()).nh_gen
        // An entry an earlier daemon stamped with a generation it had reached, pointing at a
        // neighbour that has changed since (which that daemon, now gone, never learned).
        let bogus: [UInt8] = [0x02, 0, 0, 0, 0, 0xBD]
        let cache = try BPFMap<mip6_addr_key, mip6_nexthop>(env.object.map(MIP6_MAP_NEXTHOP))
        var key: mip6_addr_key = zeroed()
        key.addr = F.careOf.cAddress
        var stale: mip6_nexthop = zeroed()
        (stale.ifindex, stale.gen, stale.max_len) = (env.t0, before &+ 3, 1500)
        stale.filled_ns = monotonicNanoseconds()
        stale.smac = cMAC(F.haMAC)
        stale.dmac = cMAC(bogus)
        try cache.update(key, stale)
        // The new daemon writes its config, then sees three routing events.
        try env.maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED), limits: .unlimited)
        for _ in 0..<3 { try env.maps.bumpNextHopGeneration() }
        let after = try #require(try env.maps.readConfig()).nh_gen
        #expect(after == before &+ 4, "the generation goes on from the pinned one")
        let out = try env.run(echo)
        #expect(Array(out.output.prefix(6)) == F.routerMAC, "the earlier daemon's entry for generation \(before &+ 3) is not used")
    }

    @Test("a cached next hop is used for MIP6_NH_MAX_AGE_NS at most: a PMTU the kernel learned from a Packet Too Big is obeyed")
    func nextHopAgeBoundsWhatTheCacheMisses() throws {
        let env = try Self.env.get()
        try env.maps.bumpNextHopGeneration()
        // 1300-byte packets fit the 1500-byte link with 40 more, and the cache learns it.
        let big = F.ethernet(F.echoRequest(dataSize: 1300 - 48))
        #expect(try env.run(big).verdict == Self.xdpTX)
        #expect(try env.run(big).verdict == Self.xdpTX)
        let hits = try env.counter("nexthop_cache_hit")
        // A router on the way to the care-of address says 1280 (a Packet Too Big quoting a
        // packet of ours to it). The kernel keeps that as a PMTU exception and tells nobody:
        // no netlink event, no generation bump.
        let quoted = F.echoRequest(src: F.homeAgent, dst: F.careOf, hopLimit: 64, dataSize: 64)
        var icmp: [UInt8] = [2, 0, 0, 0, 0, 0, 0x05, 0x00] + quoted
        let router = IPv6Address("2001:db8:1::1")!
        let c = InternetChecksum.upperLayer(source: router, destination: F.homeAgent, nextHeader: 58, payload: icmp)
        (icmp[2], icmp[3]) = (UInt8(c >> 8), UInt8(c & 0xff))
        let ptb = F.ethernet(dst: F.haMAC, src: F.routerMAC,
                             F.ipv6Header(src: router, dst: F.homeAgent, nextHeader: 58, payloadLength: icmp.count, hopLimit: 255) + icmp)
        let t1 = try env.ns.ifindex("t1")
        try env.ns.run { try FrameTap(ifindex: t1).send(ptb) }
        defer { _ = try? env.ns.ip("-6 route flush cache") }
        var learned = ""
        for _ in 0..<50 where !learned.contains("mtu 1280") {
            usleep(20_000)
            learned = (try? sh("ip -n \(env.ns.name) -6 route get \(F.careOf) from \(F.homeAgent)")) ?? ""
        }
        #expect(learned.contains("mtu 1280"), "the kernel took the PMTU: \(learned)")
        // Once the entry's age is over the FIB answers again, and the sender gets Packet Too Big.
        usleep(useconds_t(MIP6_NH_MAX_AGE_NS / 1000 + 100_000))
        let r = try env.run(big)
        #expect(try env.counter("nexthop_cache_hit") == hits, "the aged entry was not used")
        #expect(r.verdict == Self.xdpTX && r.output.count > 14 + 40 && r.output[14 + 6] == 58 && r.output[14 + 40] == 2,
                "Packet Too Big (ICMPv6 type 2) back to the sender: verdict \(r.verdict), next header \(r.output.count > 20 ? r.output[20] : 0)")
    }

    @Test("route, neighbour and link changes wake the control plane's netlink watcher")
    func netlinkWatcher() throws {
        let env = try Self.env.get()
        let ns = env.ns
        let woke: Bool = try ns.run {
            let w = try Netlink.Watcher(groups: Netlink.rtmgrpNeigh | Netlink.rtmgrpIPv6Route)
            _ = w.drain()
            _ = try sh("ip -n \(ns.name) -6 route add 2001:db8:77::/64 via 2001:db8:1::1 dev t0")
            var pfd = pollfd(fd: w.pollFD, events: Int16(POLLIN), revents: 0)
            return poll(&pfd, 1, 2000) == 1 && w.drain()
        }
        _ = try? sh("ip -n \(ns.name) -6 route del 2001:db8:77::/64")
        #expect(woke)
    }

    @Test("with the config disabled every packet is passed")
    func disabled() throws {
        let env = try Self.env.get()
        try env.maps.setConfigFlag(UInt32(MIP6_CFG_ENABLED), false)
        defer { try? env.maps.setConfigFlag(UInt32(MIP6_CFG_ENABLED), true) }
        let echo = F.ethernet(F.echoRequest())
        let r = try env.run(echo)
        #expect(r.verdict == Self.xdpPass && r.output == echo)
    }
}

func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// Whether this process can load BPF programs (the BPF tests need root; CI is root).
let isRoot = getuid() == 0
