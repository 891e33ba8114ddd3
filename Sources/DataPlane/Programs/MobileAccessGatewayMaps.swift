import CMip6
import ControlPlane
import Glibc

/// The mobile access gateway's maps, typed (bpf/mip6_mag.bpf.c). Made from a freshly loaded
/// object of `EmbeddedBPF.mobileAccessGateway` (the daemon) or from the pins under a
/// directory (the inspection commands).
///
/// The Binding Update List is keyed by home network prefix: one entry per /64 of a
/// `MobileAccessGatewayForwarding`, each naming the node (MAC, access link), its LMA and the
/// binding's expiry, which the data plane checks itself (CLOCK_MONOTONIC). The MACs the
/// control plane holds (attached, registering or refused) are a map of their own: a frame
/// from any other MAC, or from a held one on another access link, is an attach trigger.
public final class MobileAccessGatewayMaps {
    public let nodes: BPFMap<mip6_mag_hnp_key, mip6_mag_node>
    public let macs: BPFMap<mip6_mag_mac_key, mip6_mag_mac>
    /// When each MAC last triggered a punt (the data plane's rate limit, LRU).
    public let seen: BPFMap<mip6_mag_mac_key, mip6_mag_seen>
    public let config: BPFMap<UInt32, mip6_mag_config>
    public let counters: BPFMap<UInt32, UInt64>
    /// The ring of punted packets (struct mip6_punt_record, kinds MIP6_PUNT_MH, _RS, _ATTACH).
    public let punt: BPFMapHandle

    /// The names of every map the mobile access gateway pins.
    public static let pinnedNames = [MIP6_MAP_MAG_HNP, MIP6_MAP_MAG_MACS, MIP6_MAP_MAG_SEEN, MIP6_MAP_MAG_CONFIG,
                                     MIP6_MAP_MAG_COUNTERS, MIP6_MAP_MAG_PUNT, MIP6_MAP_MAG_NEXTHOP,
                                     MIP6_MAP_MAG_ICMP_LIMIT]

    public init(object: BPFObject) throws {
        nodes = try BPFMap(object.map(MIP6_MAP_MAG_HNP))
        macs = try BPFMap(object.map(MIP6_MAP_MAG_MACS))
        seen = try BPFMap(object.map(MIP6_MAP_MAG_SEEN))
        config = try BPFMap(object.map(MIP6_MAP_MAG_CONFIG))
        counters = try BPFMap(object.map(MIP6_MAP_MAG_COUNTERS))
        punt = try object.map(MIP6_MAP_MAG_PUNT)
    }

    /// Opens the pins under `directory`.
    public init(pinnedAt directory: String) throws {
        func open(_ name: String) throws -> BPFMapHandle { try .pinned(name, in: directory, by: "mip6 mag") }
        nodes = try BPFMap(open(MIP6_MAP_MAG_HNP))
        macs = try BPFMap(open(MIP6_MAP_MAG_MACS))
        seen = try BPFMap(open(MIP6_MAP_MAG_SEEN))
        config = try BPFMap(open(MIP6_MAP_MAG_CONFIG))
        counters = try BPFMap(open(MIP6_MAP_MAG_COUNTERS))
        punt = try open(MIP6_MAP_MAG_PUNT)
    }

    // MARK: configuration

    /// The whole config. `mac`: FixedMAGLinkLayerAddressOnAllAccessLinks (RFC 5213 §9.3), the
    /// downlink frames' source; `linkLocal`: the shared link-local address, source of the
    /// ICMPv6 errors to the nodes; `coreIfindex`: where tunnels leave (0: wherever the FIB
    /// says). The intervals: at most one attach trigger / Router Solicitation per MAC per that
    /// many nanoseconds (0: no limit). `hopLimit`: the outer hop limit.
    public func setConfig(proxyCareOf: IPv6Address, linkLocal: IPv6Address, mac: [UInt8], coreIfindex: UInt32, enabled: Bool,
                          attachPuntInterval: UInt64 = 1_000_000_000, rsPuntInterval: UInt64 = 50_000_000,
                          hopLimit: UInt8 = UInt8(MIP6_TUNNEL_HOP_LIMIT)) throws {
        var c: mip6_mag_config = zeroed()
        c.proxy_coa = proxyCareOf.cAddress
        c.link_local = linkLocal.cAddress
        c.mac = try Self.macTuple(mac, "mip6_mag_config")
        c.tunnel_hop_limit = hopLimit
        c.flags = enabled ? UInt32(MIP6_MAG_CFG_ENABLED) : 0
        c.core_ifindex = coreIfindex
        c.attach_punt_ns = attachPuntInterval
        c.rs_punt_ns = rsPuntInterval
        // The next-hop generation goes on from what is there (pinned by an earlier daemon):
        // starting again at 0 would make the entries it stamped valid again as it climbs.
        if let old = try config.lookup(0) { c.nh_gen = old.nh_gen &+ 1 }
        try config.update(0, c)
    }

    public func readConfig() throws -> mip6_mag_config? { try config.lookup(0) }

    /// A restart starts with an empty Binding Update List: forget what an earlier daemon
    /// installed (its nodes' next frames are attach triggers again) and when each MAC last
    /// triggered, or a host heard less than a second before the restart would have its
    /// answer to the start-up solicitation dropped by the rate limit, and stay unregistered
    /// until it sends something else.
    public func forgetNodes() throws {
        for (key, _) in try nodes.entries() { _ = try? nodes.delete(key) }
        for (key, _) in try macs.entries() { _ = try? macs.delete(key) }
        for (key, _) in try seen.entries() { _ = try? seen.delete(key) }
    }

    /// Invalidates every cached next hop to an LMA (route, neighbour or link change).
    public func bumpNextHopGeneration() throws {
        guard var c = try config.lookup(0) else { return }
        c.nh_gen &+= 1
        try config.update(0, c)
    }

    // MARK: keys

    /// The map key of a home network prefix: its first 64 bits. Only /64s are keys (the data
    /// plane looks up the source's or destination's /64 exactly); anything else throws EINVAL.
    public static func key(_ prefix: IPv6Prefix) throws -> mip6_mag_hnp_key {
        guard prefix.length == 64 else {
            throw SystemError("mip6_mag_hnp key", errno: EINVAL, "\(prefix): home network prefixes are /64s")
        }
        var k: mip6_mag_hnp_key = zeroed()
        let b = prefix.address.bytes
        withUnsafeMutableBytes(of: &k.prefix) { raw in for i in 0..<8 { raw[i] = b[i] } }
        return k
    }

    /// The map key of a MAC, its padding zeroed (hash maps compare it); not 6 bytes: EINVAL.
    public static func key(mac: [UInt8]) throws -> mip6_mag_mac_key {
        var k: mip6_mag_mac_key = zeroed()
        k.mac = try macTuple(mac, "mip6_mag_macs key")
        return k
    }

    static func macTuple(_ mac: [UInt8], _ what: String) throws -> CMAC {
        guard mac.count == 6 else { throw SystemError(what, errno: EINVAL, "a MAC is 6 bytes, not \(mac.count)") }
        return cMAC(mac)
    }

    static func value(_ f: MobileAccessGatewayForwarding, expiresAt: UInt64) throws -> mip6_mag_node {
        var v: mip6_mag_node = zeroed()
        v.expires_ns = expiresAt
        v.lma = f.lma.cAddress
        v.mac = try macTuple(f.mac, "mip6_mag_hnp value")
        v.ifindex = f.ifindex
        return v
    }

    // MARK: nodes

    /// One entry per home network prefix of `f` (only /64s, else EINVAL before anything is
    /// written) naming its LMA, MAC and access link until `expiresAt` (CLOCK_MONOTONIC ns), and
    /// `f.mac` held on `f.ifindex`. On a failure every entry written so far gets its old value
    /// back (or goes), so the previous state stays as it was, and the error is thrown.
    public func install(_ f: MobileAccessGatewayForwarding, expiresAt: UInt64) throws {
        let keys = try f.homeNetworkPrefixes.map(Self.key)
        let value = try Self.value(f, expiresAt: expiresAt)
        let macKey = try Self.key(mac: f.mac)
        var written: [(mip6_mag_hnp_key, mip6_mag_node?)] = []
        do {
            for k in keys {
                let old = try nodes.lookup(k)
                try nodes.update(k, value)
                written.append((k, old))
            }
            try macs.update(macKey, Self.held(f.ifindex)) // last: when it throws it wrote nothing
        } catch {
            for (k, old) in written.reversed() {
                if let old { _ = try? nodes.update(k, old) } else { _ = try? nodes.delete(k) }
            }
            throw error
        }
    }

    /// Deletes `f`'s /64 entries, but only those that still name `f.mac`: another node may hold
    /// the prefix now (and its entry stays). The MAC stays held (`release` lets it go). An
    /// entry already gone is not an error.
    public func remove(_ f: MobileAccessGatewayForwarding) throws {
        let mac = try Self.macTuple(f.mac, "mip6_mag_hnp")
        for p in f.homeNetworkPrefixes {
            let k = try Self.key(p)
            guard let v = try nodes.lookup(k), macBytes(v.mac) == macBytes(mac) else { continue }
            try nodes.delete(k)
        }
    }

    /// Every entry: prefix (/64) -> its value.
    public func readNodes() throws -> [(IPv6Prefix, mip6_mag_node)] {
        try nodes.entries().map { entry in
            var key = entry.0
            let b = withUnsafeBytes(of: &key.prefix) { Array($0) } + [UInt8](repeating: 0, count: 8)
            return (IPv6Prefix(address: IPv6Address(bytes: b), length: 64)!, entry.1)
        }
    }

    /// The entry of one prefix, nil when it has none.
    public func lookup(_ prefix: IPv6Prefix) throws -> mip6_mag_node? { try nodes.lookup(Self.key(prefix)) }

    // MARK: MACs

    static func held(_ ifindex: UInt32) -> mip6_mag_mac {
        var v: mip6_mag_mac = zeroed()
        v.ifindex = ifindex
        return v
    }

    /// Holds `mac` on access link `ifindex` (mip6_mag_macs): its frames there are no attach
    /// triggers any more (attached, registering or refused: the control plane decides).
    public func hold(mac: [UInt8], ifindex: UInt32) throws {
        try macs.update(Self.key(mac: mac), Self.held(ifindex))
    }

    /// Lets `mac` go: its next frame is an attach trigger again. Not held is not an error.
    public func release(mac: [UInt8]) throws {
        try macs.delete(Self.key(mac: mac))
    }

    /// The access link `mac` is held on, nil when it is not held.
    public func heldLink(mac: [UInt8]) throws -> UInt32? { try macs.lookup(Self.key(mac: mac))?.ifindex }

    // MARK: counters

    /// Data-plane counters by name (mip6_shared.h order), summed over CPUs.
    public func readCounters() throws -> [(name: String, value: UInt64)] {
        try counters.namedCounters(count: UInt32(MIP6_MAG_CNT_MAX.rawValue), name: { cmip6_mag_counter_name($0) })
    }

    /// The counters as a dictionary name -> sum over CPUs (for /metrics).
    public func counterValues() throws -> [String: UInt64] {
        try counters.counterDictionary(count: UInt32(MIP6_MAG_CNT_MAX.rawValue), name: { cmip6_mag_counter_name($0) })
    }

    /// One counter by its name ("encap", "decap", ...), summed over CPUs.
    public func counter(_ name: String) throws -> UInt64 {
        try counters.counter(named: name, count: UInt32(MIP6_MAG_CNT_MAX.rawValue), name: { cmip6_mag_counter_name($0) })
    }
}

extension TCAttachment {
    /// One of the mobile access gateway's programs on clsact ingress: `mip6_mag_access` on every
    /// access link, `mip6_mag_core` on the core interface, in the MAG's own TC slot
    /// (MIP6_MAG_TC_HANDLE / _PRIORITY). A filter found there is replaced only when it runs one
    /// of the MAG's programs (left by a killed daemon); anyone else's makes this throw EEXIST.
    public static func mobileAccessGateway(_ program: BPFProgram, ifindex: UInt32) throws(SystemError) -> TCAttachment {
        try TCAttachment(program: program, ifindex: ifindex, direction: .ingress,
                         handle: MIP6_MAG_TC_HANDLE, priority: MIP6_MAG_TC_PRIORITY,
                         mayReplace: { [MIP6_PROG_MAG_ACCESS, MIP6_PROG_MAG_CORE].contains($0) })
    }
}
