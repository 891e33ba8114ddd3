import CMip6
import ControlPlane

/// RFC 6275 §10.3.1, L flag: the mobile node's link-local address (fe80::/64 + the home
/// address's interface identifier) is defended with its home address. mip6_ll_proxy maps it to
/// the home address; the data plane answers Neighbor Solicitations for it while that home
/// address's binding lives and carries L, and never tunnels to it. The binding is the truth:
/// an entry left behind (a refresh that dropped L, a write that failed half way) defends nothing.
extension HomeAgentMaps {
    static func linkLocalKey(_ hoa: IPv6Address) -> mip6_addr_key {
        var k: mip6_addr_key = zeroed()
        k.addr = hoa.derivedLinkLocal.cAddress
        return k
    }

    /// Points the derived link-local address of `hoa` at it.
    public func addLinkLocal(of hoa: IPv6Address) throws {
        try linkLocalProxy.update(Self.linkLocalKey(hoa), Self.key(hoa))
    }

    /// Removes the link-local entry of `hoa`, if it is that home address's (under a home prefix
    /// shorter than /64 another home address may derive the same one).
    public func removeLinkLocal(of hoa: IPv6Address) throws {
        let k = Self.linkLocalKey(hoa)
        guard let owner = try linkLocalProxy.lookup(k), IPv6Address(cAddress: owner.hoa) == hoa else { return }
        try linkLocalProxy.delete(k)
    }

    /// The home address whose link-local entry `linkLocal` is, if any (inspection).
    public func linkLocalEntry(_ linkLocal: IPv6Address) throws -> IPv6Address? {
        var k: mip6_addr_key = zeroed()
        k.addr = linkLocal.cAddress
        return try linkLocalProxy.lookup(k).map { IPv6Address(cAddress: $0.hoa) }
    }

    /// Every link-local entry: (link-local address, home address).
    public func readLinkLocal() throws -> [(IPv6Address, IPv6Address)] {
        try linkLocalProxy.entries().map { (IPv6Address(cAddress: $0.0.addr), IPv6Address(cAddress: $0.1.hoa)) }
    }

    /// Makes mip6_ll_proxy exactly the entries of the `bindings` that carry L (at start, over
    /// pinned state: entries whose binding went while no daemon ran go, missing ones come).
    @discardableResult
    public func syncLinkLocal(_ bindings: [Binding]) throws -> (added: Int, removed: Int) {
        var want: [IPv6Address: IPv6Address] = [:]
        for b in bindings where b.flags.contains(.linkLocal) { want[b.homeAddress.derivedLinkLocal] = b.homeAddress }
        var removed = 0
        for (ll, hoa) in try readLinkLocal() {
            if want[ll] == hoa {
                want[ll] = nil
                continue
            }
            var k: mip6_addr_key = zeroed()
            k.addr = ll.cAddress
            if try linkLocalProxy.delete(k) { removed += 1 }
        }
        for hoa in want.values { try addLinkLocal(of: hoa) }
        return (want.count, removed)
    }
}
