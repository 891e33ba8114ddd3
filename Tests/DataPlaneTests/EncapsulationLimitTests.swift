import CMip6
import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6TestSupport

/// RFC 2473 §4.1.1 / §5.1 at the home agent, a tunnel entry point: rows of the XDP table
/// (the TC suite runs them too), then what a row cannot say.
extension XDPProgramTests {
    /// An Echo Request to the home address (hop limit 63) carrying a Tunnel Encapsulation Limit.
    static func echoWithLimit(_ limit: UInt8, dataSize: Int = 56) -> [UInt8] {
        F.withExtensionHeader(F.echoRequest(dataSize: dataSize), F.encapsulationLimit(limit))
    }

    /// The Parameter Problem (code 0, RFC 4443 §3.4) the home agent sends the correspondent for
    /// `invoking`, bounced to the router it came from.
    static func limitSpent(_ invoking: [UInt8], pointer: UInt32) -> [UInt8] {
        F.ethernet(dst: F.routerMAC, src: t0MAC, PacketBuilder.parameterProblem(
            code: 0, pointer: pointer, invoking: invoking, from: F.homeAgent, to: F.correspondent))
    }

    static var encapsulationLimitCases: [Case] {
        let spent = echoWithLimit(0)
        let spentOdd = echoWithLimit(0, dataSize: 57), spentLong = echoWithLimit(0, dataSize: 1300)
        let spentBehindHopByHop = F.withExtensionHeader(spent, type: 0, [])
        let three = echoWithLimit(3), one = echoWithLimit(1)
        let otherOption = F.withExtensionHeader(F.echoRequest(), [0x1E, 2, 0xAB, 0xCD]) // an option to skip, no limit
        var overlong = three
        overlong[41] = 200 // Hdr Ext Len: 1608 bytes, the packet has 8
        return [
            Case(name: "Tunnel Encapsulation Limit 0: not tunneled, Parameter Problem to the source pointing at the limit (RFC 2473 §5.1)",
                 input: F.ethernet(spent), verdict: xdpTX, output: limitSpent(spent, pointer: 44), counters: ["drop_encap_limit"]),
            Case(name: "limit 0 on a packet of odd length: the whole packet quoted, the checksum over its last byte",
                 input: F.ethernet(spentOdd), verdict: xdpTX, output: limitSpent(spentOdd, pointer: 44), counters: ["drop_encap_limit"]),
            Case(name: "limit 0 on a packet longer than a quote: its first 1232 bytes, the error 1280 long",
                 input: F.ethernet(spentLong), verdict: xdpTX, output: limitSpent(spentLong, pointer: 44), counters: ["drop_encap_limit"]),
            Case(name: "limit 0 behind a Hop-by-Hop Options header: found, the pointer past both headers",
                 input: F.ethernet(spentBehindHopByHop), verdict: xdpTX, output: limitSpent(spentBehindHopByHop, pointer: 52),
                 counters: ["drop_encap_limit"]),
            Case(name: "Tunnel Encapsulation Limit 3: tunneled behind our Destination Options header with limit 2, the inner packet untouched",
                 input: F.ethernet(three), verdict: xdpTX, output: encapsulated(three, to: F.careOf, limit: 2), counters: ["encap", "encap_tx"]),
            Case(name: "Tunnel Encapsulation Limit 1: tunneled with limit 0", input: F.ethernet(one), verdict: xdpTX,
                 output: encapsulated(one, to: F.careOf, limit: 0), counters: ["encap", "encap_tx"]),
            Case(name: "Destination Options without a limit: tunneled with no header of ours", input: F.ethernet(otherOption),
                 verdict: xdpTX, output: encapsulated(otherOption, to: F.careOf), counters: ["encap", "encap_tx"]),
            Case(name: "Destination Options header longer than the packet: dropped", input: F.ethernet(overlong), verdict: xdpDrop,
                 output: nil, counters: ["drop_malformed"]),
        ]
    }
}

/// The mobile node's reverse tunnel is an entry point too (RFC 2473 §5.1): the same library
/// function finds the limit, the same builder answers to the local stack.
extension MNProgramTests {
    static func fromMN(limit: UInt8, dataSize: Int = 56) -> [UInt8] {
        F.withExtensionHeader(F.echoRequest(src: F.homeAddress, dst: F.correspondent, hopLimit: 64, dataSize: dataSize),
                              F.encapsulationLimit(limit))
    }

    /// Reverse-tunneled with our Destination Options header holding `limit` (the inner hop limit stays).
    static func encapsulated(_ inner: [UInt8], limit: UInt8) -> [UInt8] {
        var outer = F.ipv6Header(src: F.careOf, dst: F.homeAgent, nextHeader: 60, payloadLength: inner.count + 8, hopLimit: 64)
            + [41, 0, 4, 1, limit, 1, 1, 0] + inner
        outer[0...3] = inner[0...3]
        return F.ethernet(dst: F.routerMAC, src: Env.mnMAC, outer)
    }

    static var encapsulationLimitCases: [Case] {
        let spent = fromMN(limit: 0), three = fromMN(limit: 3)
        let problem = F.ethernet(dst: Env.mnMAC, src: F.routerMAC, PacketBuilder.parameterProblem(
            code: 0, pointer: 44, invoking: spent, from: F.careOf, to: F.homeAddress))
        return [
            Case(name: "from the HoA with a Tunnel Encapsulation Limit of 0: Parameter Problem to the local stack (RFC 2473 §5.1)",
                 direction: .egress, input: sent(spent), verdict: tcRedirect, output: problem, counters: ["drop_encap_limit"]),
            Case(name: "from the HoA with limit 3: reverse-tunneled behind our Destination Options header with limit 2",
                 direction: .egress, input: sent(three), verdict: tcOK, output: encapsulated(three, limit: 2), counters: ["encap", "encap_tx"]),
        ]
    }

    @Test("with a limit the tunnel MTU is the link's less 48: Packet Too Big says 1452")
    func encapsulationLimitMTU() throws {
        let env = try Self.env.get()
        let big = Self.fromMN(limit: 3, dataSize: 1456 - 48 - 8) // fits with 40 more, not with 48
        let r = try env.egress(Self.sent(big))
        #expect(r.verdict == Self.tcRedirect && r.output.count == 14 + 1280 && r.output[14 + 40] == 2)
        if r.output.count == 14 + 1280 {
            #expect(Array(r.output[14 + 44..<14 + 48]) == [0, 0, 0x05, 0xAC], "1452")
        }
        let fits = Self.fromMN(limit: 3, dataSize: 1452 - 48 - 8)
        let f = try env.egress(Self.sent(fits))
        #expect(f.verdict == Self.tcOK && f.output == Self.encapsulated(fits, limit: 2))
    }
}

/// scapy 2.5 (/usr/bin/python3), hex pasted once:
///
///     from scapy.layers.inet6 import *
///     ha='2001:db8:1::a'; coa='2001:db8:f1::100'; cn='2001:db8:c::2'; hoa='2001:db8:1::100'
///     def inner(tel, hlim): return IPv6(src=cn, dst=hoa, hlim=hlim) \
///         /IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=bytes([tel]))]) \
///         /ICMPv6EchoRequest(id=0x1234, seq=1, data=bytes(range(56)))
///     tun = IPv6(src=ha, dst=coa, hlim=64)/IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b'\x02')]) \
///         /inner(3, 62)
///     pp = IPv6(src=ha, dst=cn, hlim=64)/ICMPv6ParamProblem(code=0, ptr=44)/inner(0, 63)
///     print(raw(inner(3, 63)).hex(), raw(tun).hex(), raw(pp).hex())
///
/// scapy pads the options with PadN to 8 octets as Linux's ip6_tnl does (type 4, length 1, limit, 1, 1, 0).
@Suite("Tunnel Encapsulation Limit bytes against scapy")
struct EncapsulationLimitScapyTests {
    static let echo = "20010db8000c0000000000000000000220010db80001000000000000000001003a000401"
    static let icmp = "800019bc12340001000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637"
    static let inner = "6000000000483c3f" + echo + "03010100" + icmp
    static let tunnel = "6000000000783c4020010db800010000000000000000000a20010db800f10000000000000000010029000401020101006000000000483c3e"
        + echo + "03010100" + icmp
    static let parameterProblem = "6000000000783a4020010db800010000000000000000000a20010db8000c0000000000000000000204"
        + "00c4860000002c6000000000483c3f" + echo + "00010100" + icmp

    @Test("the fixture, the tunnel packet and the Parameter Problem the tests expect are scapy's")
    func matchesScapy() {
        #expect(hex(XDPProgramTests.echoWithLimit(3)) == Self.inner)
        #expect(hex(Array(XDPProgramTests.encapsulated(XDPProgramTests.echoWithLimit(3), to: PacketFixtures.careOf,
                                                       limit: 2).dropFirst(14))) == Self.tunnel)
        #expect(hex(Array(XDPProgramTests.limitSpent(XDPProgramTests.echoWithLimit(0), pointer: 44).dropFirst(14)))
                == Self.parameterProblem)
    }
}

@Suite("Tunnel Encapsulation Limit: MTU and ICMPv6 errors (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct EncapsulationLimitTests {
    typealias F = PacketFixtures
    typealias XDP = XDPProgramTests
    nonisolated(unsafe) static let env: Result<XDPFixtureEnvironment, Error> = Result { try XDPFixtureEnvironment(tag: "tel") }

    @Test("our Destination Options header counts: the route is asked for the packet + 48, Packet Too Big says 1500 - 48",
          arguments: [false, true])
    func tunnelMTU(tc: Bool) throws {
        let env = try Self.env.get()
        try XDP.refillICMPBucket(env)
        func run(_ frame: [UInt8]) throws -> (verdict: UInt32, output: [UInt8]) {
            if tc { let r = try env.runSKB(frame); return (r.verdict, r.output) }
            let r = try env.run(frame)
            return (r.verdict, r.output)
        }
        let sent: UInt32 = tc ? TCHomeAgentTests.tcRedirect : XDP.xdpTX
        // 1456 bytes: with 40 more it would fit the 1500-byte link, with 48 it does not.
        let big = XDP.echoWithLimit(3, dataSize: 1456 - 48 - 8)
        #expect(big.count == 1456)
        let r = try run(F.ethernet(big))
        #expect(r.verdict == sent && r.output.count == 14 + 1280 && r.output[14 + 40] == 2, "Packet Too Big")
        if r.output.count == 14 + 1280 {
            try TCHomeAgentTests.checkTooBig(r.output, quoting: big, mtu: 1452)
        }
        // 1452 bytes fill the link exactly.
        let fits = XDP.echoWithLimit(3, dataSize: 1452 - 48 - 8)
        let f = try run(F.ethernet(fits))
        #expect(f.verdict == sent && f.output == XDP.encapsulated(fits, to: F.careOf, limit: 2))
        #expect(f.output.count == 14 + 1500)
    }

    @Test("Parameter Problems draw on the ICMPv6 error budget of Packet Too Big (RFC 4443 §2.4(f))")
    func rateLimited() throws {
        let env = try Self.env.get()
        defer { try? XDP.refillICMPBucket(env) }
        // Spent: no credit, refilled "now" on the clock the data plane reads
        // (bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC_COARSE). An error costs 1 s /
        // MIP6_ICMP_ERRORS_PER_S of elapsed time; a run that took longer than that (a loaded CI
        // machine, or one coarse tick at HZ=100) has earned its credit back and proves nothing,
        // so it is tried again: the assertion holds whenever the clock says it must.
        func coarseNow() -> UInt64 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
            return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        }
        let cost = 1_000_000_000 / UInt64(MIP6_ICMP_ERRORS_PER_S)
        let tb = try BPFMap<UInt32, mip6_token_bucket>(env.object.map(MIP6_MAP_ICMP_LIMIT))
        var decided = false
        for _ in 0..<20 where !decided {
            let (answered, limited) = (try env.counter("drop_encap_limit"), try env.counter("drop_icmp_rate_limited"))
            var empty: mip6_token_bucket = zeroed()
            empty.last_ns = coarseNow()
            try tb.update(0, empty)
            let r = try env.run(F.ethernet(XDP.echoWithLimit(0)))
            guard coarseNow() - empty.last_ns < cost else { continue }
            decided = true
            #expect(r.verdict == XDP.xdpDrop, "dropped without an answer")
            #expect(try env.counter("drop_icmp_rate_limited") == limited + 1 && env.counter("drop_encap_limit") == answered)
        }
        #expect(decided, "20 runs each took longer than one error's cost: the machine is too slow to tell")
        // With credit again, answered.
        try XDP.refillICMPBucket(env)
        let answered = try env.counter("drop_encap_limit")
        #expect(try env.run(F.ethernet(XDP.echoWithLimit(0))).verdict == XDP.xdpTX)
        #expect(try env.counter("drop_encap_limit") == answered + 1)
    }

    @Test("no Parameter Problem to a source that names no node (RFC 4443 §2.4(e)): dropped, counted")
    func multicastSource() throws {
        let env = try Self.env.get()
        try XDP.refillICMPBucket(env)
        let fromGroup = F.withExtensionHeader(F.echoRequest(src: IPv6Address("ff02::1")!), F.encapsulationLimit(0))
        let before = try env.counter("drop_encap_limit")
        #expect(try env.run(F.ethernet(fromGroup)).verdict == XDP.xdpDrop)
        #expect(try env.counter("drop_encap_limit") == before + 1)
    }
}
