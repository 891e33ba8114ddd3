import Logging
import Testing
@testable import ControlPlane

/// Records what the LMA wrote through: prefix -> MAG; can be told to fail.
final class MockProxyDataPlane: ProxyBindingDataPlane {
    var routes: [IPv6Prefix: IPv6Address] = [:]
    var failInstalls = false
    var failRemoves = false

    func install(_ binding: ProxyBinding, previous: ProxyBinding?) throws {
        if failInstalls { throw DataPlaneFailure() }
        for p in previous?.prefixes ?? [] where !binding.prefixes.contains(p) { routes[p] = nil }
        for p in binding.prefixes { routes[p] = binding.proxyCareOf }
    }

    func remove(_ binding: ProxyBinding) throws {
        if failRemoves { throw DataPlaneFailure() }
        for p in binding.prefixes { routes[p] = nil }
    }
}

/// RFC 5213 §5: the LMA's checks in their order, the binding cache, prefix assignment,
/// handoff, de-registration and expiry, through real PBU bytes and the PBAs it sends.
@Suite("Local mobility anchor core (RFC 5213 §5)")
final class LocalMobilityAnchorCoreTests {
    static let lmaAddress = addr("2001:db8:a::1")
    static let mag1 = addr("2001:db8:b1::2"), mag2 = addr("2001:db8:b2::2")
    static let fixed = IPv6Prefix("2001:db8:200:1::/64")!
    static let policyText = """
        mag 2001:db8:b1::2
        mag 2001:db8:b2::2
        pool 2001:db8:100::/48
        mn fixed@pmip.example mac 02:00:00:00:0a:01 prefix 2001:db8:200:1::/64
        mn pool@pmip.example mac 02:00:00:00:0a:02 prefix pool
        mn pool2@pmip.example mac 02:00:00:00:0a:03 prefix pool
        mn two@pmip.example mac 02:00:00:00:0a:04 prefix 2001:db8:200:4::/64,2001:db8:200:5::/64
        mn elsewhere@pmip.example mac 02:00:00:00:0a:05 prefix 2001:db8:200:6::/64 lma 2001:db8:a::99
        """

    let clock = TestClock()
    let wall: TestWallClock
    let dataPlane = MockProxyDataPlane()
    let lma: LocalMobilityAnchorCore
    var sequence: UInt16 = 100

    init() throws {
        wall = TestWallClock(following: clock)
        lma = LocalMobilityAnchorCore(configuration: LocalMobilityAnchorConfiguration(address: Self.lmaAddress, maxLifetime: 600),
                                      policy: try ProxyPolicy(parsing: Self.policyText), dataPlane: dataPlane,
                                      clock: clock, wallClock: wall, logger: Logger(label: "test"))
    }

    var now: ProxyTimestamp { ProxyTimestamp.now(wall) }

    /// A PBU as a MAG sends it; `drop` leaves out options by type.
    func pbu(_ nai: String = "fixed@pmip.example", prefixes: [IPv6Prefix] = [LocalMobilityAnchorCoreTests.fixed], from mag: IPv6Address = LocalMobilityAnchorCoreTests.mag1,
                      lifetime: UInt16 = 15, timestamp: ProxyTimestamp? = nil, hi: UInt8 = 1, drop: Set<UInt8> = []) -> [UInt8] {
        sequence &+= 1
        var options: [MobilityOption] = [.mobileNodeIdentifier(subtype: 1, identifier: Array(nai.utf8))]
        options += prefixes.map { .homeNetworkPrefix($0) }
        options += [.handoffIndicator(hi), .accessTechnologyType(3), .mobileNodeLinkLayerIdentifier([2, 0, 0, 0, 0x0a, 1]),
                    .timestamp(timestamp ?? now)]
        options.removeAll { drop.contains($0.type) }
        return PacketBuilder.proxyBindingUpdate(BindingUpdate(sequence: sequence, flags: [.ack, .proxy], lifetime: lifetime, options: options),
                                                from: mag, to: Self.lmaAddress)
    }

    /// The PBA among `actions` (decoded), and whether an `.installed` came before it.
    func pba(_ actions: [LocalMobilityAnchorAction], to mag: IPv6Address = LocalMobilityAnchorCoreTests.mag1) throws -> BindingAcknowledgement {
        let sends = actions.compactMap { if case let .send(p, _) = $0 { return p } else { return nil } }
        #expect(sends.count == 1)
        let packet = try IPv6PacketParser.parseMobility(try #require(sends.first))
        #expect(packet.source == Self.lmaAddress && packet.destination == mag && packet.routingType2Address == nil)
        guard case let .bindingAcknowledgement(ba) = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource,
                                                                                    destination: packet.checksumDestination) else {
            Issue.record("not a BA")
            throw DataPlaneFailure()
        }
        #expect(ba.isProxy)
        return ba
    }

    @Test("a first registration: in the data plane before the PBA, which mirrors the PBU's options")
    func firstRegistration() throws {
        let stamp = now
        let actions = lma.handlePacket(pbu(timestamp: stamp))
        guard case .installed(let b) = actions.first else { Issue.record("\(actions)"); return }
        #expect(b.prefixes == [Self.fixed] && b.proxyCareOf == Self.mag1 && b.lifetime == 60 && b.isActive)
        let ba = try pba(actions)
        #expect(ba.status == .accepted && ba.sequence == sequence && ba.lifetime == 15)
        let o = ba.proxyOptions
        #expect(o.networkAccessIdentifier == "fixed@pmip.example" && o.homeNetworkPrefixes == [Self.fixed])
        #expect(o.handoffIndicators == [1] && o.accessTechnologyTypes == [3] && o.timestamps == [stamp])
        #expect(o.linkLayerIdentifiers == [[2, 0, 0, 0, 0x0a, 1]])
        #expect(dataPlane.routes == [Self.fixed: Self.mag1])
        #expect(lma.counters.registrations == 1)
    }

    @Test("a pool node gets a /64 from the pool, keeps it across refreshes and moves; another node gets another")
    func poolAssignment() throws {
        let zero = IPv6Prefix(address: .unspecified, length: 0)!
        let first = try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [zero])))
        let assigned = try #require(first.proxyOptions.homeNetworkPrefixes.first)
        #expect(first.status == .accepted && assigned.length == 64 && IPv6Prefix("2001:db8:100::/48")!.contains(assigned.address))
        clock.advance(seconds: 1)
        let again = try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [zero], from: Self.mag2, hi: 3)), to: Self.mag2)
        #expect(again.proxyOptions.homeNetworkPrefixes == [assigned], "the prefix follows the node")
        #expect(dataPlane.routes[assigned] == Self.mag2 && lma.counters.handoffs == 1)
        clock.advance(seconds: 1)
        let named = try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [assigned], from: Self.mag2, hi: 5)), to: Self.mag2)
        #expect(named.status == .accepted && lma.counters.refreshes == 1)
        let other = try pba(lma.handlePacket(pbu("pool2@pmip.example", prefixes: [zero])))
        #expect(other.status == .accepted && other.proxyOptions.homeNetworkPrefixes.first != assigned)
        #expect(lma.counters.prefixesAssigned == 2)
    }

    @Test("after a restart, a pool node's MAG refreshes with the prefix it was given: taken back unless another node holds it")
    func poolPrefixReclaimedAfterRestart() throws {
        // What a restarted LMA sees: a refresh (HI 5) naming a pool /64 it has no entry for.
        let given = IPv6Prefix("2001:db8:100:7::/64")!
        let back = try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [given], hi: 5)))
        #expect(back.status == .accepted && back.proxyOptions.homeNetworkPrefixes == [given])
        #expect(dataPlane.routes[given] == Self.mag1 && lma.counters.poolReclaims == 1)
        // Held now: another pool node cannot take it; a fixed node's prefix or one outside the
        // pool is never reclaimed.
        clock.advance(seconds: 1)
        #expect(try pba(lma.handlePacket(pbu("pool2@pmip.example", prefixes: [given], hi: 5))).status.rawValue == 155)
        #expect(try pba(lma.handlePacket(pbu("pool2@pmip.example", prefixes: [Self.fixed], hi: 5))).status.rawValue == 155)
        #expect(try pba(lma.handlePacket(pbu("pool2@pmip.example", prefixes: [IPv6Prefix("2001:db8:900:1::/64")!], hi: 5)))
            .status.rawValue == 155)
        #expect(try pba(lma.handlePacket(pbu("fixed@pmip.example", prefixes: [IPv6Prefix("2001:db8:100:8::/64")!], hi: 5)))
            .status.rawValue == 155, "a node with its own prefixes takes nothing from the pool")
        #expect(lma.counters.poolReclaims == 1)
    }

    @Test("every refusal of §5.3.1 in its order, each with nothing written")
    func refusals() throws {
        func status(_ packet: [UInt8], to mag: IPv6Address = LocalMobilityAnchorCoreTests.mag1) throws -> UInt8 { try pba(lma.handlePacket(packet), to: mag).status.rawValue }
        #expect(try status(pbu(from: addr("2001:db8:b9::2")), to: addr("2001:db8:b9::2")) == 154)
        #expect(try status(pbu(drop: [MobilityOption.Kind.mobileNodeIdentifier])) == 160)
        #expect(try status(pbu(drop: [MobilityOption.Kind.homeNetworkPrefix])) == 158)
        #expect(try status(pbu(drop: [MobilityOption.Kind.handoffIndicator])) == 161)
        #expect(try status(pbu(drop: [MobilityOption.Kind.accessTechnologyType])) == 162)
        #expect(try status(pbu("stranger@pmip.example")) == 152)
        #expect(try status(pbu("elsewhere@pmip.example", prefixes: [IPv6Prefix("2001:db8:200:6::/64")!])) == 153)
        #expect(try status(pbu(prefixes: [IPv6Prefix("2001:db8:200:4::/64")!])) == 155, "another node's prefix")
        #expect(try status(pbu(drop: [MobilityOption.Kind.timestamp])) == 156)
        #expect(dataPlane.routes.isEmpty && lma.count == 0)
        // A node with two prefixes registers both; a PBU naming one of them no longer matches.
        let two = [IPv6Prefix("2001:db8:200:4::/64")!, IPv6Prefix("2001:db8:200:5::/64")!]
        #expect(try status(pbu("two@pmip.example", prefixes: two)) == 0)
        clock.advance(seconds: 0.1)
        #expect(try status(pbu("two@pmip.example", prefixes: [two[0]])) == 159)
        #expect(dataPlane.routes == [two[0]: Self.mag1, two[1]: Self.mag1])
    }

    @Test("timestamps: off by more than 300 ms is 156 with our time in the PBA; not newer than the last is 157")
    func timestamps() throws {
        let ahead = ProxyTimestamp(rawValue: now.rawValue + 65536 / 2) // +500 ms
        let ba = try pba(lma.handlePacket(pbu(timestamp: ahead)))
        #expect(ba.status == .timestampMismatch)
        let theirs = try #require(ba.proxyOptions.timestamps.first)
        #expect(abs(theirs.milliseconds(since: now)) <= 1, "the PBA carries the LMA's clock, not the PBU's")
        #expect(try pba(lma.handlePacket(pbu(timestamp: ProxyTimestamp(rawValue: now.rawValue + 65536 / 5)))).status == .accepted,
                "+200 ms is inside the window")
        let accepted = try #require(lma["fixed@pmip.example"]).timestamp
        #expect(try pba(lma.handlePacket(pbu(timestamp: accepted))).status == .timestampLowerThanPreviousAccepted, "a replay")
        #expect(try pba(lma.handlePacket(pbu(timestamp: ProxyTimestamp(rawValue: accepted.rawValue - 1)))).status.rawValue == 157)
    }

    @Test("handoff: the new MAG takes the prefix; the old MAG's late de-registration changes nothing")
    func handoffAndLateDeregistration() throws {
        _ = lma.handlePacket(pbu())
        clock.advance(seconds: 0.05)
        let oldStamp = now
        clock.advance(seconds: 0.05)
        #expect(try pba(lma.handlePacket(pbu(from: Self.mag2, hi: 3)), to: Self.mag2).status == .accepted)
        #expect(dataPlane.routes == [Self.fixed: Self.mag2])
        // MAG1 saw the detach before MAG2's PBU but its de-registration arrives after.
        let late = lma.handlePacket(pbu(from: Self.mag1, lifetime: 0, timestamp: oldStamp))
        #expect(try pba(late).status == .accepted)
        #expect(!late.contains { if case .removed = $0 { return true } else { return false } })
        #expect(dataPlane.routes == [Self.fixed: Self.mag2] && lma["fixed@pmip.example"]?.isActive == true)
        #expect(lma.counters.staleDeregistrations == 1 && lma.counters.handoffs == 1)
    }

    @Test("de-registration by the serving MAG: forwarding stops, the entry and its pool prefix wait MinDelayBeforeBCEDelete")
    func deregistrationKeepsTheEntryAWhile() throws {
        let zero = IPv6Prefix(address: .unspecified, length: 0)!
        let assigned = try #require(try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [zero]))).proxyOptions.homeNetworkPrefixes.first)
        clock.advance(seconds: 1)
        let dereg = lma.handlePacket(pbu("pool@pmip.example", prefixes: [assigned], lifetime: 0))
        #expect(try pba(dereg).status == .accepted && dataPlane.routes.isEmpty)
        #expect(lma["pool@pmip.example"]?.isActive == false)
        #expect(lma.activeCount == 0 && lma.deregisteredCount == 1, "the bindings gauge by state (/metrics)")
        // Within the delay the next MAG's PBU finds the entry: same prefix.
        clock.advance(seconds: 5)
        let back = try pba(lma.handlePacket(pbu("pool@pmip.example", prefixes: [zero], from: Self.mag2, hi: 3)), to: Self.mag2)
        #expect(back.proxyOptions.homeNetworkPrefixes == [assigned] && dataPlane.routes == [assigned: Self.mag2])
        #expect(lma.activeCount == 1 && lma.deregisteredCount == 0)
        // De-registered again and left: after the delay the entry is gone and the prefix free.
        clock.advance(seconds: 1)
        _ = lma.handlePacket(pbu("pool@pmip.example", prefixes: [assigned], from: Self.mag2, lifetime: 0))
        clock.advance(seconds: 9)
        #expect(lma.expire().isEmpty && lma.count == 1, "not yet: 10 s")
        #expect(lma.activeCount == 0 && lma.deregisteredCount == 1)
        clock.advance(seconds: 1.1)
        _ = lma.expire()
        #expect(lma.count == 0 && lma.binding(prefix: assigned) == nil && lma.nextDeadline == nil)
        #expect(lma.activeCount == 0 && lma.deregisteredCount == 0)
    }

    @Test("expiry: a binding not refreshed leaves the data plane when its lifetime runs out, not before")
    func expiry() throws {
        _ = lma.handlePacket(pbu(lifetime: 2)) // 8 s
        clock.advance(seconds: 7.9)
        #expect(lma.expire().isEmpty && dataPlane.routes.count == 1)
        clock.advance(seconds: 0.2)
        let actions = lma.expire()
        #expect(actions.count == 1 && dataPlane.routes.isEmpty && lma.count == 0 && lma.counters.expirations == 1)
        if case let .removed(b, reason) = actions.first { #expect(b.identifier == "fixed@pmip.example" && reason == .expired) }
        // A refresh pushes the deadline: the old one no longer fires.
        _ = lma.handlePacket(pbu(lifetime: 2))
        clock.advance(seconds: 5)
        _ = lma.handlePacket(pbu(lifetime: 2))
        clock.advance(seconds: 5)
        #expect(lma.expire().isEmpty && lma.count == 1)
    }

    @Test("a data-plane write that fails refuses the PBU with 130 and keeps what was there")
    func dataPlaneFailure() throws {
        _ = lma.handlePacket(pbu())
        dataPlane.failInstalls = true
        clock.advance(seconds: 0.1)
        #expect(try pba(lma.handlePacket(pbu(from: Self.mag2, hi: 3)), to: Self.mag2).status == .insufficientResources)
        #expect(lma["fixed@pmip.example"]?.proxyCareOf == Self.mag1 && dataPlane.routes == [Self.fixed: Self.mag1])
        #expect(lma.counters.dataPlaneErrors == 1)
    }

    @Test("what is not a PBU for us is dropped and counted: no PBA")
    func drops() {
        #expect(lma.handlePacket([0x60, 1, 2]).isEmpty)
        let plainBU = PacketBuilder.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 15),
                                                  careOf: Self.mag1, homeAgent: Self.lmaAddress, homeAddress: addr("2001:db8:1::100"))
        #expect(lma.handlePacket(plainBU).isEmpty)
        let elsewhere = PacketBuilder.proxyBindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .proxy], lifetime: 15),
                                                         from: Self.mag1, to: addr("2001:db8:a::2"))
        #expect(lma.handlePacket(elsewhere).isEmpty)
        var corrupted = pbu()
        corrupted[corrupted.count - 1] ^= 0xff // checksum no longer matches
        #expect(lma.handlePacket(corrupted).isEmpty)
        #expect(lma.counters.drops == ["malformed": 1, "not_proxy": 1, "not_for_us": 1, "malformed_mh": 1])
        #expect(lma.counters.proxyBindingUpdates == 0)
    }
}
