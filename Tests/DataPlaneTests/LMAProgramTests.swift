import CMip6
@testable import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6TestSupport

/// The local mobility anchor's XDP program (bpf/mip6_lma.bpf.c) run with BPF_PROG_TEST_RUN on
/// crafted frames, its maps filled through `LocalMobilityAnchorMaps` (the ProxyBindingDataPlane
/// the LMA core writes through): a table of {case, input, expected verdict, expected output
/// bytes, counters that must move}, then the cases that change the bindings.
/// Needs root (CI runs as root); skipped, with this reason printed, otherwise.
@Suite("XDP local mobility anchor program (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct LMAProgramTests {
    typealias F = PacketFixtures

    static let xdpDrop: UInt32 = 1, xdpPass: UInt32 = 2, xdpTX: UInt32 = 3
    static let tcRedirect: UInt32 = 7

    static let lma = F.homeAgent                             // 2001:db8:1::a on t0
    static let lmaMAC = F.haMAC
    static let mag = IPv6Address("2001:db8:f1::100")!        // routed via 2001:db8:1::1 (neighbour known)
    static let otherMAG = IPv6Address("2001:db8:f1::200")!
    static let hnp = IPv6Prefix("2001:db8:a0:1::/64")!
    static let mn = IPv6Address("2001:db8:a0:1::5")!
    static let hnp2 = IPv6Prefix("2001:db8:a0:2::/64")!
    static let mn2 = IPv6Address("2001:db8:a0:2::5")!
    static let unbound = IPv6Address("2001:db8:a0:9::5")!

    /// The LMA in a scratch namespace whose FIB reaches the MAGs:
    ///   t0 02:00:00:00:00:0a  2001:db8:1::a/64   2001:db8:f1::/64 via 2001:db8:1::1 (neighbour 02:00:00:00:00:01)
    final class Env {
        let ns: ScratchNamespace
        let object: BPFObject
        let maps: LocalMobilityAnchorMaps
        let t0: UInt32
        var punted: [(kind: UInt32, ifindex: UInt32, bytes: [UInt8])] = []
        private(set) var ring: RingBuffer!

        init() throws {
            ns = try ScratchNamespace("lma")
            try ns.ip("""
                link set lo up
                link add t0 address 02:00:00:00:00:0a type veth peer name t1 address 02:00:00:00:00:01
                link set t0 up
                link set t1 up
                -6 addr add 2001:db8:1::a/64 dev t0 nodad
                -6 neigh add 2001:db8:1::1 lladdr 02:00:00:00:00:01 dev t0 nud permanent
                -6 route add 2001:db8:f1::/64 via 2001:db8:1::1 dev t0
                """)
            try ns.sysctl("net.ipv6.conf.all.forwarding=1")
            t0 = try ns.ifindex("t0")
            object = try BPFObject(.localMobilityAnchor)
            try object.setProxyBindingCapacity(1024)
            try object.load()
            maps = try LocalMobilityAnchorMaps(object: object)
            try maps.setConfig(lmaAddress: LMAProgramTests.lma, enabled: true, limits: .unlimited)
            try maps.install(LMAProgramTests.binding(), previous: nil)
            ring = try RingBuffer(map: maps.punt) { [unowned self] rec in
                let hdr = rec.loadUnaligned(as: mip6_punt_hdr.self)
                let start = MemoryLayout<mip6_punt_hdr>.size
                self.punted.append((hdr.kind, hdr.ifindex, Array(rec[start..<start + Int(hdr.len)])))
            }
        }

        func counter(_ name: String) throws -> UInt64 { try maps.counter(name) }

        /// One BPF_PROG_TEST_RUN of the XDP program on `frame`, arriving on t0.
        func run(_ frame: [UInt8]) throws -> BPFProgram.TestRun {
            let program = try object.program(MIP6_PROG_LMA_XDP), t0 = self.t0
            return try ns.run { try program.testRun(frame, ingressIfindex: t0) }
        }

        /// The same with the TC program, as an skb on t0.
        func runTC(_ frame: [UInt8]) throws -> BPFProgram.TestRun {
            let program = try object.program(MIP6_PROG_LMA_TC), t0 = self.t0
            return try ns.run { try program.testRunSKB(frame, ifindex: t0) }
        }

        func drainPunts() throws -> [(kind: UInt32, ifindex: UInt32, bytes: [UInt8])] {
            try ring.consume()
            defer { punted.removeAll() }
            return punted
        }
    }

    /// A binding cache entry as the LMA core makes it; live for ever unless `expiresAt` says otherwise.
    static func binding(_ id: String = "mn1@example", prefixes: [IPv6Prefix] = [LMAProgramTests.hnp],
                        mag: IPv6Address = LMAProgramTests.mag,
                        expiresAt: UInt64 = UInt64.max) -> ProxyBinding {
        ProxyBinding(identifier: id, prefixes: prefixes, proxyCareOf: mag, linkLayerIdentifier: nil, accessTechnology: 5,
                     handoffIndicator: 1, sequence: 1, timestamp: ProxyTimestamp(rawValue: 1), lifetime: 600,
                     registeredAt: 1, expiresAt: expiresAt, deregisteredAt: nil)
    }

    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env() }

    // MARK: frames

    /// A frame as it arrives at the LMA from its router.
    static func received(_ ip: [UInt8]) -> [UInt8] { F.ethernet(dst: lmaMAC, src: F.routerMAC, ip) }

    /// What the LMA makes of `inner` for `mag` (RFC 2473): outer LMA -> MAG, next header 41, hop
    /// limit 64, payload length the inner packet's, version/traffic class/flow label copied out;
    /// the inner hop limit less one (§3.1); MACs from the FIB, back out of t0.
    static func encapsulated(_ inner: [UInt8], to mag: IPv6Address = LMAProgramTests.mag) -> [UInt8] {
        var inner = inner
        inner[7] -= 1
        var outer = F.tunnel(outerSrc: lma, outerDst: mag, hopLimit: 64, inner)
        outer[0...3] = inner[0...3]
        return F.ethernet(dst: F.routerMAC, src: lmaMAC, outer)
    }

    static let toMN = F.echoRequest(src: F.correspondent, dst: mn, trafficClass: 0x2E, flowLabel: 0xABCDE)
    static let fromMN = F.echoRequest(src: mn, dst: F.correspondent, hopLimit: 64)
    static func pbu(from source: IPv6Address = LMAProgramTests.mag) -> [UInt8] {
        PacketBuilder.proxyBindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .proxy], lifetime: 15), from: source, to: lma)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let input: [UInt8]
        let verdict: UInt32
        /// Exact output frame; nil when only the verdict and counters matter.
        let output: [UInt8]?
        let counters: [String]
        /// Counters that must not move.
        var unchanged: [String] = []
        var testDescription: String { name }
    }

    static var cases: [Case] {
        let toUnbound = F.echoRequest(src: F.correspondent, dst: unbound)
        let fromUnbound = F.echoRequest(src: unbound, dst: F.correspondent, hopLimit: 64)
        let fromLinkLocal = F.echoRequest(src: IPv6Address("fe80::5")!, dst: F.correspondent, hopLimit: 64)
        var truncatedInner = F.tunnel(outerSrc: mag, outerDst: lma, fromMN)
        truncatedInner.removeLast(20)
        truncatedInner[5] -= 20
        // A PBU behind a Destination Options header (PadN), which the parser walks past.
        let pbuDstOpts = F.withExtensionHeader(pbu(), [1, 4, 0, 0, 0, 0])
        let fragMH = F.ipv6Header(src: mag, dst: lma, nextHeader: 44, payloadLength: 16)
            + [135, 0, 0, 1, 0, 0, 0, 1] + [59, 1, 5, 0, 0, 0, 0, 0]
        let pingLMA = F.echoRequest(src: F.correspondent, dst: lma)
        let arp = F.ethernet(dst: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], type: 0x0806, [UInt8](repeating: 0, count: 28))
        return [
            Case(name: "(1) downlink to an address in a bound /64: encapsulated to the MAG, XDP_TX",
                 input: received(toMN), verdict: xdpTX, output: encapsulated(toMN),
                 counters: ["rx_total", "encap", "encap_tx"]),
            Case(name: "(3) downlink to an address in no bound /64: passed untouched",
                 input: received(toUnbound), verdict: xdpPass, output: received(toUnbound),
                 counters: ["pass_other"], unchanged: ["encap"]),
            Case(name: "downlink with hop limit 1: to the kernel (Time Exceeded), not tunneled",
                 input: received(F.echoRequest(dst: mn, hopLimit: 1)), verdict: xdpPass,
                 output: received(F.echoRequest(dst: mn, hopLimit: 1)), counters: ["encap_pass_hoplimit"], unchanged: ["encap"]),
            Case(name: "(4) uplink from the binding's MAG: decapsulated, the inner packet to the kernel",
                 input: received(F.tunnel(outerSrc: mag, outerDst: lma, fromMN)), verdict: xdpPass,
                 output: received(fromMN), counters: ["decap"]),
            Case(name: "(5) uplink from another MAG: dropped (anti-spoofing)",
                 input: received(F.tunnel(outerSrc: otherMAG, outerDst: lma, fromMN)), verdict: xdpDrop, output: nil,
                 counters: ["drop_tunnel_spoofed"], unchanged: ["decap"]),
            Case(name: "(6) uplink whose inner source /64 is unbound: dropped",
                 input: received(F.tunnel(outerSrc: mag, outerDst: lma, fromUnbound)), verdict: xdpDrop, output: nil,
                 counters: ["drop_tunnel_no_binding"], unchanged: ["decap"]),
            Case(name: "uplink with a link-local inner source: dropped",
                 input: received(F.tunnel(outerSrc: mag, outerDst: lma, fromLinkLocal)), verdict: xdpDrop, output: nil,
                 counters: ["drop_tunnel_link_local"]),
            Case(name: "uplink whose inner packet is truncated: dropped", input: received(truncatedInner),
                 verdict: xdpDrop, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "(7) PBU to the LMA address: punted, dropped", input: received(pbu()), verdict: xdpDrop, output: nil,
                 counters: ["mh_punt"]),
            Case(name: "PBU behind a Destination Options header: punted, dropped", input: received(pbuDstOpts),
                 verdict: xdpDrop, output: nil, counters: ["mh_punt"]),
            Case(name: "fragmented MH: dropped", input: received(fragMH), verdict: xdpDrop, output: nil,
                 counters: ["drop_mh_fragment"], unchanged: ["mh_punt"]),
            Case(name: "ping to the LMA address: to the kernel untouched", input: received(pingLMA), verdict: xdpPass,
                 output: received(pingLMA), counters: ["pass_local"]),
            Case(name: "ARP: passed", input: arp, verdict: xdpPass, output: arp, counters: ["pass_not_ipv6"]),
        ]
    }

    @Test(arguments: cases)
    func table(_ c: Case) throws {
        let env = try Self.env.get()
        let before = try c.counters.map { try env.counter($0) }
        let still = try c.unchanged.map { try env.counter($0) }
        let r = try env.run(c.input)
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
        _ = try env.drainPunts()
    }

    @Test("the binding entry holds what the wrapper wrote: one /64 key, MAG, expiry, lifetime")
    func entryLayout() throws {
        let env = try Self.env.get()
        let e = try #require(try env.maps.lookup(Self.hnp))
        #expect(IPv6Address(cAddress: e.mag) == Self.mag)
        #expect(e.expires_ns == UInt64.max && e.registered_ns == 1 && e.lifetime_s == 600 && e.flags == 0)
        #expect(try env.maps.readPrefixes().map(\.0) == [Self.hnp])
        #expect(throws: SystemError.self) { try env.maps.install(Self.binding(prefixes: [IPv6Prefix("2001:db8:a0::/48")!]), previous: nil) }
    }

    @Test("(2) a binding whose lifetime is over: passed to the kernel untouched, counted, not tunneled")
    func expired() throws {
        let env = try Self.env.get()
        try env.maps.install(Self.binding(expiresAt: 2), previous: Self.binding())
        defer { try? env.maps.install(Self.binding(), previous: nil) }
        let (expired, encap) = (try env.counter("pass_expired"), try env.counter("encap"))
        let r = try env.run(Self.received(Self.toMN))
        #expect(r.verdict == Self.xdpPass)
        #expect(r.output == Self.received(Self.toMN))
        #expect(try env.counter("pass_expired") == expired + 1)
        #expect(try env.counter("encap") == encap)
        // Nor is its uplink accepted.
        let dropped = try env.counter("drop_tunnel_expired")
        #expect(try env.run(Self.received(F.tunnel(outerSrc: Self.mag, outerDst: Self.lma, Self.fromMN))).verdict == Self.xdpDrop)
        #expect(try env.counter("drop_tunnel_expired") == dropped + 1)
    }

    @Test("(7) the PBU reaches the ring byte for byte, and the LMA core's parser takes it")
    func puntRecord() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let pbu = Self.pbu()
        #expect(try env.run(Self.received(pbu)).verdict == Self.xdpDrop)
        let punts = try env.drainPunts()
        #expect(punts.count == 1)
        #expect(punts.first?.kind == UInt32(MIP6_PUNT_MH.rawValue))
        #expect(punts.first?.ifindex == env.t0)
        #expect(punts.first?.bytes == pbu)
        let parsed = try IPv6PacketParser.parseMobility(punts.first?.bytes ?? [])
        #expect(parsed.source == Self.mag && parsed.destination == Self.lma)
    }

    @Test("signaling over one MAG's bucket is dropped while another MAG's still gets through")
    func perMAGLimit() throws {
        let env = try Self.env.get()
        try env.maps.setConfig(lmaAddress: Self.lma, enabled: true,
                               limits: PuntLimits(rate: 0, burst: 0, perSourceRate: 1, perSourceBurst: 2))
        defer { try? env.maps.setConfig(lmaAddress: Self.lma, enabled: true, limits: .unlimited) }
        let flooder = IPv6Address("2001:db8:f1::300")!
        let limited = try env.counter("drop_punt_mag_rate_limited")
        for _ in 0..<3 { _ = try env.run(Self.received(Self.pbu(from: flooder))) }
        #expect(try env.counter("drop_punt_mag_rate_limited") == limited + 1)
        let punted = try env.counter("mh_punt")
        _ = try env.run(Self.received(Self.pbu(from: Self.otherMAG)))
        #expect(try env.counter("mh_punt") == punted + 1)
        _ = try env.drainPunts()
    }

    @Test("(8) remove: downlink passes again; install with a previous binding deletes the prefix it lost")
    func removeAndReplace() throws {
        let env = try Self.env.get()
        defer { try? env.maps.install(Self.binding(), previous: nil) }
        try env.maps.remove(Self.binding())
        try env.maps.remove(Self.binding()) // already gone: not an error
        #expect(try env.maps.lookup(Self.hnp) == nil)
        let other = try env.counter("pass_other")
        let r = try env.run(Self.received(Self.toMN))
        #expect(r.verdict == Self.xdpPass && r.output == Self.received(Self.toMN))
        #expect(try env.counter("pass_other") == other + 1)

        // On hnp2 first, then moved to hnp: hnp2's entry goes, hnp's comes.
        let onHNP2 = Self.binding(prefixes: [Self.hnp2])
        try env.maps.install(onHNP2, previous: nil)
        let toMN2 = F.echoRequest(src: F.correspondent, dst: Self.mn2)
        #expect(try env.run(Self.received(toMN2)).output == Self.encapsulated(toMN2))
        try env.maps.install(Self.binding(), previous: onHNP2)
        #expect(try env.maps.lookup(Self.hnp2) == nil)
        #expect(try env.maps.lookup(Self.hnp) != nil)
        #expect(try env.run(Self.received(toMN2)).output == Self.received(toMN2))
        #expect(try env.run(Self.received(Self.toMN)).output == Self.encapsulated(Self.toMN))
    }

    @Test("a handoff to another MAG: downlink follows at once, uplink from the old MAG is refused")
    func handoff() throws {
        let env = try Self.env.get()
        defer { try? env.maps.install(Self.binding(), previous: nil) }
        try env.maps.install(Self.binding(mag: Self.otherMAG), previous: Self.binding())
        #expect(try env.run(Self.received(Self.toMN)).output == Self.encapsulated(Self.toMN, to: Self.otherMAG))
        #expect(try env.run(Self.received(F.tunnel(outerSrc: Self.mag, outerDst: Self.lma, Self.fromMN))).verdict == Self.xdpDrop)
        #expect(try env.run(Self.received(F.tunnel(outerSrc: Self.otherMAG, outerDst: Self.lma, Self.fromMN))).verdict == Self.xdpPass)
    }

    @Test("the TC program: the same encapsulation and decapsulation on an skb")
    func tcVariant() throws {
        let env = try Self.env.get()
        let down = try env.runTC(Self.received(Self.toMN))
        #expect(down.verdict == Self.tcRedirect)
        #expect(down.output == Self.encapsulated(Self.toMN), "got \(hex(down.output))")
        let up = try env.runTC(Self.received(F.tunnel(outerSrc: Self.mag, outerDst: Self.lma, Self.fromMN)))
        #expect(up.verdict == UInt32(bitPattern: -1), "TC_ACT_UNSPEC: the next filter, then the stack")
        #expect(up.output == Self.received(Self.fromMN), "got \(hex(up.output))")
    }

    /// Full credit in the LMA's ICMPv6 error bucket (its rate limit is tested with the home agent's).
    static func refillICMPBucket(_ env: Env) throws {
        try fillTokenBucket(env.object.map(MIP6_MAP_LMA_ICMP_LIMIT))
    }

    @Test("downlink too big for the tunnel: Packet Too Big from the LMA address back to the sender, XDP_TX")
    func packetTooBig() throws {
        let env = try Self.env.get()
        try Self.refillICMPBucket(env)
        let big = F.echoRequest(src: F.correspondent, dst: Self.mn, dataSize: 1500 - 48) // 1500 + 40 does not fit t0
        let (tooBig, encap) = (try env.counter("encap_too_big"), try env.counter("encap"))
        let r = try env.run(Self.received(big))
        #expect(r.verdict == Self.xdpTX)
        #expect(Array(r.output.prefix(12)) == F.routerMAC + Self.lmaMAC, "bounced to the sender's neighbour")
        let ip = Array(r.output.dropFirst(14))
        #expect(ip.count == 1280, "the ICMPv6 error fills the minimum MTU")
        #expect(Array(ip[8..<24]) == Self.lma.bytes && Array(ip[24..<40]) == F.correspondent.bytes)
        #expect(ip[6] == 58 && ip[40] == 2 && ip[41] == 0)
        let mtu = UInt32(ip[44]) << 24 | UInt32(ip[45]) << 16 | UInt32(ip[46]) << 8 | UInt32(ip[47])
        #expect(mtu == 1460, "tunnel MTU = route MTU - 40")
        #expect(Array(ip[48...]) == Array(big.prefix(1232)), "quotes the packet as it came")
        #expect(InternetChecksum.upperLayer(source: Self.lma, destination: F.correspondent, nextHeader: 58,
                                            payload: Array(ip[40...])) == 0, "checksum verifies to zero")
        #expect(try env.counter("encap_too_big") == tooBig + 1 && env.counter("encap") == encap)
        // Exactly the tunnel MTU: tunneled.
        let fits = F.echoRequest(src: F.correspondent, dst: Self.mn, dataSize: 1460 - 48)
        #expect(try env.run(Self.received(fits)).output == Self.encapsulated(fits))
    }

    @Test("downlink with a Tunnel Encapsulation Limit of 0 (RFC 2473 §5.1): Parameter Problem from the LMA address")
    func encapsulationLimitSpent() throws {
        let env = try Self.env.get()
        try Self.refillICMPBucket(env)
        let spent = F.withExtensionHeader(F.echoRequest(src: F.correspondent, dst: Self.mn), F.encapsulationLimit(0))
        let (limited, encap) = (try env.counter("drop_encap_limit"), try env.counter("encap"))
        let r = try env.run(Self.received(spent))
        #expect(r.verdict == Self.xdpTX)
        let expected = F.ethernet(dst: F.routerMAC, src: Self.lmaMAC, PacketBuilder.parameterProblem(
            code: 0, pointer: 44, invoking: spent, from: Self.lma, to: F.correspondent))
        #expect(r.output == expected, "got \(hex(r.output))")
        #expect(try env.counter("drop_encap_limit") == limited + 1 && env.counter("encap") == encap)
    }

    @Test("disabled: every packet passes untouched")
    func disabled() throws {
        let env = try Self.env.get()
        try env.maps.setConfig(lmaAddress: Self.lma, enabled: false, limits: .unlimited)
        defer { try? env.maps.setConfig(lmaAddress: Self.lma, enabled: true, limits: .unlimited) }
        let r = try env.run(Self.received(Self.toMN))
        #expect(r.verdict == Self.xdpPass && r.output == Self.received(Self.toMN))
    }

    @Test("counters read as a dictionary, one name per counter")
    func counterNames() throws {
        let env = try Self.env.get()
        let values = try env.maps.counterValues()
        #expect(values.count == Int(MIP6_LMA_CNT_MAX.rawValue))
        #expect(values["rx_total"] != nil && values["drop_tunnel_spoofed"] != nil)
    }
}
