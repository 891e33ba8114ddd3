import CMip6
@testable import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6TestSupport

/// The mobile access gateway's TC programs (bpf/mip6_mag.bpf.c) run with BPF_PROG_TEST_RUN on
/// crafted frames, their maps filled through `MobileAccessGatewayMaps`: a table of {case, link,
/// input, expected verdict, expected output bytes, counters that must move}, then the cases a
/// row cannot say (punt records, limiters, expiry, next hops, the maps API) and one live run
/// through real interfaces, which shows where the redirects go.
/// Needs root (CI runs as root); skipped, with this reason printed, otherwise.
@Suite("TC mobile access gateway programs (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct MAGProgramTests {
    typealias F = PacketFixtures

    /// TC_ACT_UNSPEC (-1): passed on to the next filter, then the stack (bpf/lib/ctx.h m6_act_pass).
    static let tcOK = UInt32(bitPattern: -1), tcShot: UInt32 = 2, tcRedirect: UInt32 = 7

    /// FixedMAGLinkLayerAddressOnAllAccessLinks: a0's and a2's MAC.
    static let sharedMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0xEE]
    static let coreMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0xC0]
    static let nodeMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x51]
    static let otherMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x52]
    static let linkLocal = IPv6Address("fe80::1")!
    static let proxyCoA = IPv6Address("2001:db8:f1::100")!
    static let lma = F.homeAgent                               // 2001:db8:1::a, via 2001:db8:f1::1 (neighbour known)
    static let otherLMA = IPv6Address("2001:db8:1::b")!
    static let lmaNoNeigh = IPv6Address("2001:db8:2::a")!      // via 2001:db8:f1::2 (neighbour unknown)
    static let lmaUnreachable = IPv6Address("2001:db8:ee::a")! // unreachable route
    static let hnp = IPv6Prefix("2001:db8:a0:1::/64")!
    static let mn = IPv6Address("2001:db8:a0:1::5")!
    static let mnLinkLocal = IPv6Address("fe80::51")!
    static let unbound = IPv6Address("2001:db8:a0:9::5")!

    struct Punt {
        let kind: UInt32
        let ifindex: UInt32
        let origLen: UInt32
        let srcMAC: [UInt8]
        let bytes: [UInt8]
    }

    /// The MAG in a scratch namespace:
    ///   c0 02:00:00:00:00:c0  core, 2001:db8:f1::100/64 (the Proxy-CoA), forwarding on
    ///                         2001:db8:1::/64 via 2001:db8:f1::1 (neighbour 02:00:00:00:00:01, c1)
    ///                         2001:db8:2::/64 via 2001:db8:f1::2 (neighbour unknown), 2001:db8:ee::/64 unreachable
    ///   a0 02:00:00:00:00:ee  access link, the node (a1, 02:00:00:00:00:51) at the other end
    ///   a2 02:00:00:00:00:ee  another access link (a3 at the other end)
    final class Env {
        let ns: ScratchNamespace
        let object: BPFObject
        let maps: MobileAccessGatewayMaps
        let c0: UInt32, a0: UInt32, a2: UInt32
        var punted: [Punt] = []
        private(set) var ring: RingBuffer!

        init() throws {
            ns = try ScratchNamespace("mag")
            try ns.ip("""
                link set lo up
                link add c0 address 02:00:00:00:00:c0 type veth peer name c1 address 02:00:00:00:00:01
                link add a0 address 02:00:00:00:00:ee type veth peer name a1 address 02:00:00:00:00:51
                link add a2 address 02:00:00:00:00:ee type veth peer name a3 address 02:00:00:00:00:53
                link set c0 up
                link set c1 up
                link set a0 up
                link set a1 up
                link set a2 up
                link set a3 up
                -6 addr add 2001:db8:f1::100/64 dev c0 nodad
                -6 neigh add 2001:db8:f1::1 lladdr 02:00:00:00:00:01 dev c0 nud permanent
                -6 route add 2001:db8:1::/64 via 2001:db8:f1::1 dev c0
                -6 route add 2001:db8:2::/64 via 2001:db8:f1::2 dev c0
                -6 route add unreachable 2001:db8:ee::/64
                """)
            try ns.sysctl("net.ipv6.conf.all.forwarding=1")
            c0 = try ns.ifindex("c0")
            a0 = try ns.ifindex("a0")
            a2 = try ns.ifindex("a2")
            object = try BPFObject(.mobileAccessGateway)
            try object.load()
            maps = try MobileAccessGatewayMaps(object: object)
            try configure()
            try maps.install(MAGProgramTests.forwarding(ifindex: a0), expiresAt: UInt64.max)
            ring = try RingBuffer(map: maps.punt) { [unowned self] rec in
                let hdr = rec.loadUnaligned(as: mip6_punt_hdr.self)
                let start = MemoryLayout<mip6_punt_hdr>.size
                self.punted.append(Punt(kind: hdr.kind, ifindex: hdr.ifindex, origLen: hdr.orig_len, srcMAC: macBytes(hdr.src_mac),
                                        bytes: Array(rec[start..<start + Int(hdr.len)])))
            }
        }

        /// Enabled, tunnels out of c0; the punt intervals as given (the defaults: 1 s, 50 ms).
        func configure(enabled: Bool = true, attach: UInt64 = 1_000_000_000, rs: UInt64 = 50_000_000) throws {
            try maps.setConfig(proxyCareOf: MAGProgramTests.proxyCoA, linkLocal: MAGProgramTests.linkLocal,
                               mac: MAGProgramTests.sharedMAC, coreIfindex: c0, enabled: enabled,
                               attachPuntInterval: attach, rsPuntInterval: rs)
        }

        func counter(_ name: String) throws -> UInt64 { try maps.counter(name) }

        /// mip6_mag_access on `frame`, as an skb arriving on access link `ifindex` (default a0).
        func access(_ frame: [UInt8], on ifindex: UInt32? = nil, gsoSize: UInt32 = 0, gsoSegs: UInt32 = 0) throws -> BPFProgram.TestRun {
            let program = try object.program(MIP6_PROG_MAG_ACCESS), dev = ifindex ?? a0
            return try ns.run { try program.testRunSKB(frame, ifindex: dev, gsoSize: gsoSize, gsoSegs: gsoSegs) }
        }

        /// mip6_mag_core on `frame`, as an skb arriving on c0.
        func core(_ frame: [UInt8]) throws -> BPFProgram.TestRun {
            let program = try object.program(MIP6_PROG_MAG_CORE), c0 = self.c0
            return try ns.run { try program.testRunSKB(frame, ifindex: c0) }
        }

        /// Records waiting in the punt ring, consumed.
        func drainPunts() throws -> [Punt] {
            try ring.consume()
            defer { punted.removeAll() }
            return punted
        }
    }

    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env() }

    /// The node's data-plane state as the MAG core hands it out.
    static func forwarding(mac: [UInt8] = nodeMAC, ifindex: UInt32, prefixes: [IPv6Prefix] = [hnp],
                           lma: IPv6Address = lma) -> MobileAccessGatewayForwarding {
        MobileAccessGatewayForwarding(mac: mac, ifindex: ifindex, identifier: "mn1@example", homeNetworkPrefixes: prefixes,
                                      lma: lma, proxyCareOf: proxyCoA)
    }

    // MARK: frames

    /// A frame from a node on an access link, to the shared MAC unless said otherwise.
    static func fromNode(_ ip: [UInt8], mac: [UInt8] = nodeMAC, dst: [UInt8] = sharedMAC) -> [UInt8] {
        F.ethernet(dst: dst, src: mac, ip)
    }

    /// A frame arriving on the core interface from its router.
    static func fromCore(_ ip: [UInt8]) -> [UInt8] { F.ethernet(dst: coreMAC, src: F.routerMAC, ip) }

    /// What the MAG makes of `inner` (RFC 2473, RFC 5213 §6.10.5): outer Proxy-CoA -> LMA, hop limit
    /// 64, version/traffic class/flow label copied out (§6.4), next header 41 or, with `limit`, our
    /// Destination Options header with that Tunnel Encapsulation Limit (§5.1); the inner hop limit
    /// less one; Ethernet from c0 to the router, as the FIB says.
    static func encapsulated(_ inner: [UInt8], to lma: IPv6Address = lma, limit: UInt8? = nil) -> [UInt8] {
        var inner = inner
        inner[7] -= 1
        var outer: [UInt8]
        if let limit {
            outer = F.ipv6Header(src: proxyCoA, dst: lma, nextHeader: 60, payloadLength: inner.count + 8, hopLimit: 64)
                + [41, 0, 4, 1, limit, 1, 1, 0] + inner
        } else {
            outer = F.tunnel(outerSrc: proxyCoA, outerDst: lma, hopLimit: 64, inner)
        }
        outer[0...3] = inner[0...3]
        return F.ethernet(dst: F.routerMAC, src: coreMAC, outer)
    }

    /// The inner packet of a downlink tunnel packet as it leaves for the node: hop limit less one,
    /// to the node's MAC from the shared one.
    static func decapsulated(_ inner: [UInt8]) -> [UInt8] {
        var inner = inner
        inner[7] -= 1
        return F.ethernet(dst: nodeMAC, src: sharedMAC, inner)
    }

    static let fromMN = F.echoRequest(src: mn, dst: F.correspondent, hopLimit: 64, trafficClass: 0x2E, flowLabel: 0xABCDE)
    static let toMN = F.echoRequest(src: F.correspondent, dst: mn, hopLimit: 60)
    static let tunneled = F.tunnel(outerSrc: lma, outerDst: proxyCoA, toMN)

    /// A Router Solicitation (RFC 4861 §4.1) from `source` with a Source Link-Layer Address option.
    static func routerSolicitation(mac: [UInt8], source: IPv6Address = mnLinkLocal) -> [UInt8] {
        PacketBuilder.icmpv6([133, 0, 0, 0, 0, 0, 0, 0, 1, 1] + mac, source: source, destination: IPv6Address("ff02::2")!,
                             hopLimit: 255)
    }

    static func pba() -> [UInt8] {
        PacketBuilder.proxyBindingAcknowledgement(BindingAcknowledgement(status: .accepted, flags: [.proxy], sequence: 1, lifetime: 15),
                                                  from: lma, to: proxyCoA)
    }

    /// An echo request from the node carrying a Tunnel Encapsulation Limit (RFC 2473 §4.1.1).
    static func fromMN(limit: UInt8, dataSize: Int = 56) -> [UInt8] {
        F.withExtensionHeader(F.echoRequest(src: mn, dst: F.correspondent, hopLimit: 64, dataSize: dataSize),
                              F.encapsulationLimit(limit))
    }

    enum Link: String, Sendable { case access, otherAccess, core }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        var link: Link = .access
        let input: [UInt8]
        let verdict: UInt32
        /// Exact output frame; nil when only the verdict and counters matter.
        let output: [UInt8]?
        let counters: [String]
        /// Counters that must not move.
        var unchanged: [String] = []
        var testDescription: String { "\(link.rawValue): \(name)" }
    }

    static var cases: [Case] {
        let nsToRouter = PacketBuilder.neighborSolicitation(target: linkLocal, source: mnLinkLocal,
                                                            destination: linkLocal.solicitedNodeMulticast, sourceLinkLayer: nodeMAC)
        let dad = PacketBuilder.neighborSolicitation(target: mn, source: .unspecified, destination: mn.solicitedNodeMulticast,
                                                     sourceLinkLayer: nil)
        let nud = PacketBuilder.neighborSolicitation(target: linkLocal, source: mn, destination: linkLocal, sourceLinkLayer: nodeMAC)
        let naGlobal = PacketBuilder.neighborAdvertisement(target: mn, source: mn, destination: IPv6Address("2001:db8:a0:1::1")!,
                                                           flags: (router: false, solicited: true, override: true),
                                                           targetLinkLayer: nodeMAC)
        let toLinkLocal = F.echoRequest(src: mn, dst: linkLocal, hopLimit: 64)
        let toGroup = F.echoRequest(src: mn, dst: IPv6Address("ff0e::1")!, hopLimit: 64)
        let fromUnbound = F.echoRequest(src: unbound, dst: F.correspondent, hopLimit: 64)
        let hopLimit1 = F.echoRequest(src: mn, dst: F.correspondent, hopLimit: 1)
        let timeExceeded = F.ethernet(dst: nodeMAC, src: sharedMAC, PacketBuilder.timeExceeded(invoking: hopLimit1, from: linkLocal, to: mn))
        // An ICMPv6 error from the node with hop limit 1: no error about an error.
        let errorHopLimit1 = PacketBuilder.parameterProblem(code: 0, pointer: 6, invoking: F.echoRequest(src: F.correspondent, dst: mn),
                                                            from: mn, to: F.correspondent, hopLimit: 1)
        var notVersion6 = fromMN
        notVersion6[0] = 0x40
        var overclaims = fromMN
        overclaims[5] += 20 // payload length 20 bytes past the frame
        var overlongLimit = fromMN(limit: 3)
        overlongLimit[41] = 200 // Destination Options Hdr Ext Len: 1608 bytes, the packet has 8
        let spent = fromMN(limit: 0), three = fromMN(limit: 3)
        let parameterProblem = F.ethernet(dst: nodeMAC, src: sharedMAC, PacketBuilder.parameterProblem(
            code: 0, pointer: 44, invoking: spent, from: linkLocal, to: mn))
        let arp = F.ethernet(dst: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], src: nodeMAC, type: 0x0806, [UInt8](repeating: 0, count: 28))

        // Downlink.
        let withLimit = F.ipv6Header(src: lma, dst: proxyCoA, nextHeader: 60, payloadLength: 8 + toMN.count)
            + [41, 0, 4, 1, 4, 1, 1, 0] + toMN
        var truncatedInner = tunneled
        truncatedInner.removeLast(20)
        truncatedInner[5] -= 20
        var notIPv6Inner = tunneled
        notIPv6Inner[40] = 0x45
        let fragMH = F.ipv6Header(src: lma, dst: proxyCoA, nextHeader: 44, payloadLength: 16)
            + [135, 0, 0, 1, 0, 0, 0, 1] + [59, 1, 5, 0, 0, 0, 0, 0]
        let pingPCoA = F.echoRequest(src: F.correspondent, dst: proxyCoA)
        let pingOther = F.echoRequest(src: F.correspondent, dst: IPv6Address("2001:db8:f1::77")!)
        let truncatedExt = F.ipv6Header(src: lma, dst: proxyCoA, nextHeader: 60, payloadLength: 8)
            + [135, 1, 1, 4, 0, 0, 0, 0] // claims 16 bytes, has 8
        var chain: [UInt8] = []
        for _ in 0..<9 { chain += [60, 0, 1, 4, 0, 0, 0, 0] }
        chain[chain.count - 8] = 59
        let longChain = F.ipv6Header(src: lma, dst: proxyCoA, nextHeader: 60, payloadLength: chain.count) + chain
        var coreNotVersion6 = pingPCoA
        coreNotVersion6[0] = 0x40

        return [
            Case(name: "(1) uplink from the registered node: IPv6-in-IPv6 to its LMA, inner hop limit - 1, redirected",
                 input: fromNode(fromMN), verdict: tcRedirect, output: encapsulated(fromMN),
                 counters: ["rx_access", "encap", "encap_redirect"]),
            Case(name: "uplink with Tunnel Encapsulation Limit 3: behind our Destination Options header with limit 2",
                 input: fromNode(three), verdict: tcRedirect, output: encapsulated(three, limit: 2), counters: ["encap"]),
            Case(name: "uplink with Tunnel Encapsulation Limit 0: Parameter Problem back to the node from the shared addresses",
                 input: fromNode(spent), verdict: tcRedirect, output: parameterProblem, counters: ["drop_encap_limit"],
                 unchanged: ["encap"]),
            Case(name: "(2) the node's prefix from another MAC: dropped (anti-spoofing)",
                 input: fromNode(fromMN, mac: otherMAC), verdict: tcShot, output: nil, counters: ["drop_spoofed"],
                 unchanged: ["encap"]),
            Case(name: "(3) the node's MAC and prefix on another access link: dropped",
                 link: .otherAccess, input: fromNode(fromMN), verdict: tcShot, output: nil, counters: ["drop_spoofed"],
                 unchanged: ["encap"]),
            Case(name: "uplink with hop limit 1: Time Exceeded back to the node from the shared addresses (RFC 4443 §3.3), not tunneled",
                 input: fromNode(hopLimit1), verdict: tcRedirect, output: timeExceeded, counters: ["time_exceeded"],
                 unchanged: ["encap", "drop_hop_limit"]),
            Case(name: "uplink ICMPv6 error with hop limit 1: dropped without an error about it (RFC 4443 §2.4(e.1))",
                 input: fromNode(errorHopLimit1), verdict: tcShot, output: nil, counters: ["drop_hop_limit"],
                 unchanged: ["encap", "time_exceeded"]),
            Case(name: "data from the held MAC with a source /64 bound to no one: dropped", input: fromNode(fromUnbound),
                 verdict: tcShot, output: nil, counters: ["drop_not_registered"]),
            Case(name: "NS from the node's link-local address to a solicited-node group: to the kernel",
                 input: fromNode(nsToRouter, dst: [0x33, 0x33, 0xFF, 0, 0, 1]), verdict: tcOK,
                 output: fromNode(nsToRouter, dst: [0x33, 0x33, 0xFF, 0, 0, 1]), counters: ["pass_local"]),
            Case(name: "DAD NS from :: : to the kernel", input: fromNode(dad, dst: [0x33, 0x33, 0xFF, 0, 0, 5]), verdict: tcOK,
                 output: fromNode(dad, dst: [0x33, 0x33, 0xFF, 0, 0, 5]), counters: ["pass_local"]),
            Case(name: "NUD NS from the node's global address to our link-local one: to the kernel", input: fromNode(nud),
                 verdict: tcOK, output: fromNode(nud), counters: ["pass_local"], unchanged: ["encap"]),
            Case(name: "NA from the node to a global address: ND stays on the link, to the kernel", input: fromNode(naGlobal),
                 verdict: tcOK, output: fromNode(naGlobal), counters: ["pass_local"], unchanged: ["encap"]),
            Case(name: "echo from the node to our link-local address: to the kernel", input: fromNode(toLinkLocal), verdict: tcOK,
                 output: fromNode(toLinkLocal), counters: ["pass_local"], unchanged: ["encap"]),
            Case(name: "from the node to a multicast group: to the kernel, not tunneled", input: fromNode(toGroup), verdict: tcOK,
                 output: fromNode(toGroup), counters: ["pass_local"], unchanged: ["encap"]),
            Case(name: "IPv6 header with version 4: dropped", input: fromNode(notVersion6), verdict: tcShot, output: nil,
                 counters: ["drop_malformed"]),
            Case(name: "payload length past the end of the frame: dropped", input: fromNode(overclaims), verdict: tcShot, output: nil,
                 counters: ["drop_malformed"], unchanged: ["encap"]),
            Case(name: "Destination Options header longer than the packet: dropped", input: fromNode(overlongLimit),
                 verdict: tcShot, output: nil, counters: ["drop_malformed"], unchanged: ["encap"]),
            Case(name: "ARP: passed", input: arp, verdict: tcOK, output: arp, counters: ["pass_not_ipv6"]),

            Case(name: "(4) tunnel from the node's LMA: decapsulated, hop limit - 1, to the node's MAC from the shared one",
                 link: .core, input: fromCore(tunneled), verdict: tcRedirect, output: decapsulated(toMN),
                 counters: ["rx_core", "decap"]),
            Case(name: "tunnel with a Tunnel Encapsulation Limit header: decapsulated", link: .core, input: fromCore(withLimit),
                 verdict: tcRedirect, output: decapsulated(toMN), counters: ["decap"]),
            Case(name: "(5) tunnel from another LMA: dropped", link: .core,
                 input: fromCore(F.tunnel(outerSrc: otherLMA, outerDst: proxyCoA, toMN)), verdict: tcShot, output: nil,
                 counters: ["drop_tunnel_spoofed"], unchanged: ["decap"]),
            Case(name: "(6) tunnel to a /64 bound to no node: dropped", link: .core,
                 input: fromCore(F.tunnel(outerSrc: lma, outerDst: proxyCoA, F.echoRequest(src: F.correspondent, dst: unbound))),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_no_binding"], unchanged: ["decap"]),
            Case(name: "tunnel whose inner hop limit is 1: dropped", link: .core,
                 input: fromCore(F.tunnel(outerSrc: lma, outerDst: proxyCoA, F.echoRequest(src: F.correspondent, dst: mn, hopLimit: 1))),
                 verdict: tcShot, output: nil, counters: ["drop_hop_limit"], unchanged: ["decap"]),
            Case(name: "tunnel whose inner packet is truncated: dropped", link: .core, input: fromCore(truncatedInner),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "tunnel whose inner packet is not IPv6: dropped", link: .core, input: fromCore(notIPv6Inner),
                 verdict: tcShot, output: nil, counters: ["drop_tunnel_malformed"]),
            Case(name: "(7) PBA to the Proxy-CoA: punted, dropped", link: .core, input: fromCore(pba()), verdict: tcShot, output: nil,
                 counters: ["mh_punt"]),
            Case(name: "fragmented MH: dropped", link: .core, input: fromCore(fragMH), verdict: tcShot, output: nil,
                 counters: ["drop_mh_fragment"], unchanged: ["mh_punt"]),
            Case(name: "ping to the Proxy-CoA: to the kernel untouched", link: .core, input: fromCore(pingPCoA), verdict: tcOK,
                 output: fromCore(pingPCoA), counters: ["pass_local"]),
            Case(name: "to another address: to the kernel untouched", link: .core, input: fromCore(pingOther), verdict: tcOK,
                 output: fromCore(pingOther), counters: ["pass_other"]),
            Case(name: "extension header longer than the packet: dropped", link: .core, input: fromCore(truncatedExt),
                 verdict: tcShot, output: nil, counters: ["drop_malformed"]),
            Case(name: "nine extension headers: dropped", link: .core, input: fromCore(longChain), verdict: tcShot, output: nil,
                 counters: ["drop_ext_chain"]),
            Case(name: "IPv6 header with version 4: dropped", link: .core, input: fromCore(coreNotVersion6), verdict: tcShot,
                 output: nil, counters: ["drop_malformed"]),
            Case(name: "ARP: passed", link: .core, input: arp, verdict: tcOK, output: arp, counters: ["pass_not_ipv6"]),
        ]
    }

    func run(_ env: Env, _ link: Link, _ frame: [UInt8]) throws -> BPFProgram.TestRun {
        switch link {
        case .access: try env.access(frame)
        case .otherAccess: try env.access(frame, on: env.a2)
        case .core: try env.core(frame)
        }
    }

    @Test(arguments: cases)
    func table(_ c: Case) throws {
        let env = try Self.env.get()
        let before = try c.counters.map { try env.counter($0) }
        let still = try c.unchanged.map { try env.counter($0) }
        let r = try run(env, c.link, c.input)
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

    // MARK: punts

    @Test("(8) data from an unknown MAC: dropped, one attach trigger naming the MAC and link; the next within the interval is limited")
    func attachTrigger() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let mac: [UInt8] = [0x02, 0, 0, 0, 0xA7, 0x01]
        let data = F.echoRequest(src: Self.unbound, dst: F.correspondent, hopLimit: 64, dataSize: 400)
        let names = ["drop_unknown_mac", "attach_punt", "drop_punt_limited"]
        let before = try names.map { try env.counter($0) }
        #expect(try env.access(Self.fromNode(data, mac: mac)).verdict == Self.tcShot)
        let punts = try env.drainPunts()
        #expect(punts.count == 1)
        let p = try #require(punts.first)
        #expect(p.kind == UInt32(MIP6_PUNT_ATTACH.rawValue))
        #expect(p.srcMAC == mac && p.ifindex == env.a0)
        #expect(p.origLen == UInt32(data.count), "the packet's length")
        #expect(p.bytes == Array(data.prefix(Int(MIP6_PUNT_SMALL))), "its first MIP6_PUNT_SMALL bytes")
        #expect(try env.counter("drop_unknown_mac") == before[0] + 1)
        #expect(try env.counter("attach_punt") == before[1] + 1)

        // Again at once: the frame's fate is the same, no second trigger.
        #expect(try env.access(Self.fromNode(data, mac: mac)).verdict == Self.tcShot)
        #expect(try env.drainPunts().isEmpty)
        #expect(try env.counter("drop_unknown_mac") == before[0] + 2)
        #expect(try env.counter("attach_punt") == before[1] + 1)
        #expect(try env.counter("drop_punt_limited") == before[2] + 1)
    }

    @Test("an NS from an unknown MAC goes on to the kernel and is an attach trigger; held, it is neither")
    func attachTriggerND() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let mac: [UInt8] = [0x02, 0, 0, 0, 0xA7, 0x02]
        let dad = PacketBuilder.neighborSolicitation(target: IPv6Address("fe80::a7:2")!, source: .unspecified,
                                                     destination: IPv6Address("fe80::a7:2")!.solicitedNodeMulticast, sourceLinkLayer: nil)
        let frame = Self.fromNode(dad, mac: mac, dst: [0x33, 0x33, 0xFF, 0xA7, 0, 2])
        let (local, attach) = (try env.counter("pass_local"), try env.counter("attach_punt"))
        let r = try env.access(frame)
        #expect(r.verdict == Self.tcOK && r.output == frame)
        let punts = try env.drainPunts()
        #expect(punts.count == 1 && punts.first?.kind == UInt32(MIP6_PUNT_ATTACH.rawValue))
        #expect(punts.first?.srcMAC == mac && punts.first?.bytes == dad)
        #expect(try env.counter("pass_local") == local + 1 && env.counter("attach_punt") == attach + 1)

        // The control plane holds it: no trigger any more, ND still to the kernel, data not registered.
        try env.maps.hold(mac: mac, ifindex: env.a0)
        defer { try? env.maps.release(mac: mac) }
        try env.configure(attach: 0) // no limit: only holding stops the triggers
        defer { try? env.configure() }
        #expect(try env.access(frame).verdict == Self.tcOK)
        let notRegistered = try env.counter("drop_not_registered")
        #expect(try env.access(Self.fromNode(F.echoRequest(src: Self.unbound, dst: F.correspondent), mac: mac)).verdict == Self.tcShot)
        #expect(try env.counter("drop_not_registered") == notRegistered + 1)
        #expect(try env.drainPunts().isEmpty)
        #expect(try env.counter("attach_punt") == attach + 1)
    }

    @Test("a MAC held on one access link is an attach trigger on another (the node moved)")
    func attachTriggerOtherLink() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        try env.configure(attach: 0)
        defer { try? env.configure() }
        let ns = PacketBuilder.neighborSolicitation(target: Self.linkLocal, source: Self.mnLinkLocal,
                                                    destination: Self.linkLocal.solicitedNodeMulticast, sourceLinkLayer: Self.nodeMAC)
        let r = try env.access(Self.fromNode(ns, dst: [0x33, 0x33, 0xFF, 0, 0, 1]), on: env.a2)
        #expect(r.verdict == Self.tcOK)
        let punts = try env.drainPunts()
        #expect(punts.map(\.kind) == [UInt32(MIP6_PUNT_ATTACH.rawValue)])
        #expect(punts.first?.ifindex == env.a2 && punts.first?.srcMAC == Self.nodeMAC)
        // Its data there is another link's prefix: dropped as spoofed, and a trigger too.
        #expect(try env.access(Self.fromNode(Self.fromMN), on: env.a2).verdict == Self.tcShot)
        #expect(try env.drainPunts().map(\.ifindex) == [env.a2])
        // On its own link: neither.
        _ = try env.access(Self.fromNode(ns, dst: [0x33, 0x33, 0xFF, 0, 0, 1]))
        #expect(try env.drainPunts().isEmpty)
    }

    @Test("(9) a Router Solicitation reaches the ring whole and is dropped; another at once from that MAC is limited")
    func routerSolicitation() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let mac: [UInt8] = [0x02, 0, 0, 0, 0x85, 0x01]
        let rs = Self.routerSolicitation(mac: mac)
        let frame = Self.fromNode(rs, mac: mac, dst: [0x33, 0x33, 0, 0, 0, 2])
        let (punted, limited) = (try env.counter("rs_punt"), try env.counter("drop_punt_limited"))
        #expect(try env.access(frame).verdict == Self.tcShot)
        let punts = try env.drainPunts()
        #expect(punts.count == 1, "an RS is no attach trigger of its own: the daemon takes the RS as one")
        let p = try #require(punts.first)
        #expect(p.kind == UInt32(MIP6_PUNT_RS.rawValue) && p.ifindex == env.a0 && p.srcMAC == mac)
        #expect(p.bytes == rs && p.origLen == UInt32(rs.count))
        let parsed = IPv6PacketParser.parseRouterSolicitation(p.bytes)
        #expect(parsed?.source == Self.mnLinkLocal && parsed?.sourceLinkLayer == mac, "the RA code's parser takes it")
        #expect(try env.counter("rs_punt") == punted + 1)

        #expect(try env.access(frame).verdict == Self.tcShot)
        #expect(try env.drainPunts().isEmpty)
        #expect(try env.counter("drop_punt_limited") == limited + 1)
        #expect(try env.counter("rs_punt") == punted + 1)

        // With hop limit 254 it is no valid RS (RFC 4861 §6.1.1): ND for the kernel, which drops it.
        var relayed = rs
        relayed[7] = 254
        #expect(try env.access(Self.fromNode(relayed, mac: Self.nodeMAC, dst: [0x33, 0x33, 0, 0, 0, 2])).verdict == Self.tcOK)
        #expect(try env.counter("rs_punt") == punted + 1)
    }

    @Test("(7) the PBA reaches the ring byte for byte, and the control plane's parser takes it")
    func pbaRecord() throws {
        let env = try Self.env.get()
        _ = try env.drainPunts()
        let pba = Self.pba()
        #expect(try env.core(Self.fromCore(pba)).verdict == Self.tcShot)
        let punts = try env.drainPunts()
        #expect(punts.count == 1)
        #expect(punts.first?.kind == UInt32(MIP6_PUNT_MH.rawValue))
        #expect(punts.first?.ifindex == env.c0 && punts.first?.srcMAC == F.routerMAC)
        #expect(punts.first?.bytes == pba)
        let parsed = try IPv6PacketParser.parseMobility(punts.first?.bytes ?? [])
        #expect(parsed.source == Self.lma && parsed.destination == Self.proxyCoA)
    }

    // MARK: ICMPv6 errors

    @Test("(10) a packet too big for the tunnel: Packet Too Big back to the node from the shared link-local address and MAC")
    func packetTooBig() throws {
        let env = try Self.env.get()
        let big = F.echoRequest(src: Self.mn, dst: F.correspondent, hopLimit: 64, dataSize: 1500 - 48) // fills c0's MTU
        let (tooBig, encap) = (try env.counter("encap_too_big"), try env.counter("encap"))
        let r = try env.access(Self.fromNode(big))
        #expect(r.verdict == Self.tcRedirect, "out of the access link it came in on")
        #expect(Array(r.output.prefix(12)) == Self.nodeMAC + Self.sharedMAC)
        let ip = Array(r.output.dropFirst(14))
        #expect(ip.count == 1280, "the ICMPv6 error fills the minimum MTU")
        #expect(Array(ip[0..<8]) == [0x60, 0, 0, 0, 0x04, 0xD8, 58, 64])
        #expect(Array(ip[8..<24]) == Self.linkLocal.bytes)
        #expect(Array(ip[24..<40]) == Self.mn.bytes)
        #expect(ip[40] == 2 && ip[41] == 0)
        let mtu = UInt32(ip[44]) << 24 | UInt32(ip[45]) << 16 | UInt32(ip[46]) << 8 | UInt32(ip[47])
        #expect(mtu == 1460, "tunnel MTU = core MTU - 40")
        #expect(Array(ip[48...]) == Array(big.prefix(1232)), "quotes the packet as it came (hop limit untouched)")
        #expect(InternetChecksum.upperLayer(source: Self.linkLocal, destination: Self.mn, nextHeader: 58,
                                            payload: Array(ip[40...])) == 0, "checksum verifies to zero")
        #expect(try env.counter("encap_too_big") == tooBig + 1)
        #expect(try env.counter("encap") == encap)

        // Exactly the tunnel MTU: tunneled.
        let fits = F.echoRequest(src: Self.mn, dst: F.correspondent, hopLimit: 64, dataSize: 1460 - 48)
        let f = try env.access(Self.fromNode(fits))
        #expect(f.verdict == Self.tcRedirect && f.output == Self.encapsulated(fits))
    }

    @Test("a GSO skb is judged one segment at a time: segments that fit get no Packet Too Big")
    func gsoSegmentsFit() throws {
        let env = try Self.env.get()
        // 40 + 20 + 1400 + 40 = 1500. A test-run skb has no GSO type, so bpf_skb_adjust_room then
        // refuses it: counted, never sent on half-made.
        let tcp = F.tcpSegment(src: Self.mn, dst: F.correspondent, hopLimit: 64, dataSize: 1400 * 2)
        let (tooBig, gso) = (try env.counter("encap_too_big"), try env.counter("drop_encap_gso"))
        let r = try env.access(Self.fromNode(tcp), gsoSize: 1400, gsoSegs: 2)
        #expect(r.verdict == Self.tcShot)
        #expect(try env.counter("encap_too_big") == tooBig)
        #expect(try env.counter("drop_encap_gso") == gso + 1)
        // Segments of 1460 + 20 + 40 + 40 do not fit: Packet Too Big.
        let big = F.tcpSegment(src: Self.mn, dst: F.correspondent, hopLimit: 64, dataSize: 1460 * 2)
        let b = try env.access(Self.fromNode(big), gsoSize: 1460, gsoSegs: 2)
        #expect(b.verdict == Self.tcRedirect && b.output.count == 14 + 1280 && b.output[14 + 40] == 2)
        #expect(try env.counter("encap_too_big") == tooBig + 1)
    }

    // MARK: state

    @Test("(11) an entry whose lifetime is over forwards neither way; ND still goes to the kernel")
    func expired() throws {
        let env = try Self.env.get()
        try env.maps.install(Self.forwarding(ifindex: env.a0), expiresAt: 2)
        defer { try? env.maps.install(Self.forwarding(ifindex: env.a0), expiresAt: UInt64.max) }
        let (expired, encap, decap) = (try env.counter("drop_expired"), try env.counter("encap"), try env.counter("decap"))
        #expect(try env.access(Self.fromNode(Self.fromMN)).verdict == Self.tcShot)
        #expect(try env.core(Self.fromCore(Self.tunneled)).verdict == Self.tcShot)
        #expect(try env.counter("drop_expired") == expired + 2)
        #expect(try env.counter("encap") == encap && env.counter("decap") == decap)
        let nud = PacketBuilder.neighborSolicitation(target: Self.linkLocal, source: Self.mn, destination: Self.linkLocal,
                                                     sourceLinkLayer: Self.nodeMAC)
        #expect(try env.access(Self.fromNode(nud)).verdict == Self.tcOK)
    }

    @Test("next hop to the LMA unresolved: encapsulated, bpf_redirect_neigh; no route: dropped")
    func nextHops() throws {
        let env = try Self.env.get()
        let hnp2 = IPv6Prefix("2001:db8:a0:2::/64")!, hnp3 = IPv6Prefix("2001:db8:a0:3::/64")!
        let mac2: [UInt8] = [0x02, 0, 0, 0, 0, 0x62], mac3: [UInt8] = [0x02, 0, 0, 0, 0, 0x63]
        let f2 = Self.forwarding(mac: mac2, ifindex: env.a0, prefixes: [hnp2], lma: Self.lmaNoNeigh)
        let f3 = Self.forwarding(mac: mac3, ifindex: env.a0, prefixes: [hnp3], lma: Self.lmaUnreachable)
        try env.maps.install(f2, expiresAt: UInt64.max)
        try env.maps.install(f3, expiresAt: UInt64.max)
        defer {
            try? env.maps.remove(f2)
            try? env.maps.remove(f3)
            try? env.maps.release(mac: mac2)
            try? env.maps.release(mac: mac3)
        }
        let from2 = F.echoRequest(src: IPv6Address("2001:db8:a0:2::5")!, dst: F.correspondent, hopLimit: 64)
        let neigh = try env.counter("encap_redirect_neigh")
        let r = try env.access(Self.fromNode(from2, mac: mac2))
        #expect(r.verdict == Self.tcRedirect)
        // The MACs stay as they came: the kernel writes them once it knows the neighbour.
        var want = Self.encapsulated(from2, to: Self.lmaNoNeigh)
        want.replaceSubrange(0..<12, with: Self.sharedMAC + mac2)
        #expect(r.output == want, "got \(hex(r.output))")
        #expect(try env.counter("encap_redirect_neigh") == neigh + 1)

        let noRoute = try env.counter("drop_encap_no_route")
        let from3 = F.echoRequest(src: IPv6Address("2001:db8:a0:3::5")!, dst: F.correspondent, hopLimit: 64)
        #expect(try env.access(Self.fromNode(from3, mac: mac3)).verdict == Self.tcShot)
        #expect(try env.counter("drop_encap_no_route") == noRoute + 1)
    }

    @Test("the next-hop cache answers the second packet; a new generation sends it to the FIB again")
    func nextHopCache() throws {
        let env = try Self.env.get()
        _ = try env.access(Self.fromNode(Self.fromMN))
        let (hit, miss) = (try env.counter("nexthop_cache_hit"), try env.counter("nexthop_cache_miss"))
        #expect(try env.access(Self.fromNode(Self.fromMN)).output == Self.encapsulated(Self.fromMN))
        #expect(try env.counter("nexthop_cache_hit") == hit + 1)
        let gen = try #require(try env.maps.readConfig()).nh_gen
        try env.maps.bumpNextHopGeneration()
        #expect(try env.maps.readConfig()?.nh_gen == gen &+ 1)
        #expect(try env.access(Self.fromNode(Self.fromMN)).output == Self.encapsulated(Self.fromMN))
        #expect(try env.counter("nexthop_cache_miss") == miss + 1)
    }

    @Test("disabled: every packet passes untouched, both programs")
    func disabled() throws {
        let env = try Self.env.get()
        try env.configure(enabled: false)
        defer { try? env.configure() }
        let before = try env.counter("pass_other")
        let up = try env.access(Self.fromNode(Self.fromMN))
        #expect(up.verdict == Self.tcOK && up.output == Self.fromNode(Self.fromMN))
        let rs = Self.fromNode(Self.routerSolicitation(mac: Self.nodeMAC), dst: [0x33, 0x33, 0, 0, 0, 2])
        #expect(try env.access(rs).verdict == Self.tcOK, "not even RSs are taken")
        let down = try env.core(Self.fromCore(Self.tunneled))
        #expect(down.verdict == Self.tcOK && down.output == Self.fromCore(Self.tunneled))
        #expect(try env.counter("pass_other") == before + 3)
    }

    // MARK: the maps API

    @Test("install writes one /64 entry per prefix and holds the MAC; non-/64 prefixes and bad MACs are refused before any write")
    func installEntries() throws {
        let env = try Self.env.get()
        let p1 = IPv6Prefix("2001:db8:b0:1::/64")!, p2 = IPv6Prefix("2001:db8:b0:2::/64")!
        let mac: [UInt8] = [0x02, 0, 0, 0, 0xB0, 0x01]
        let f = Self.forwarding(mac: mac, ifindex: env.a2, prefixes: [p1, p2], lma: Self.otherLMA)
        try env.maps.install(f, expiresAt: 12345)
        defer {
            try? env.maps.remove(f)
            try? env.maps.release(mac: mac)
        }
        for p in [p1, p2] {
            let e = try #require(try env.maps.lookup(p))
            #expect(e.expires_ns == 12345 && IPv6Address(cAddress: e.lma) == Self.otherLMA)
            #expect(macBytes(e.mac) == mac && e.ifindex == env.a2 && e.flags == 0)
        }
        #expect(try env.maps.heldLink(mac: mac) == env.a2)
        #expect(Set(try env.maps.readNodes().map(\.0)).isSuperset(of: [p1, p2, Self.hnp]))

        let p3 = IPv6Prefix("2001:db8:b0:3::/64")!
        let wide = Self.forwarding(mac: [0x02, 0, 0, 0, 0xB0, 0x02], ifindex: env.a2, prefixes: [p3, IPv6Prefix("2001:db8:b1::/48")!])
        let e1 = #expect(throws: SystemError.self) { try env.maps.install(wide, expiresAt: 1) }
        #expect(e1?.errno.rawValue == EINVAL)
        #expect(try env.maps.lookup(p3) == nil && env.maps.heldLink(mac: [0x02, 0, 0, 0, 0xB0, 0x02]) == nil)
        let shortMAC = Self.forwarding(mac: [1, 2, 3], ifindex: env.a2, prefixes: [p3])
        let e2 = #expect(throws: SystemError.self) { try env.maps.install(shortMAC, expiresAt: 1) }
        #expect(e2?.errno.rawValue == EINVAL)
        #expect(try env.maps.lookup(p3) == nil)
        #expect(throws: SystemError.self) { try env.maps.hold(mac: [1, 2, 3, 4, 5, 6, 7], ifindex: 1) }
    }

    @Test("remove deletes only the entries still naming the node's MAC; the MAC stays held until released")
    func removeSemantics() throws {
        let env = try Self.env.get()
        let p = IPv6Prefix("2001:db8:c0:1::/64")!
        let old: [UInt8] = [0x02, 0, 0, 0, 0xC0, 0x01], new: [UInt8] = [0x02, 0, 0, 0, 0xC0, 0x02]
        let fOld = Self.forwarding(mac: old, ifindex: env.a0, prefixes: [p]), fNew = Self.forwarding(mac: new, ifindex: env.a2, prefixes: [p])
        defer {
            try? env.maps.remove(fNew)
            try? env.maps.release(mac: old)
            try? env.maps.release(mac: new)
        }
        try env.maps.install(fOld, expiresAt: UInt64.max)
        // The prefix goes to another node (the control plane's install for it) before the first one's removal.
        try env.maps.install(fNew, expiresAt: UInt64.max)
        try env.maps.remove(fOld)
        let e = try #require(try env.maps.lookup(p), "the new holder's entry stays")
        #expect(macBytes(e.mac) == new && e.ifindex == env.a2)
        #expect(try env.maps.heldLink(mac: old) == env.a0, "remove leaves the MAC held")

        try env.maps.remove(fNew)
        #expect(try env.maps.lookup(p) == nil)
        try env.maps.remove(fNew) // already gone: not an error
        try env.maps.release(mac: new)
        try env.maps.release(mac: new) // not held: not an error
        #expect(try env.maps.heldLink(mac: new) == nil)

        // Its uplink is now data from an unheld MAC with an unbound source.
        let unknown = try env.counter("drop_unknown_mac")
        let data = F.echoRequest(src: IPv6Address("2001:db8:c0:1::5")!, dst: F.correspondent, hopLimit: 64)
        #expect(try env.access(Self.fromNode(data, mac: new), on: env.a2).verdict == Self.tcShot)
        #expect(try env.counter("drop_unknown_mac") == unknown + 1)
        _ = try env.drainPunts()
    }

    @Test("setConfig writes every field and keeps the next-hop generation going")
    func config() throws {
        let env = try Self.env.get()
        defer { try? env.configure() }
        let gen = try #require(try env.maps.readConfig()).nh_gen
        try env.maps.setConfig(proxyCareOf: Self.proxyCoA, linkLocal: IPv6Address("fe80::2")!, mac: [2, 0, 0, 0, 0, 0xEF],
                               coreIfindex: 77, enabled: true, attachPuntInterval: 5, rsPuntInterval: 6, hopLimit: 9)
        let c = try #require(try env.maps.readConfig())
        #expect(IPv6Address(cAddress: c.proxy_coa) == Self.proxyCoA && IPv6Address(cAddress: c.link_local) == IPv6Address("fe80::2")!)
        #expect(macBytes(c.mac) == [2, 0, 0, 0, 0, 0xEF] && c.core_ifindex == 77 && c.flags == UInt32(MIP6_MAG_CFG_ENABLED))
        #expect(c.attach_punt_ns == 5 && c.rs_punt_ns == 6 && c.tunnel_hop_limit == 9 && c.nh_gen == gen &+ 1)
        #expect(throws: SystemError.self) {
            try env.maps.setConfig(proxyCareOf: Self.proxyCoA, linkLocal: Self.linkLocal, mac: [], coreIfindex: 0, enabled: true)
        }
    }

    @Test("map key and value sizes match MemoryLayout, every map is pinned by name, every counter has a name")
    func layout() throws {
        let env = try Self.env.get()
        let expected: [(String, Int, Int)] = [
            (MIP6_MAP_MAG_HNP, MemoryLayout<mip6_mag_hnp_key>.size, MemoryLayout<mip6_mag_node>.size),
            (MIP6_MAP_MAG_MACS, MemoryLayout<mip6_mag_mac_key>.size, MemoryLayout<mip6_mag_mac>.size),
            (MIP6_MAP_MAG_SEEN, MemoryLayout<mip6_mag_mac_key>.size, MemoryLayout<mip6_mag_seen>.size),
            (MIP6_MAP_MAG_CONFIG, 4, MemoryLayout<mip6_mag_config>.size),
            (MIP6_MAP_MAG_COUNTERS, 4, 8),
            (MIP6_MAP_MAG_NEXTHOP, MemoryLayout<mip6_addr_key>.size, MemoryLayout<mip6_nexthop>.size),
            (MIP6_MAP_MAG_ICMP_LIMIT, 4, MemoryLayout<mip6_token_bucket>.size),
        ]
        for (name, k, v) in expected {
            let s = try env.object.mapSizes(name)
            #expect(s.key == k && s.value == v, "\(name): libbpf \(s), Swift \(k)/\(v)")
        }
        #expect(Set(env.object.mapNames) == Set(MobileAccessGatewayMaps.pinnedNames))
        let names = (0..<UInt32(MIP6_MAG_CNT_MAX.rawValue)).map { cmip6_mag_counter_name($0).map { String(cString: $0) } ?? "" }
        #expect(!names.contains(""))
        #expect(Set(names).count == names.count, "counter names are unique")
        #expect(cmip6_mag_counter_name(UInt32(MIP6_MAG_CNT_MAX.rawValue)) == nil)
        #expect(try env.maps.counterValues().count == names.count)
    }

    // MARK: live

    @Test("live: the node's ping leaves c0 tunneled to the LMA's router, the LMA's tunnel reaches the node on a1; a short frame is dropped")
    func live() throws {
        let env = try Self.env.get()
        let (ns, a0, c0) = (env.ns, env.a0, env.c0)
        let (a1, c1) = (try ns.ifindex("a1"), try ns.ifindex("c1"))
        let access = try env.object.program(MIP6_PROG_MAG_ACCESS), core = try env.object.program(MIP6_PROG_MAG_CORE)
        let attachments = try ns.run {
            [try TCAttachment.mobileAccessGateway(access, ifindex: a0), try TCAttachment.mobileAccessGateway(core, ifindex: c0)]
        }
        defer { for a in attachments { try? a.detach() } }
        let names = ["encap_redirect", "decap", "drop_malformed"]
        let before = try names.map { try env.counter($0) }

        let ping = F.echoRequest(src: Self.mn, dst: F.correspondent, hopLimit: 64, identifier: 0x4D47, sequence: 3)
        let short = Array(Self.fromNode(ping).prefix(14 + 20))
        let (up, down): ([UInt8]?, [UInt8]?) = try ns.run {
            let node = try FrameTap(ifindex: a1), router = try FrameTap(ifindex: c1)
            try node.send(short)
            try node.send(Self.fromNode(ping))
            let up = try router.receive(within: 2.0) { f in f.count > 54 && f[12] == 0x86 && f[13] == 0xDD && f[14 + 6] == 41 }
            try router.send(Self.fromCore(Self.tunneled))
            let down = try node.receive(within: 2.0) { f in
                f.count >= 54 && f[12] == 0x86 && f[13] == 0xDD && Array(f[38..<54]) == Self.mn.bytes
            }
            return (up, down)
        }
        let tunnelPacket = try #require(up, "no tunnel packet on c1")
        #expect(tunnelPacket == Self.encapsulated(ping), "got \(hex(tunnelPacket))")
        let delivered = try #require(down, "no decapsulated packet on a1")
        #expect(delivered == Self.decapsulated(Self.toMN), "got \(hex(delivered))")
        for (i, n) in names.enumerated() {
            #expect(try env.counter(n) >= before[i] + 1, "counter \(n)")
        }
    }
}
