import ControlPlane

/// Writes bindings through to the BPF maps (ControlPlane's BindingDataPlane). While
/// `deferring` (the daemon drains its signaling ring), installs are staged and written by
/// `flush()` in one bpf_map_update_batch, before any BA of that drain leaves.
public final class BPFBindingTable: BindingDataPlane {
    public let maps: HomeAgentMaps
    public let homeLinkIfindex: UInt32
    public var deferring = false
    /// What the cache holds for a home address before a write (the cache writes the data
    /// plane first): staged installs remember it, so a refused one can be undone.
    public var current: ((IPv6Address) -> Binding?)?
    private var staged: [(Binding, createStats: Bool)] = []
    /// Home address -> its binding before the first install staged in this drain.
    private var before: [IPv6Address: Binding?] = [:]
    /// Tests only: a write for these home addresses fails as the kernel would refuse it.
    var refuse: ((IPv6Address) -> Error?)?

    public init(maps: HomeAgentMaps, homeLinkIfindex: UInt32) {
        self.maps = maps
        self.homeLinkIfindex = homeLinkIfindex
    }

    public func install(_ binding: Binding) throws { try install(binding, isNew: true) }
    /// A refresh or move is one map update; only a new binding also gets its counters entry.
    public func install(_ binding: Binding, isNew: Bool) throws {
        if deferring {
            if before[binding.homeAddress] == nil { before[binding.homeAddress] = .some(current?(binding.homeAddress)) }
            staged.append((binding, isNew))
            return
        }
        if let error = refuse?(binding.homeAddress) { throw error }
        try maps.install(binding, ifindex: homeLinkIfindex, createStats: isNew)
        if droppedLinkLocal(binding, previous: current?(binding.homeAddress)) { try? maps.removeLinkLocal(of: binding.homeAddress) }
    }

    /// A refresh without L after one with it: the link-local entry can go (tidiness only: the
    /// data plane defends nothing for a binding without L).
    private func droppedLinkLocal(_ b: Binding, previous: Binding?) -> Bool {
        !b.flags.contains(.linkLocal) && previous?.flags.contains(.linkLocal) == true
    }

    public func remove(homeAddress: IPv6Address) throws {
        // Order matters: a removal after a staged install of the same address must win.
        staged.removeAll { $0.0.homeAddress == homeAddress }
        before[homeAddress] = nil
        try maps.remove(homeAddress)
    }

    public var stagedCount: Int { staged.count }

    /// A staged binding the maps refused: the maps still hold `previous` (nil: nothing).
    public struct Refused {
        public let homeAddress: IPv6Address
        public let previous: Binding?
        public let error: Error
    }

    /// Writes what was staged, one entry per home address (the last staged wins; a new one
    /// gets its counters entry); returns those the maps refused.
    public func flush() -> [Refused] {
        guard !staged.isEmpty else { return [] }
        defer {
            staged.removeAll(keepingCapacity: true)
            before.removeAll(keepingCapacity: true)
        }
        var last: [IPv6Address: Int] = [:]
        var createStats: [IPv6Address: Bool] = [:]
        for (i, (b, create)) in staged.enumerated() {
            last[b.homeAddress] = i
            createStats[b.homeAddress, default: false] = createStats[b.homeAddress, default: false] || create
        }
        var writes: [(Binding, createStats: Bool)] = []
        var refused: [Refused] = []
        for (i, (b, _)) in staged.enumerated() where last[b.homeAddress] == i {
            if let error = refuse?(b.homeAddress) {
                refused.append(Refused(homeAddress: b.homeAddress, previous: before[b.homeAddress] ?? nil, error: error))
            } else {
                writes.append((b, createStats[b.homeAddress] ?? false))
            }
        }
        let failed = maps.installBatch(writes, ifindex: homeLinkIfindex)
        for (hoa, error) in failed {
            refused.append(Refused(homeAddress: hoa, previous: before[hoa] ?? nil, error: error))
        }
        for (b, _) in writes where droppedLinkLocal(b, previous: before[b.homeAddress] ?? nil)
            && !failed.contains(where: { $0.0 == b.homeAddress }) {
            try? maps.removeLinkLocal(of: b.homeAddress)
        }
        return refused
    }
}
