import DataPlane
import CMip6
import ControlPlane

/// A loaded mobile-node program in a scratch namespace whose routes make every next-hop
/// case of the fixtures deterministic; the BPF tests share it.
///
///   m0 02:00:00:00:00:b0  2001:db8:f1::100/64 (the CoA), forwarding on (bpf_fib_lookup needs it)
///                         2001:db8:1::/64 (the HA) and default via 2001:db8:f1::1 (neighbour permanent)
///                         2001:db8:2::/64 via 2001:db8:f1::2 (neighbour unknown)
///                         2001:db8:ee::/64 unreachable
///   m2 02:00:00:00:00:b2  2001:db8:9::1/64, another interface of the mobile node
public final class MNFixtureEnvironment {
    public typealias F = PacketFixtures
    public static let mnMAC: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xB0]
    public static let m2MAC: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xB2]
    /// A home agent whose next hop has no neighbour entry.
    public static let haNoNeigh = IPv6Address("2001:db8:2::a")!
    /// A home agent behind an unreachable route.
    public static let haUnreachable = IPv6Address("2001:db8:ee::a")!

    public let ns: ScratchNamespace
    public let object: BPFObject
    public let maps: MobileNodeMaps
    public let m0: UInt32
    public let m2: UInt32
    public var punted: [(kind: UInt32, ifindex: UInt32, bytes: [UInt8])] = []
    public private(set) var ring: RingBuffer!

    public init(tag: String = "mn") throws {
        ns = try ScratchNamespace(tag)
        try ns.ip("""
            link set lo up
            link add m0 address 02:00:00:00:00:b0 type veth peer name m1 address 02:00:00:00:00:01
            link add m2 address 02:00:00:00:00:b2 type veth peer name m3
            link set m0 up
            link set m1 up
            link set m2 up
            link set m3 up
            -6 addr add 2001:db8:f1::100/64 dev m0 nodad
            -6 addr add 2001:db8:9::1/64 dev m2 nodad
            -6 neigh add 2001:db8:f1::1 lladdr 02:00:00:00:00:01 dev m0 nud permanent
            -6 route add 2001:db8:1::/64 via 2001:db8:f1::1 dev m0
            -6 route add 2001:db8:2::/64 via 2001:db8:f1::2 dev m0
            -6 route add default via 2001:db8:f1::1 dev m0
            -6 route add unreachable 2001:db8:ee::/64
            """)
        try ns.sysctl("net.ipv6.conf.m0.forwarding=1")
        m0 = try ns.ifindex("m0")
        m2 = try ns.ifindex("m2")
        object = try BPFObject(.mobileNode)
        try object.load()
        maps = try MobileNodeMaps(object: object)
        try maps.configure(homeAddress: F.homeAddress, homeAgent: F.homeAgent)
        try maps.tunnelUp(careOf: F.careOf, ifindex: m0, gateway: nil)
        ring = try RingBuffer(map: maps.punt) { [unowned self] rec in
            let hdr = rec.loadUnaligned(as: mip6_punt_hdr.self)
            let start = MemoryLayout<mip6_punt_hdr>.size
            self.punted.append((hdr.kind, hdr.ifindex, Array(rec[start..<start + Int(hdr.len)])))
        }
    }

    public func counter(_ name: String) throws -> UInt64 { try maps.counter(name) }

    /// One BPF_PROG_TEST_RUN of the ingress program on `frame`, received on `ifindex` (default m0).
    public func ingress(_ frame: [UInt8], ifindex: UInt32? = nil) throws -> BPFProgram.TestRun {
        try run(MIP6_PROG_MN_INGRESS, frame, ifindex: ifindex ?? m0)
    }

    /// One BPF_PROG_TEST_RUN of the egress program on `frame`, sent on `ifindex` (default m0).
    public func egress(_ frame: [UInt8], ifindex: UInt32? = nil) throws -> BPFProgram.TestRun {
        try run(MIP6_PROG_MN_EGRESS, frame, ifindex: ifindex ?? m0)
    }

    func run(_ name: String, _ frame: [UInt8], ifindex: UInt32) throws -> BPFProgram.TestRun {
        let program = try object.program(name)
        return try ns.run { try program.testRunSKB(frame, ifindex: ifindex) }
    }

    /// Records waiting in the punt ring, consumed.
    public func drainPunts() throws -> [(kind: UInt32, ifindex: UInt32, bytes: [UInt8])] {
        try ring.consume()
        defer { punted.removeAll() }
        return punted
    }
}
