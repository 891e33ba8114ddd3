import DataPlane
import CMip6
import ControlPlane

/// A loaded home-agent program (or its benchmark wrappers) in a scratch namespace whose
/// routes give every next-hop case of the fixtures: the BPF tests and `mip6-bench xdp` share it.
///
///   t0 02:00:00:00:00:0a  2001:db8:1::a/64   2001:db8:f1::/64 and 2001:db8:c::/64 via 2001:db8:1::1 (neighbour known)
///                                             2001:db8:f2::/64 via 2001:db8:1::2 (neighbour unknown)
///   t2                    2001:db8:9::1/64   2001:db8:f3::/64 via 2001:db8:9::2 (another interface)
public final class XDPFixtureEnvironment {
    public typealias F = PacketFixtures
    public static let coaNoNeigh = IPv6Address("2001:db8:f2::100")!
    public static let coaRedirect = IPv6Address("2001:db8:f3::100")!
    public static let coaNoRoute = IPv6Address("2001:db8:ee::100")!
    public static let hoaNoNeigh = IPv6Address("2001:db8:1::102")!
    public static let hoaRedirect = IPv6Address("2001:db8:1::103")!
    public static let hoaNoRoute = IPv6Address("2001:db8:1::104")!
    /// A binding whose lifetime is over (expires_ns in the past) that no daemon removed.
    public static let hoaExpired = IPv6Address("2001:db8:1::105")!
    public static let coaExpired = IPv6Address("2001:db8:f1::105")!
    /// A binding registered with the L flag: its link-local address fe80::107 is defended too.
    public static let hoaLinkLocal = IPv6Address("2001:db8:1::107")!
    public static let coaLinkLocal = IPv6Address("2001:db8:f1::107")!

    public let ns: ScratchNamespace
    public let object: BPFObject
    public let maps: HomeAgentMaps
    public let t0: UInt32
    public var punted: [(kind: UInt32, bytes: [UInt8])] = []
    public private(set) var ring: RingBuffer!

    public init(object embedded: EmbeddedBPF = .homeAgent, tag: String = "xdp") throws {
        ns = try ScratchNamespace(tag)
        try ns.ip("""
            link set lo up
            link add t0 address 02:00:00:00:00:0a type veth peer name t1 address 02:00:00:00:00:01
            link add t2 type veth peer name t3
            link set t0 up
            link set t1 up
            link set t2 up
            link set t3 up
            -6 addr add 2001:db8:1::a/64 dev t0 nodad
            -6 addr add 2001:db8:9::1/64 dev t2 nodad
            -6 neigh add 2001:db8:1::1 lladdr 02:00:00:00:00:01 dev t0 nud permanent
            -6 neigh add 2001:db8:9::2 lladdr 02:00:00:00:00:99 dev t2 nud permanent
            -6 route add 2001:db8:f1::/64 via 2001:db8:1::1 dev t0
            -6 route add 2001:db8:c::/64 via 2001:db8:1::1 dev t0
            -6 route add 2001:db8:f2::/64 via 2001:db8:1::2 dev t0
            -6 route add 2001:db8:f3::/64 via 2001:db8:9::2 dev t2
            """)
        try ns.sysctl("net.ipv6.conf.all.forwarding=1")
        t0 = try ns.ifindex("t0")
        object = try BPFObject(embedded)
        try object.setBindingCapacity(1024)
        try object.load()
        maps = try HomeAgentMaps(object: object)
        try maps.writeConfig(homeAgent: F.homeAgent, homePrefix: F.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                             limits: .unlimited)
        try maps.setInterface(ifindex: t0, mac: F.haMAC, mtu: 1500)
        try maps.addLocalAddress(F.homeAgent)
        for (hoa, coa) in [(F.homeAddress, F.careOf), (Self.hoaNoNeigh, Self.coaNoNeigh),
                           (Self.hoaRedirect, Self.coaRedirect), (Self.hoaNoRoute, Self.coaNoRoute)] {
            try maps.install(Binding(homeAddress: hoa, careOfAddress: coa, sequence: 7, flags: [.ack, .home], lifetime: 600,
                                     registeredAt: 1, expiresAt: UInt64.max), ifindex: t0)
        }
        try maps.install(Binding(homeAddress: Self.hoaLinkLocal, careOfAddress: Self.coaLinkLocal, sequence: 7,
                                 flags: [.ack, .home, .linkLocal], lifetime: 600, registeredAt: 1, expiresAt: UInt64.max), ifindex: t0)
        try maps.install(Binding(homeAddress: Self.hoaExpired, careOfAddress: Self.coaExpired, sequence: 7, flags: [.ack, .home],
                                 lifetime: 4, registeredAt: 1, expiresAt: 2), ifindex: t0)
        ring = try RingBuffer(map: object.map(MIP6_MAP_PUNT)) { [unowned self] rec in
            let hdr = rec.loadUnaligned(as: mip6_punt_hdr.self)
            let start = MemoryLayout<mip6_punt_hdr>.size
            self.punted.append((hdr.kind, Array(rec[start..<start + Int(hdr.len)])))
        }
    }

    public func counter(_ name: String) throws -> UInt64 {
        try maps.readCounters().first { $0.name == name }?.value ?? 0
    }

    /// One BPF_PROG_TEST_RUN of `program` on `frame`, arriving on t0.
    public func run(_ frame: [UInt8], program name: String = MIP6_PROG_HA_XDP, repeat count: UInt32 = 1) throws -> BPFProgram.TestRun {
        let program = try object.program(name), t0 = self.t0
        return try ns.run { try program.testRun(frame, repeat: count, ingressIfindex: t0) }
    }

    /// Result of an skb test run that carried GSO fields.
    public struct SKBRun: Sendable {
        public let verdict: UInt32
        public let output: [UInt8]
        public let durationNanoseconds: UInt32
        /// The skb's gso_segs after the program ran (0 once GSO is reset or to be recomputed).
        public let gsoSegs: UInt32
    }

    /// One BPF_PROG_TEST_RUN of a TC program (default the home agent's, `mip6_ha_tc`) on
    /// `frame` as an skb on t0, optionally marked GSO (`gsoSize` > 0; the kernel cannot be
    /// told a gso_type, so bpf_skb_adjust_room treats it as a GSO type it does not know).
    /// TC_ACT_REDIRECT verdicts are reported, not carried out.
    public func runSKB(_ frame: [UInt8], program name: String = MIP6_PROG_HA_TC, repeat count: UInt32 = 1,
                       gsoSize: UInt32 = 0, gsoSegs: UInt32 = 0) throws -> SKBRun {
        let program = try object.program(name), t0 = self.t0
        return try ns.run {
            let r = try program.testRunSKB(frame, ifindex: t0, repeat: count, gsoSize: gsoSize, gsoSegs: gsoSegs)
            return SKBRun(verdict: r.verdict, output: r.output, durationNanoseconds: r.durationNanoseconds, gsoSegs: r.gsoSegs)
        }
    }
}
