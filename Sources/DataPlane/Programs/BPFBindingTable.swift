import ControlPlane

/// Writes bindings through to the BPF maps (ControlPlane's BindingDataPlane). While
/// `deferring` (the daemon drains its signaling ring), installs are staged and written by
/// `flush()` in one bpf_map_update_batch, before any BA of that drain leaves.
public final class BPFBindingTable: BindingDataPlane {
    public let maps: HomeAgentMaps
    public let homeLinkIfindex: UInt32
    public var deferring = false
    private var staged: [(Binding, createStats: Bool)] = []

    public init(maps: HomeAgentMaps, homeLinkIfindex: UInt32) {
        self.maps = maps
        self.homeLinkIfindex = homeLinkIfindex
    }

    public func install(_ binding: Binding) throws { try install(binding, isNew: true) }
    /// A refresh or move is one map update; only a new binding also gets its counters entry.
    public func install(_ binding: Binding, isNew: Bool) throws {
        if deferring {
            staged.append((binding, isNew))
            return
        }
        try maps.install(binding, ifindex: homeLinkIfindex, createStats: isNew)
    }

    public func remove(homeAddress: IPv6Address) throws {
        // Order matters: a removal after a staged install of the same address must win.
        staged.removeAll { $0.0.homeAddress == homeAddress }
        try maps.remove(homeAddress)
    }

    public var stagedCount: Int { staged.count }

    /// Writes what was staged; returns the bindings that could not be written.
    public func flush() -> [(IPv6Address, Error)] {
        guard !staged.isEmpty else { return [] }
        defer { staged.removeAll(keepingCapacity: true) }
        return maps.installBatch(staged, ifindex: homeLinkIfindex)
    }
}
