import CMip6
import ControlPlane
import Glibc

/// The home agent's maps, typed. Made from a freshly loaded object (the daemon) or
/// from the pins under --bpffs (the inspection commands, while the daemon runs).
public final class HomeAgentMaps {
    public let bindings: BPFMap<mip6_binding_key, mip6_binding>
    /// Per-binding traffic and the cached next hop of each care-of address, by mip6_binding.slot.
    public let bindingStats: BPFMap<UInt32, mip6_binding_stats>
    public let slotNextHops: BPFMap<UInt32, mip6_slot_nexthop>
    public let counters: BPFMap<UInt32, UInt64>
    public let config: BPFMap<UInt32, mip6_config>
    public let ifaces: BPFMap<UInt32, mip6_iface>
    public let locals: BPFMap<mip6_addr_key, UInt32>
    /// Link-local address -> home address, for bindings with the L flag (HomeAgentMaps+LinkLocal.swift).
    public let linkLocalProxy: BPFMap<mip6_addr_key, mip6_binding_key>

    /// The names of every map the home agent pins.
    public static let pinnedNames = [MIP6_MAP_BINDINGS, MIP6_MAP_BINDING_STATS, MIP6_MAP_SLOT_NEXTHOP, MIP6_MAP_COUNTERS, MIP6_MAP_CONFIG,
                                     MIP6_MAP_IFACES, MIP6_MAP_LOCAL_ADDRS, MIP6_MAP_PUNT, MIP6_MAP_PUNT_LIMIT, MIP6_MAP_SRC_LIMIT, MIP6_MAP_NEXTHOP,
                                     MIP6_MAP_ICMP_LIMIT, MIP6_MAP_FRAG_LIMIT, MIP6_MAP_LL_PROXY]

    public init(object: BPFObject) throws {
        bindings = try BPFMap(object.map(MIP6_MAP_BINDINGS))
        bindingStats = try BPFMap(object.map(MIP6_MAP_BINDING_STATS))
        slotNextHops = try BPFMap(object.map(MIP6_MAP_SLOT_NEXTHOP))
        counters = try BPFMap(object.map(MIP6_MAP_COUNTERS))
        config = try BPFMap(object.map(MIP6_MAP_CONFIG))
        ifaces = try BPFMap(object.map(MIP6_MAP_IFACES))
        locals = try BPFMap(object.map(MIP6_MAP_LOCAL_ADDRS))
        linkLocalProxy = try BPFMap(object.map(MIP6_MAP_LL_PROXY))
    }

    /// Opens the pins under `directory` (default /sys/fs/bpf/mip6).
    public init(pinnedAt directory: String) throws {
        func open(_ name: String) throws -> BPFMapHandle { try .pinned(name, in: directory, by: "mip6 ha") }
        bindings = try BPFMap(open(MIP6_MAP_BINDINGS))
        bindingStats = try BPFMap(open(MIP6_MAP_BINDING_STATS))
        slotNextHops = try BPFMap(open(MIP6_MAP_SLOT_NEXTHOP))
        counters = try BPFMap(open(MIP6_MAP_COUNTERS))
        config = try BPFMap(open(MIP6_MAP_CONFIG))
        ifaces = try BPFMap(open(MIP6_MAP_IFACES))
        locals = try BPFMap(open(MIP6_MAP_LOCAL_ADDRS))
        linkLocalProxy = try BPFMap(open(MIP6_MAP_LL_PROXY))
    }

    // MARK: configuration

    public func writeConfig(homeAgent: IPv6Address, homePrefix: IPv6Prefix, flags: UInt32,
                            limits: PuntLimits = .default) throws {
        var c: mip6_config = zeroed()
        (c.punt_cost_ns, c.punt_burst_ns) = PuntLimits.bucket(rate: limits.rate, burst: limits.burst)
        (c.src_cost_ns, c.src_burst_ns) = PuntLimits.bucket(rate: limits.perSourceRate, burst: limits.perSourceBurst)
        c.ha_addr = homeAgent.cAddress
        c.home_prefix = homePrefix.address.cAddress
        c.home_prefix_len = UInt8(homePrefix.length)
        c.tunnel_hop_limit = UInt8(MIP6_TUNNEL_HOP_LIMIT)
        c.flags = flags
        // The next-hop generation goes on from what an earlier daemon left pinned: starting
        // again at 0 would make the cache entries it stamped valid again as it climbs.
        if let pinned = try config.lookup(0) { c.nh_gen = pinned.nh_gen &+ 1 }
        try config.update(0, c)
    }

    public func readConfig() throws -> mip6_config? { try config.lookup(0) }

    /// Sets or clears config flags (read-modify-write; the control plane is the only writer).
    public func setConfigFlag(_ flag: UInt32, _ on: Bool) throws {
        guard var c = try config.lookup(0) else { return }
        let new = on ? c.flags | flag : c.flags & ~flag
        if new != c.flags {
            c.flags = new
            try config.update(0, c)
        }
    }

    /// Invalidates every cached next hop (route, neighbour or link change): the data plane
    /// goes back to bpf_fib_lookup and caches the new answer.
    public func bumpNextHopGeneration() throws {
        guard var c = try config.lookup(0) else { return }
        c.nh_gen &+= 1
        try config.update(0, c)
    }

    public func setInterface(ifindex: UInt32, mac: [UInt8], mtu: UInt32, attachment: Attachment? = nil) throws {
        var i: mip6_iface = zeroed()
        i.mac = cMAC(mac)
        i.mtu = mtu
        i.attach = attachment?.rawValue ?? UInt8(MIP6_ATTACH_NONE.rawValue)
        try ifaces.update(ifindex, i)
    }

    /// The interfaces the program is (or was, before a restart) attached to.
    public func readInterfaces() throws -> [(UInt32, mip6_iface)] { try ifaces.entries() }

    public func removeInterface(ifindex: UInt32) throws { try ifaces.delete(ifindex) }

    public func addLocalAddress(_ a: IPv6Address) throws {
        var k: mip6_addr_key = zeroed()
        k.addr = a.cAddress
        try locals.update(k, 1)
    }

    /// Makes mip6_locals exactly `addresses` (an address that left our interfaces is ours no
    /// more: its traffic may be a home address's again). Returns what was added and removed.
    @discardableResult
    public func setLocalAddresses(_ addresses: Set<IPv6Address>) throws -> (added: Int, removed: Int) {
        let present = Set(try locals.keys().map { IPv6Address(cAddress: $0.addr) })
        let gone = present.subtracting(addresses), new = addresses.subtracting(present)
        for a in gone {
            var k: mip6_addr_key = zeroed()
            k.addr = a.cAddress
            try locals.delete(k)
        }
        for a in new { try addLocalAddress(a) }
        return (new.count, gone.count)
    }

    // MARK: bindings

    public static func key(_ hoa: IPv6Address) -> mip6_binding_key {
        var k: mip6_binding_key = zeroed()
        k.hoa = hoa.cAddress
        return k
    }

    // MARK: slots

    /// Home address -> slot, built from the bindings map the first time one is needed (a
    /// restart adopts the pinned bindings' slots); nil again after `forgetSlots()`.
    private var slotOf: [IPv6Address: UInt32]?
    private var freeSlots: [UInt32] = []
    private var nextSlot: UInt32 = 0

    /// Someone else changed the bindings map (an operator's `mip6 bindings delete`): the
    /// next install reads the slots from the map again.
    public func forgetSlots() { slotOf = nil }

    private func slotTable() throws -> [IPv6Address: UInt32] {
        if let slotOf { return slotOf }
        var table: [IPv6Address: UInt32] = [:], used = Set<UInt32>()
        for (hoa, v) in try readBindings() where used.insert(v.slot).inserted { table[hoa] = v.slot }
        nextSlot = (used.max() ?? 0) &+ (used.isEmpty ? 0 : 1)
        freeSlots = (0..<nextSlot).filter { !used.contains($0) }.reversed()
        slotOf = table
        return table
    }

    /// The binding's slot; a new one (its counters and cached next hop zeroed: a slot is
    /// reused after its binding went) when the home address has none.
    private func slot(for hoa: IPv6Address) throws -> UInt32 {
        if let s = try slotTable()[hoa] { return s }
        let s: UInt32
        if let free = freeSlots.popLast() {
            s = free
        } else {
            guard nextSlot < (try bindings.handle.maxEntries()) else {
                throw SystemError("binding slot", errno: E2BIG, "every slot of \(MIP6_MAP_BINDING_STATS) is in use")
            }
            s = nextSlot
            nextSlot += 1
        }
        do {
            try bindingStats.update(s, zeroed())
            try slotNextHops.update(s, zeroed())
        } catch {
            freeSlots.append(s)
            throw error
        }
        slotOf?[hoa] = s
        return s
    }

    private func releaseSlot(of hoa: IPv6Address) {
        guard let s = slotOf?.removeValue(forKey: hoa) else { return }
        freeSlots.append(s)
    }

    // MARK: bindings

    /// Writes many bindings with one bpf_map_update_batch (a new one gets its slot first, an
    /// L one its link-local entry). Returns the ones that could not be written.
    public func installBatch(_ items: [Binding], ifindex: UInt32) -> [(IPv6Address, Error)] {
        var failed: [(IPv6Address, Error)] = []
        var pairs: [(mip6_binding_key, mip6_binding)] = []
        pairs.reserveCapacity(items.count)
        for b in items {
            var v = Self.value(b, ifindex: ifindex)
            do {
                if b.flags.contains(.linkLocal) { try addLinkLocal(of: b.homeAddress) }
                v.slot = try slot(for: b.homeAddress)
            } catch {
                failed.append((b.homeAddress, error))
                continue
            }
            pairs.append((Self.key(b.homeAddress), v))
        }
        var start = 0
        while start < pairs.count {
            start += bindings.updateBatch(pairs[start...])
            if start < pairs.count { // this one stopped the batch: learn why, go on after it
                do { try bindings.update(pairs[start].0, pairs[start].1) } catch {
                    failed.append((IPv6Address(cAddress: pairs[start].0.hoa), error))
                }
                start += 1
            }
        }
        return failed
    }

    static func value(_ b: Binding, ifindex: UInt32) -> mip6_binding {
        var v: mip6_binding = zeroed()
        v.coa = b.careOfAddress.cAddress
        v.expires_ns = b.expiresAt
        v.registered_ns = b.registeredAt
        v.lifetime_s = b.lifetime
        v.ifindex = ifindex
        v.seq = b.sequence
        v.flags = b.flags.rawValue
        return v
    }

    /// Writes the binding (one map update), in the slot it has or a new one (counters
    /// zeroed; a binding adopted from pinned state keeps its slot and counters); with the L
    /// flag, its link-local entry first. The slot is ready before the binding points at it.
    public func install(_ b: Binding, ifindex: UInt32) throws {
        var v = Self.value(b, ifindex: ifindex)
        // Its index first: the data plane defends the link-local address once the binding says L.
        if b.flags.contains(.linkLocal) { try addLinkLocal(of: b.homeAddress) }
        v.slot = try slot(for: b.homeAddress)
        try bindings.update(Self.key(b.homeAddress), v)
    }

    /// Removes the binding, its counters and its link-local entry (the binding first: without
    /// it neither the home address nor its link-local address is defended any more).
    public func remove(_ hoa: IPv6Address) throws {
        _ = try slotTable()
        try bindings.delete(Self.key(hoa))
        releaseSlot(of: hoa)
        try removeLinkLocal(of: hoa)
    }

    /// After a restart: the pinned bindings still live at `now` and inside `homePrefix`, as the
    /// control plane's bindings; the others are removed from the maps.
    public func adoptLiveBindings(now: UInt64, homePrefix: IPv6Prefix) throws -> [Binding] {
        var adopted: [Binding] = []
        for (hoa, v) in try readBindings() {
            if v.expires_ns <= now || !homePrefix.contains(hoa) {
                try remove(hoa)
                continue
            }
            adopted.append(Binding(homeAddress: hoa, careOfAddress: IPv6Address(cAddress: v.coa), sequence: v.seq,
                                   flags: BUFlags(rawValue: v.flags), lifetime: v.lifetime_s,
                                   registeredAt: v.registered_ns, expiresAt: v.expires_ns))
        }
        return adopted
    }

    /// Every binding in the map (for inspection and for adopting pinned state).
    public func readBindings() throws -> [(IPv6Address, mip6_binding)] {
        try bindings.entries().map { (IPv6Address(cAddress: $0.0.hoa), $0.1) }
    }

    /// Every binding's traffic counters.
    public func readBindingStats() throws -> [(IPv6Address, mip6_binding_stats)] {
        try readBindings().map { ($0.0, try bindingStats.lookup($0.1.slot) ?? zeroed()) }
    }

    /// Per-binding counters (zero when there is no such binding).
    public func stats(for hoa: IPv6Address) throws -> mip6_binding_stats {
        guard let b = try bindings.lookup(Self.key(hoa)) else { return zeroed() }
        return try bindingStats.lookup(b.slot) ?? zeroed()
    }

    /// Data-plane counters by name (mip6_shared.h order), summed over CPUs.
    public func readCounters() throws -> [(name: String, value: UInt64)] {
        try counters.namedCounters(count: UInt32(MIP6_CNT_MAX.rawValue), name: cmip6_counter_name)
    }
}

extension BPFObject {
    /// Sizes the home-agent object's per-binding maps (the bindings, their counters and their
    /// link-local entries, at most one per home address each) for `n` bindings, before load.
    public func setBindingCapacity(_ n: UInt32) throws(SystemError) {
        try setMaxEntries(map: MIP6_MAP_BINDINGS, n)
        try setMaxEntries(map: MIP6_MAP_BINDING_STATS, n)
        try setMaxEntries(map: MIP6_MAP_SLOT_NEXTHOP, n)
        try setMaxEntries(map: MIP6_MAP_LL_PROXY, n)
    }
}

/// Signaling punt limits (packets per second and burst; a rate of 0 = unlimited), overall
/// and per source /64. Turned into the data plane's nanosecond-credit token buckets.
public struct PuntLimits: Sendable, Equatable {
    public var rate: UInt32
    public var burst: UInt32
    public var perSourceRate: UInt32
    public var perSourceBurst: UInt32

    public init(rate: UInt32, burst: UInt32, perSourceRate: UInt32, perSourceBurst: UInt32) {
        self.rate = rate
        self.burst = burst
        self.perSourceRate = perSourceRate
        self.perSourceBurst = perSourceBurst
    }

    /// A site behind one access router (a conference network: thousands of mobile nodes whose
    /// care-of addresses share one /64) registers at once: one source /64 may send a burst of
    /// 2,500 BUs, then 1,000/s. All sources together: 20,000/s with a burst of 5,000, so one
    /// /64's burst leaves room for the others (test_scale.py, test_security.py).
    public static let `default` = PuntLimits(rate: 20_000, burst: 5_000, perSourceRate: 1_000, perSourceBurst: 2_500)
    public static let unlimited = PuntLimits(rate: 0, burst: 0, perSourceRate: 0, perSourceBurst: 0)

    static func bucket(rate: UInt32, burst: UInt32) -> (cost: UInt64, burst: UInt64) {
        guard rate > 0 else { return (0, 0) }
        let cost = 1_000_000_000 / UInt64(rate)
        return (cost, cost * UInt64(max(burst, 1)))
    }
}

