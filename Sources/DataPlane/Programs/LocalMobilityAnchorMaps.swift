import CMip6
import ControlPlane
import Glibc

/// The local mobility anchor's maps, typed (bpf/mip6_lma.bpf.c). Made from a freshly loaded
/// object of `EmbeddedBPF.localMobilityAnchor` (the daemon) or from the pins under a
/// directory (the inspection commands).
///
/// The binding cache is keyed by home network prefix: one entry per /64 of a
/// `ProxyBinding`, each naming the MAG and the binding's expiry, which the data plane
/// checks itself (CLOCK_MONOTONIC, as `ProxyBinding.expiresAt`).
///
/// Sendable: it holds only map file descriptors, and every method is system calls on them,
/// which the kernel serializes (the daemon reads the counters from another thread).
public final class LocalMobilityAnchorMaps: ProxyBindingDataPlane, @unchecked Sendable {
    public let prefixes: BPFMap<mip6_lma_hnp_key, mip6_lma_binding>
    public let config: BPFMap<UInt32, mip6_lma_config>
    public let counters: BPFMap<UInt32, UInt64>
    /// The ring of punted Mobility Headers (struct mip6_punt_record, kind MIP6_PUNT_MH).
    public let punt: BPFMapHandle

    /// The names of every map the local mobility anchor pins.
    public static let pinnedNames = [MIP6_MAP_LMA_HNP, MIP6_MAP_LMA_CONFIG, MIP6_MAP_LMA_COUNTERS, MIP6_MAP_LMA_PUNT,
                                     MIP6_MAP_LMA_PUNT_LIMIT, MIP6_MAP_LMA_MAG_LIMIT, MIP6_MAP_LMA_NEXTHOP,
                                     MIP6_MAP_LMA_ICMP_LIMIT]

    public init(object: BPFObject) throws {
        prefixes = try BPFMap(object.map(MIP6_MAP_LMA_HNP))
        config = try BPFMap(object.map(MIP6_MAP_LMA_CONFIG))
        counters = try BPFMap(object.map(MIP6_MAP_LMA_COUNTERS))
        punt = try object.map(MIP6_MAP_LMA_PUNT)
    }

    /// Opens the pins under `directory`.
    public init(pinnedAt directory: String) throws {
        func open(_ name: String) throws -> BPFMapHandle { try .pinned(name, in: directory, by: "mip6 lma") }
        prefixes = try BPFMap(open(MIP6_MAP_LMA_HNP))
        config = try BPFMap(open(MIP6_MAP_LMA_CONFIG))
        counters = try BPFMap(open(MIP6_MAP_LMA_COUNTERS))
        punt = try open(MIP6_MAP_LMA_PUNT)
    }

    // MARK: configuration

    /// The whole config. `limits`: the signaling buckets, overall and per MAG (its
    /// `perSource*` fields; a MAG is one source address). `hopLimit`: the outer hop limit.
    public func setConfig(lmaAddress: IPv6Address, enabled: Bool, limits: PuntLimits = .default,
                          hopLimit: UInt8 = UInt8(MIP6_TUNNEL_HOP_LIMIT)) throws {
        var c: mip6_lma_config = zeroed()
        (c.punt_cost_ns, c.punt_burst_ns) = PuntLimits.bucket(rate: limits.rate, burst: limits.burst)
        (c.mag_cost_ns, c.mag_burst_ns) = PuntLimits.bucket(rate: limits.perSourceRate, burst: limits.perSourceBurst)
        c.lma_addr = lmaAddress.cAddress
        c.flags = enabled ? UInt32(MIP6_LMA_CFG_ENABLED) : 0
        c.tunnel_hop_limit = hopLimit
        // The next-hop generation goes on from what is there (pinned by an earlier daemon):
        // starting again at 0 would make the entries it stamped valid again as it climbs.
        if let old = try config.lookup(0) { c.nh_gen = old.nh_gen &+ 1 }
        try config.update(0, c)
    }

    public func readConfig() throws -> mip6_lma_config? { try config.lookup(0) }

    /// Invalidates every cached next hop to a MAG (route, neighbour or link change).
    public func bumpNextHopGeneration() throws {
        guard var c = try config.lookup(0) else { return }
        c.nh_gen &+= 1
        try config.update(0, c)
    }

    // MARK: bindings (ProxyBindingDataPlane)

    /// The map key of a home network prefix: its first 64 bits. Only /64s are keys (the data
    /// plane looks up the destination's or source's /64 exactly); anything else throws EINVAL.
    public static func key(_ prefix: IPv6Prefix) throws -> mip6_lma_hnp_key {
        guard prefix.length == 64 else {
            throw SystemError("mip6_lma_hnp key", errno: EINVAL, "\(prefix): home network prefixes are /64s")
        }
        var k: mip6_lma_hnp_key = zeroed()
        let b = prefix.address.bytes
        withUnsafeMutableBytes(of: &k.prefix) { raw in for i in 0..<8 { raw[i] = b[i] } }
        return k
    }

    static func value(_ b: ProxyBinding) -> mip6_lma_binding {
        var v: mip6_lma_binding = zeroed()
        v.expires_ns = b.expiresAt
        v.registered_ns = b.registeredAt
        v.mag = b.proxyCareOf.cAddress
        v.lifetime_s = b.lifetime
        return v
    }

    /// Writes one entry per prefix of `binding` (new MAG, expiry and lifetime), then deletes
    /// the entries of `previous`'s prefixes that `binding` no longer has. On a failure the
    /// prefixes written so far get their old entries back (or lose the new ones), so the
    /// previous state stays as it was, and the error is thrown.
    public func install(_ binding: ProxyBinding, previous: ProxyBinding?) throws {
        let keys = try binding.prefixes.map(Self.key)
        let value = Self.value(binding)
        if keys.count == 1 {
            // One prefix (the usual case): a failed update changed nothing, so there is nothing
            // to restore and no need to read the old entry first (a system call per PBU).
            try prefixes.update(keys[0], value)
        } else {
            var written: [(mip6_lma_hnp_key, mip6_lma_binding?)] = []
            do {
                for k in keys {
                    let old = try prefixes.lookup(k)
                    try prefixes.update(k, value)
                    written.append((k, old))
                }
            } catch {
                for (k, old) in written.reversed() {
                    if let old { _ = try? prefixes.update(k, old) } else { _ = try? prefixes.delete(k) }
                }
                throw error
            }
        }
        guard let previous else { return }
        let kept = Set(binding.prefixes)
        for p in previous.prefixes where !kept.contains(p) {
            try prefixes.delete(Self.key(p))
        }
    }

    /// Deletes the entries of `binding`'s prefixes; one already gone is not an error.
    public func remove(_ binding: ProxyBinding) throws {
        for p in binding.prefixes {
            try prefixes.delete(Self.key(p))
        }
    }

    /// Deletes `prefix`'s entry if it expired by `now` (CLOCK_MONOTONIC ns); one rewritten since
    /// with a later expiry stays. True if it deleted one.
    public func removeIfExpired(_ prefix: IPv6Prefix, now: UInt64) throws -> Bool {
        let k = try Self.key(prefix)
        guard let v = try prefixes.lookup(k), v.expires_ns <= now else { return false }
        try prefixes.delete(k)
        return true
    }

    /// Every entry: prefix (/64) -> its value.
    public func readPrefixes() throws -> [(IPv6Prefix, mip6_lma_binding)] {
        try prefixes.entries().map { entry in
            var key = entry.0
            let b = withUnsafeBytes(of: &key.prefix) { Array($0) } + [UInt8](repeating: 0, count: 8)
            return (IPv6Prefix(address: IPv6Address(bytes: b), length: 64)!, entry.1)
        }
    }

    /// The entry of one prefix, nil when it has none.
    public func lookup(_ prefix: IPv6Prefix) throws -> mip6_lma_binding? { try prefixes.lookup(Self.key(prefix)) }

    // MARK: counters

    /// Data-plane counters by name (mip6_shared.h order), summed over CPUs.
    public func readCounters() throws -> [(name: String, value: UInt64)] {
        try counters.namedCounters(count: UInt32(MIP6_LMA_CNT_MAX.rawValue), name: { cmip6_lma_counter_name($0) })
    }

    /// Every counter's name, in mip6_shared.h order (MIP6_LMA_COUNTERS).
    public static var counterNames: [String] {
        (0..<UInt32(MIP6_LMA_CNT_MAX.rawValue)).map { String(cString: cmip6_lma_counter_name($0)) }
    }

    /// The counters as a dictionary name -> sum over CPUs (for /metrics).
    public func counterValues() throws -> [String: UInt64] {
        try counters.counterDictionary(count: UInt32(MIP6_LMA_CNT_MAX.rawValue), name: { cmip6_lma_counter_name($0) })
    }

    /// One counter by its name ("encap", "decap", ...), summed over CPUs.
    public func counter(_ name: String) throws -> UInt64 {
        try counters.counter(named: name, count: UInt32(MIP6_LMA_CNT_MAX.rawValue), name: { cmip6_lma_counter_name($0) })
    }
}

extension BPFObject {
    /// Sizes the local mobility anchor's binding cache (home network prefixes) before load.
    public func setProxyBindingCapacity(_ n: UInt32) throws(SystemError) {
        try setMaxEntries(map: MIP6_MAP_LMA_HNP, n)
    }
}
