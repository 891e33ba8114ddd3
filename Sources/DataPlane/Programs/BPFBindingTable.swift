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
    private var staged: [Binding] = []
    /// Home address -> its binding before the first install staged in this drain.
    private var before: [IPv6Address: Binding?] = [:]
    /// Tests only: a write for these home addresses fails as the kernel would refuse it.
    var refuse: ((IPv6Address) -> Error?)?

    public init(maps: HomeAgentMaps, homeLinkIfindex: UInt32) {
        self.maps = maps
        self.homeLinkIfindex = homeLinkIfindex
    }

    public func install(_ binding: Binding) throws { try install(binding, isNew: true) }
    /// A refresh or move is one map update; a new binding also gets its slot (counters and
    /// next hop) first.
    public func install(_ binding: Binding, isNew: Bool) throws {
        if deferring {
            if before[binding.homeAddress] == nil { before[binding.homeAddress] = .some(current?(binding.homeAddress)) }
            staged.append(binding)
            return
        }
        if let error = refuse?(binding.homeAddress) { throw error }
        try maps.install(binding, ifindex: homeLinkIfindex)
        if droppedLinkLocal(binding, previous: current?(binding.homeAddress)) { try? maps.removeLinkLocal(of: binding.homeAddress) }
    }

    /// A refresh without L after one with it: the link-local entry can go (tidiness only: the
    /// data plane defends nothing for a binding without L).
    private func droppedLinkLocal(_ b: Binding, previous: Binding?) -> Bool {
        !b.flags.contains(.linkLocal) && previous?.flags.contains(.linkLocal) == true
    }

    public func remove(homeAddress: IPv6Address) throws {
        // Order matters: a removal after a staged install of the same address must win.
        staged.removeAll { $0.homeAddress == homeAddress }
        before[homeAddress] = nil
        try maps.remove(homeAddress)
    }

    public var stagedCount: Int { staged.count }

    /// What is staged, handed over instead of written (the shared store commits it first);
    /// `write(_:)` writes it later. Nothing stays staged.
    public func takeStaged() -> Staged {
        defer {
            staged.removeAll(keepingCapacity: true)
            before.removeAll(keepingCapacity: true)
        }
        var last: [IPv6Address: Binding] = [:]
        for b in staged { last[b.homeAddress] = b }
        return Staged(bindings: last, before: before)
    }

    public struct Staged: Sendable {
        public var bindings: [IPv6Address: Binding]
        public var before: [IPv6Address: Binding?]
        public init(bindings: [IPv6Address: Binding] = [:], before: [IPv6Address: Binding?] = [:]) {
            self.bindings = bindings
            self.before = before
        }
    }

    /// Writes bindings taken with `takeStaged()` (one batch); returns those the maps refused.
    public func write(_ s: Staged) -> [Refused] {
        let failed = maps.installBatch(Array(s.bindings.values), ifindex: homeLinkIfindex)
        for b in s.bindings.values where droppedLinkLocal(b, previous: s.before[b.homeAddress] ?? nil)
            && !failed.contains(where: { $0.0 == b.homeAddress }) {
            try? maps.removeLinkLocal(of: b.homeAddress)
        }
        return failed.map { Refused(homeAddress: $0.0, previous: s.before[$0.0] ?? nil, error: $0.1) }
    }

    /// A staged binding the maps refused: the maps still hold `previous` (nil: nothing).
    public struct Refused {
        public let homeAddress: IPv6Address
        public let previous: Binding?
        public let error: Error
    }

    /// Writes what was staged, one entry per home address (the last staged wins; a new one
    /// gets its slot); returns those the maps refused.
    public func flush() -> [Refused] {
        guard !staged.isEmpty else { return [] }
        defer {
            staged.removeAll(keepingCapacity: true)
            before.removeAll(keepingCapacity: true)
        }
        var last: [IPv6Address: Int] = [:]
        for (i, b) in staged.enumerated() { last[b.homeAddress] = i }
        var writes: [Binding] = []
        var refused: [Refused] = []
        for (i, b) in staged.enumerated() where last[b.homeAddress] == i {
            if let error = refuse?(b.homeAddress) {
                refused.append(Refused(homeAddress: b.homeAddress, previous: before[b.homeAddress] ?? nil, error: error))
            } else {
                writes.append(b)
            }
        }
        let failed = maps.installBatch(writes, ifindex: homeLinkIfindex)
        for (hoa, error) in failed {
            refused.append(Refused(homeAddress: hoa, previous: before[hoa] ?? nil, error: error))
        }
        for b in writes where droppedLinkLocal(b, previous: before[b.homeAddress] ?? nil)
            && !failed.contains(where: { $0.0 == b.homeAddress }) {
            try? maps.removeLinkLocal(of: b.homeAddress)
        }
        return refused
    }
}
