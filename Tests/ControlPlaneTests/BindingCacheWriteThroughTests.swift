import Testing
@testable import ControlPlane

/// The cache tells the data plane whether a home address is new, so a refresh or a move
/// is one map update (the counters entry is made once, with the first binding).
@Suite("Binding cache: write-through of new and replaced bindings")
struct BindingCacheWriteThroughTests {
    final class Recorder: BindingDataPlane {
        var installs: [(IPv6Address, Bool)] = []
        func install(_ binding: Binding) throws { installs.append((binding.homeAddress, true)) }
        func install(_ binding: Binding, isNew: Bool) throws { installs.append((binding.homeAddress, isNew)) }
        func remove(homeAddress: IPv6Address) throws {}
    }

    @Test func newThenRefreshThenNewAgainAfterRemoval() throws {
        let dp = Recorder()
        let cache = BindingCache(capacity: 4, dataPlane: dp)
        let hoa = IPv6Address("2001:db8:1::100")!
        func binding(_ coa: String, _ seq: UInt16) -> Binding {
            Binding(homeAddress: hoa, careOfAddress: IPv6Address(coa)!, sequence: seq, flags: [.ack, .home],
                    lifetime: 60, registeredAt: 0, expiresAt: 60_000_000_000)
        }
        try cache.upsert(binding("2001:db8:f1::100", 1))
        try cache.upsert(binding("2001:db8:f2::100", 2)) // a move
        try cache.remove(hoa)
        try cache.upsert(binding("2001:db8:f1::100", 3))
        #expect(dp.installs.map(\.1) == [true, false, true])
    }
}
