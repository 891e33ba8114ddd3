import Logging
import Testing
@testable import ControlPlane

/// RFC 6275 §10.3.1 (and §9.5.1, §10.4.1), the Link-Local Address Compatibility (L) flag: the
/// home agent defends the mobile node's link-local address, fe80::/64 + the home address's
/// interface identifier, with the home address, for the binding's life.
@Suite("Home agent: link-local address defence (L flag)")
struct LinkLocalDefenceCoreTests {
    static let ll = addr("fe80::100")
    static let withL: BUFlags = [.ack, .home, .linkLocal]

    @Test func derivedLinkLocalKeepsTheInterfaceIdentifier() {
        #expect(addr("2001:db8:1::100").derivedLinkLocal == addr("fe80::100"))
        #expect(addr("2001:db8:1:2:a:b:c:d").derivedLinkLocal == addr("fe80::a:b:c:d"))
    }

    @Test func registrationWithLDefendsTheLinkLocalAddress() throws {
        let h = Harness()
        let actions = h.handle(h.bu(seq: 1, flags: Self.withL))
        #expect(actions.count == 3)
        #expect(actions[1] == .sendUnsolicitedNA(homeAddress: hoa, linkLocal: Self.ll))
        #expect(h.ack(actions)?.ba?.status == .accepted)
        #expect(h.cache.linkLocalOwner(Self.ll) == hoa)
        #expect(h.dataPlane.installed[hoa]?.flags.contains(.linkLocal) == true, "the data plane gets the flag")
        guard case .send(_, let description) = actions[2] else { Issue.record("\(actions)"); return }
        #expect(description.contains("link-local fe80::100 defended"), "the BA's log line says so: \(description)")
    }

    @Test func registrationWithoutLDefendsTheHomeAddressOnly() throws {
        let h = Harness()
        let actions = h.handle(h.bu(seq: 1))
        #expect(actions[1] == .sendUnsolicitedNA(homeAddress: hoa, linkLocal: nil))
        #expect(h.cache.linkLocalOwner(Self.ll) == nil)
        guard case .send(_, let description) = actions[2] else { Issue.record("\(actions)"); return }
        #expect(!description.contains("link-local"))
    }

    @Test func dadCoversTheLinkLocalAddressAndItsFailureRejects() throws {
        let h = Harness(dad: true)
        #expect(h.handle(h.bu(seq: 1, flags: Self.withL)) == [.startDAD(homeAddress: hoa, linkLocal: Self.ll)])
        // The daemon saw an NA for the link-local address: it reports the home address duplicate.
        let done = h.core.dadFinished(homeAddress: hoa, duplicate: true)
        #expect(h.ack(done)?.ba?.status == .duplicateAddressDetectionFailed)
        #expect(h.cache[hoa] == nil && h.cache.linkLocalOwner(Self.ll) == nil)
        // Without a duplicate: installed, both announced.
        #expect(h.handle(h.bu(seq: 2, flags: Self.withL)) == [.startDAD(homeAddress: hoa, linkLocal: Self.ll)])
        let ok = h.core.dadFinished(homeAddress: hoa, duplicate: false)
        #expect(ok[1] == .sendUnsolicitedNA(homeAddress: hoa, linkLocal: Self.ll))
        #expect(h.cache.linkLocalOwner(Self.ll) == hoa)
    }

    @Test func deregistrationStopsTheDefence() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1, flags: Self.withL))
        let actions = h.handle(h.bu(seq: 2, flags: Self.withL, lifetime: 0))
        #expect(h.ack(actions)?.ba?.status == .accepted)
        #expect(h.cache[hoa] == nil && h.dataPlane.installed[hoa] == nil)
        #expect(h.cache.linkLocalOwner(Self.ll) == nil)
    }

    @Test func expiryStopsTheDefence() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1, flags: Self.withL, lifetime: 10))
        h.clock.advance(seconds: 41)
        let actions = h.core.expire()
        guard actions.count == 1, case .bindingRemoved(let b, .expired) = actions[0] else { Issue.record("\(actions)"); return }
        #expect(b.homeAddress == hoa && b.flags.contains(.linkLocal))
        #expect(h.cache.linkLocalOwner(Self.ll) == nil && h.dataPlane.installed[hoa] == nil)
    }

    @Test func lOnARefreshIsAnnouncedAndLOffStopsTheDefence() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1))
        let on = h.handle(h.bu(seq: 2, flags: Self.withL))
        #expect(on.count == 3 && on[1] == .sendUnsolicitedNA(homeAddress: hoa, linkLocal: Self.ll), "newly defended: announced")
        #expect(h.cache.linkLocalOwner(Self.ll) == hoa)
        let again = h.handle(h.bu(seq: 3, flags: Self.withL))
        #expect(again.count == 2, "already defended: a refresh as any other")
        _ = h.handle(h.bu(seq: 4))
        #expect(h.cache.linkLocalOwner(Self.ll) == nil)
        #expect(h.dataPlane.installed[hoa]?.flags.contains(.linkLocal) == false)
    }

    @Test func ourOwnLinkLocalAddressIsADuplicate() throws {
        let h = Harness()
        let actions = h.core.handlePacket(h.bu(seq: 1, flags: Self.withL), localAddresses: [ha, Self.ll])
        #expect(h.ack(actions)?.ba?.status == .duplicateAddressDetectionFailed)
        #expect(h.cache[hoa] == nil)
        // Without L the same home address is fine: its link-local address is not asked for.
        let plain = h.core.handlePacket(h.bu(seq: 2), localAddresses: [ha, Self.ll])
        #expect(h.ack(plain)?.ba?.status == .accepted)
    }

    @Test func twoHomeAddressesWithOneInterfaceIdentifierUnderAShortPrefix() throws {
        // A /48 home prefix: 2001:db8:1:1::100 and 2001:db8:1:2::100 derive the same fe80::100.
        let clock = TestClock()
        let cache = BindingCache(capacity: 10, dataPlane: MockDataPlane())
        let core = HomeAgentCore(configuration: HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: IPv6Prefix("2001:db8:1::/48")!,
                                                                       duplicateAddressDetection: false),
                                 cache: cache, clock: clock, logger: Logger(label: "test"))
        let (first, second) = (addr("2001:db8:1:1::100"), addr("2001:db8:1:2::100"))
        func bu(_ home: IPv6Address, _ flags: BUFlags) -> [UInt8] {
            PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: flags, lifetime: 100), careOf: coa, homeAgent: ha, homeAddress: home)
        }
        let h = Harness()
        #expect(h.ack(core.handlePacket(bu(first, Self.withL), localAddresses: [ha]))?.ba?.status == .accepted)
        #expect(h.ack(core.handlePacket(bu(second, Self.withL), localAddresses: [ha]))?.ba?.status == .duplicateAddressDetectionFailed)
        #expect(h.ack(core.handlePacket(bu(second, [.ack, .home]), localAddresses: [ha]))?.ba?.status == .accepted)
        #expect(cache.linkLocalOwner(Self.ll) == first)
    }

    @Test func cacheRevertAndRestoreKeepTheIndex() throws {
        let cache = BindingCache(capacity: 10, dataPlane: MockDataPlane())
        let b = Binding(homeAddress: hoa, careOfAddress: coa, sequence: 1, flags: Self.withL, lifetime: 100, registeredAt: 0)
        try cache.upsert(b)
        cache.revert(hoa, to: nil) // the data plane refused it after all
        #expect(cache.linkLocalOwner(Self.ll) == nil)
        cache.restore([b]) // adopted at start
        #expect(cache.linkLocalOwner(Self.ll) == hoa)
        _ = try cache.remove(hoa)
        #expect(cache.linkLocalOwner(Self.ll) == nil)
    }
}
