import CMip6
import ControlPlane
import Glibc

/// The mobile node's maps, typed (bpf/mip6_mn.bpf.c). Made from a freshly loaded object
/// (the daemon) or from the pins under --bpffs (the inspection commands).
///
/// The config is one array element the programs read per packet; an update is a plain
/// copy, so a packet racing it may see the old care-of address with the new flags.
public final class MobileNodeMaps {
    public let config: BPFMap<UInt32, mip6_mn_config>
    public let counters: BPFMap<UInt32, UInt64>
    /// The ring of punted Mobility Headers (struct mip6_punt_record, kind MIP6_PUNT_MH).
    public let punt: BPFMapHandle

    /// The names of every map the mobile node pins.
    public static let pinnedNames = [MIP6_MAP_MN_CONFIG, MIP6_MAP_MN_COUNTERS, MIP6_MAP_MN_PUNT]

    public init(object: BPFObject) throws {
        config = try BPFMap(object.map(MIP6_MAP_MN_CONFIG))
        counters = try BPFMap(object.map(MIP6_MAP_MN_COUNTERS))
        punt = try object.map(MIP6_MAP_MN_PUNT)
    }

    /// Opens the pins under `directory`.
    public init(pinnedAt directory: String) throws {
        func open(_ name: String) throws -> BPFMapHandle { try .pinned(name, in: directory, by: "mip6 mn") }
        config = try BPFMap(open(MIP6_MAP_MN_CONFIG))
        counters = try BPFMap(open(MIP6_MAP_MN_COUNTERS))
        punt = try open(MIP6_MAP_MN_PUNT)
    }

    // MARK: configuration

    /// The whole config. `careOf`/`careOfIfindex` only matter while `tunnelUp`.
    public func writeConfig(homeAddress: IPv6Address, homeAgent: IPv6Address, careOf: IPv6Address?,
                            careOfIfindex: UInt32, tunnelUp: Bool) throws {
        var c: mip6_mn_config = zeroed()
        c.hoa = homeAddress.cAddress
        c.ha = homeAgent.cAddress
        c.coa = (careOf ?? .unspecified).cAddress
        c.coa_ifindex = careOfIfindex
        c.flags = tunnelUp ? UInt32(MIP6_MN_TUNNEL_UP) : 0
        try config.update(0, c)
    }

    /// At start-up (or at home): Mobility Headers from `homeAgent` are punted, nothing is tunneled.
    public func configure(homeAddress: IPv6Address, homeAgent: IPv6Address) throws {
        try writeConfig(homeAddress: homeAddress, homeAgent: homeAgent, careOf: nil, careOfIfindex: 0, tunnelUp: false)
    }

    /// A home registration was accepted for `careOf` on interface `ifindex`: decapsulate the home
    /// agent's tunnel to it and reverse-tunnel packets from the home address out of `ifindex`.
    /// `gateway`: the next hop to the home agent on that interface (nil: let the FIB decide),
    /// written with the interface in one update so the two never disagree.
    public func tunnelUp(careOf: IPv6Address, ifindex: UInt32, gateway: IPv6Address?) throws {
        guard var c = try config.lookup(0) else { throw SystemError("mip6_mn_config", errno: ENOENT, "configure() first") }
        c.coa = careOf.cAddress
        c.coa_ifindex = ifindex
        c.coa_gateway = (gateway ?? .unspecified).cAddress
        c.flags |= UInt32(MIP6_MN_TUNNEL_UP)
        if IPv6Address(cAddress: c.pending_coa) == careOf { c.pending_coa = IPv6Address.unspecified.cAddress }
        try config.update(0, c)
    }

    /// The next hop to the home agent on the care-of interface changed (a route event).
    /// Returns whether it did.
    @discardableResult
    public func setGateway(_ gateway: IPv6Address?) throws -> Bool {
        guard var c = try config.lookup(0) else { throw SystemError("mip6_mn_config", errno: ENOENT, "configure() first") }
        let new = (gateway ?? .unspecified).cAddress
        if IPv6Address(cAddress: c.coa_gateway) == IPv6Address(cAddress: new) { return false }
        c.coa_gateway = new
        try config.update(0, c)
        return true
    }

    /// A BU from `careOf` is outstanding (nil: none): accept the home agent's tunnel to it
    /// already, since the home agent switches as soon as it accepts the BU.
    public func setPendingCareOf(_ careOf: IPv6Address?) throws {
        guard var c = try config.lookup(0) else { throw SystemError("mip6_mn_config", errno: ENOENT, "configure() first") }
        let new = (careOf ?? .unspecified).cAddress
        if IPv6Address(cAddress: c.pending_coa) == IPv6Address(cAddress: new) { return }
        c.pending_coa = new
        try config.update(0, c)
    }

    /// No registration (lost, expired, or back home): tunneled packets are dropped and packets
    /// from the home address go out untouched. The last care-of address stays for inspection.
    public func tunnelDown() throws {
        guard var c = try config.lookup(0), c.flags & UInt32(MIP6_MN_TUNNEL_UP) != 0 else { return }
        c.flags &= ~UInt32(MIP6_MN_TUNNEL_UP)
        try config.update(0, c)
    }

    public func readConfig() throws -> mip6_mn_config? { try config.lookup(0) }

    // MARK: counters

    /// Data-plane counters by name (mip6_shared.h order), summed over CPUs.
    public func readCounters() throws -> [(name: String, value: UInt64)] {
        try counters.namedCounters(count: UInt32(MIP6_MN_CNT_MAX.rawValue), name: cmip6_mn_counter_name)
    }

    /// One counter by its name ("decap", "encap", ...), summed over CPUs.
    public func counter(_ name: String) throws -> UInt64 {
        try counters.counter(named: name, count: UInt32(MIP6_MN_CNT_MAX.rawValue), name: { cmip6_mn_counter_name($0) })
    }
}

extension TCAttachment {
    /// One of the mobile node's programs on an interface, in the mobile node's own TC slot
    /// (MIP6_MN_TC_HANDLE / _PRIORITY). A filter found there is replaced only when it runs
    /// one of our programs (left by a killed daemon); anyone else's makes this throw EEXIST.
    public static func mobileNode(_ program: BPFProgram, ifindex: UInt32, direction: TCDirection) throws(SystemError) -> TCAttachment {
        try TCAttachment(program: program, ifindex: ifindex, direction: direction,
                         handle: MIP6_MN_TC_HANDLE, priority: MIP6_MN_TC_PRIORITY,
                         mayReplace: { [MIP6_PROG_MN_INGRESS, MIP6_PROG_MN_EGRESS].contains($0) })
    }
}
