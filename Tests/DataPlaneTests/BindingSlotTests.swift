import CMip6
import ControlPlane
import Mip6TestSupport
import Testing
@testable import DataPlane

/// Per-binding counters and next hops live in arrays indexed by the binding's slot: the
/// encapsulation path costs one hash lookup (the binding).
@Suite("Binding slots", .serialized)
struct BindingSlotTests {
    typealias F = PacketFixtures
    nonisolated(unsafe) static let env: Result<XDPFixtureEnvironment, Error> = Result { try XDPFixtureEnvironment(tag: "slots") }
    static let hoa = IPv6Address("2001:db8:1::1f0")!

    func binding(_ coa: IPv6Address, seq: UInt16) -> Binding {
        Binding(homeAddress: Self.hoa, careOfAddress: coa, sequence: seq, flags: [.ack, .home], lifetime: 600,
                registeredAt: 1, expiresAt: UInt64.max)
    }

    @Test("a slot is handed out once, reused zeroed after its binding went, and kept by a refresh",
          .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
    func slotsAreReusedZeroed() throws {
        let env = try Self.env.get()
        let slots = Set(try env.maps.readBindings().map(\.1.slot))
        #expect(slots.count == (try env.maps.readBindings().count), "every fixture binding has a slot of its own")

        try env.maps.install(binding(F.careOf, seq: 1), ifindex: env.t0)
        let slot = try #require(try env.maps.bindings.lookup(HomeAgentMaps.key(Self.hoa))).slot
        #expect(!slots.contains(slot))
        _ = try env.run(F.ethernet(F.echoRequest(dst: Self.hoa)))
        #expect(try env.maps.stats(for: Self.hoa).to_mn_packets == 1)

        try env.maps.install(binding(F.careOf, seq: 2), ifindex: env.t0) // a refresh
        #expect(try env.maps.bindings.lookup(HomeAgentMaps.key(Self.hoa))?.slot == slot)
        #expect(try env.maps.stats(for: Self.hoa).to_mn_packets == 1, "a refresh keeps the counters")

        try env.maps.remove(Self.hoa)
        try env.maps.install(binding(F.careOf, seq: 3), ifindex: env.t0)
        #expect(try env.maps.bindings.lookup(HomeAgentMaps.key(Self.hoa))?.slot == slot, "the freed slot comes back")
        #expect(try env.maps.stats(for: Self.hoa).to_mn_packets == 0, "zeroed for its new binding")
        try env.maps.remove(Self.hoa)
    }

    @Test("the cached next hop is for the binding's sequence number: a move asks the FIB at once",
          .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
    func moveInvalidatesTheNextHop() throws {
        let env = try Self.env.get()
        // 2001:db8:f1::/64 leaves by t0 (XDP_TX), 2001:db8:f3::/64 by t2 (redirect).
        try env.maps.install(binding(F.careOf, seq: 10), ifindex: env.t0)
        defer { try? env.maps.remove(Self.hoa) }
        let frame = F.ethernet(F.echoRequest(dst: Self.hoa))
        #expect(try env.run(frame).verdict == 3) // XDP_TX
        let hits = try env.counter("nexthop_cache_hit")
        #expect(try env.run(frame).verdict == 3)
        #expect(try env.counter("nexthop_cache_hit") == hits + 1, "the second packet uses the slot's entry")

        try env.maps.install(binding(IPv6Address("2001:db8:f3::100")!, seq: 11), ifindex: env.t0)
        let misses = try env.counter("nexthop_cache_miss")
        #expect(try env.run(frame).verdict == 4, "moved: redirected to t2 at once, not a second later") // XDP_REDIRECT
        #expect(try env.counter("nexthop_cache_miss") == misses + 1)
    }

    @Test("a restart adopts the pinned bindings' slots: no slot is handed out twice",
          .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
    func adoptionKeepsSlots() throws {
        let env = try Self.env.get()
        let fresh = try HomeAgentMaps(object: env.object) // what a restarted daemon opens
        let taken = Set(try fresh.readBindings().map(\.1.slot))
        try fresh.install(binding(F.careOf, seq: 20), ifindex: env.t0)
        defer { try? fresh.remove(Self.hoa) }
        let slot = try #require(try fresh.bindings.lookup(HomeAgentMaps.key(Self.hoa))).slot
        #expect(!taken.contains(slot))
    }
}
