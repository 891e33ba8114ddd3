import Logging
import Testing
@testable import ControlPlane

/// Another address of the home agent node that is not the configured home agent address.
let otherLocal = addr("2001:db8:1::2")

/// A Binding Acknowledgement or Binding Error as it left the home agent.
struct Sent {
    var source: IPv6Address
    var destination: IPv6Address
    var routingType2: IPv6Address?
    var message: MobilityMessage

    var ba: BindingAcknowledgement? {
        if case .bindingAcknowledgement(let ba) = message { return ba }
        return nil
    }
    var be: BindingError? {
        if case .bindingError(let be) = message { return be }
        return nil
    }
}

final class Harness {
    let clock = TestClock()
    let dataPlane = MockDataPlane()
    let logs = LogCapture()
    let cache: BindingCache
    let core: HomeAgentCore

    init(dad: Bool = false, capacity: Int = 100, maxLifetime: UInt32 = 3600, errorsPerSecond: UInt32 = 10,
         logLevel: Logger.Level = .trace) {
        cache = BindingCache(capacity: capacity, dataPlane: dataPlane)
        let config = HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: IPv6Prefix("2001:db8:1::/64")!,
                                            maxLifetime: maxLifetime, capacity: capacity, duplicateAddressDetection: dad,
                                            errorMessagesPerSecond: errorsPerSecond)
        core = HomeAgentCore(configuration: config, cache: cache, clock: clock, logger: logs.logger(level: logLevel))
    }

    /// A BU as a mobile node away from home sends it: from the care-of address with a Home
    /// Address option (or from the home address when `from == home`).
    func bu(seq: UInt16, flags: BUFlags = [.ack, .home], lifetime: UInt16 = 900, home: IPv6Address = hoa,
            from: IPv6Address = coa, to: IPv6Address = ha, altCoA: IPv6Address? = nil) -> [UInt8] {
        var options: [MobilityOption] = []
        if let altCoA { options.append(.alternateCareOfAddress(altCoA)) }
        let bu = BindingUpdate(sequence: seq, flags: flags, lifetime: lifetime, options: options)
        return PacketBuilder.bindingUpdate(bu, careOf: from, homeAgent: to, homeAddress: home)
    }

    func handle(_ packet: [UInt8]) -> [HomeAgentAction] {
        core.handlePacket(packet, localAddresses: [ha, otherLocal])
    }

    func sent(_ actions: [HomeAgentAction]) -> [Sent] {
        actions.compactMap { action -> Sent? in
            guard case .send(let bytes, _) = action,
                  let p = try? IPv6PacketParser.parseMobility(bytes),
                  let m = try? MobilityHeaderCodec.decode(p.mh, source: p.checksumSource, destination: p.checksumDestination)
            else { return nil }
            return Sent(source: p.source, destination: p.destination, routingType2: p.routingType2Address, message: m)
        }
    }

    /// The one BA in `actions`.
    func ack(_ actions: [HomeAgentAction]) -> Sent? {
        let all = sent(actions).filter { $0.ba != nil }
        return all.count == 1 ? all[0] : nil
    }

    func drops(_ reason: DropReason) -> UInt64 { core.counters.drops[reason] ?? 0 }
}

@Suite("Home agent: registration")
struct HomeAgentRegistrationTests {
    @Test func acceptedRegistrationWithoutDAD() throws {
        let h = Harness()
        let actions = h.handle(h.bu(seq: 7))
        #expect(actions.count == 3)
        guard case .bindingInstalled(let b) = actions[0] else { Issue.record("\(actions)"); return }
        #expect(b.homeAddress == hoa && b.careOfAddress == coa && b.sequence == 7 && b.lifetime == 3600)
        #expect(b.registeredAt == h.clock.now && b.expiresAt == h.clock.now + 3600 * 1_000_000_000)
        #expect(actions[1] == .sendUnsolicitedNA(homeAddress: hoa))
        let sent = try #require(h.ack(actions))
        // §9.5.4: to the BU's source (the care-of address), Type 2 Routing Header with the home address.
        #expect(sent.source == ha && sent.destination == coa && sent.routingType2 == hoa)
        #expect(sent.ba == BindingAcknowledgement(status: .accepted, sequence: 7, lifetime: 900))
        #expect(h.cache[hoa] == b && h.dataPlane.installed[hoa] == b)
        #expect(h.core.counters.registrations == 1 && h.core.counters.bindingUpdates == 1)
        #expect(h.core.counters.acksByStatus == [0: 1])
    }

    @Test func acknowledgedEvenWithoutAFlag() throws {
        // RFC 6275 §10.3.1: "Regardless of the setting of the Acknowledge (A) bit ... the home
        // agent MUST return a Binding Acknowledgement".
        let h = Harness()
        let sent = try #require(h.ack(h.handle(h.bu(seq: 1, flags: .home))))
        #expect(sent.ba?.status == .accepted)
    }

    @Test func keyManagementFlagNotEchoed() throws {
        let h = Harness()
        let sent = try #require(h.ack(h.handle(h.bu(seq: 1, flags: [.ack, .home, .key, .linkLocal]))))
        #expect(sent.ba?.flags == [])
        #expect(h.cache[hoa]?.flags == [.ack, .home, .key, .linkLocal])
    }

    @Test(arguments: [
        (UInt32(3600), UInt16(65535), UInt16(900)),  // capped at the maximum
        (UInt32(3600), UInt16(10), UInt16(10)),      // below the maximum: as requested
        (UInt32(3603), UInt16(1000), UInt16(900)),   // maximum rounded down to 4-second units
        (UInt32(2), UInt16(1000), UInt16(1)),        // a maximum under 4 s still grants one unit
        (UInt32(600_000), UInt16(65535), UInt16(65535)),
    ])
    func lifetimeCapping(maxLifetime: UInt32, requested: UInt16, granted: UInt16) throws {
        let h = Harness(maxLifetime: maxLifetime)
        let actions = h.handle(h.bu(seq: 1, lifetime: requested))
        #expect(h.ack(actions)?.ba?.lifetime == granted)
        #expect(h.cache[hoa]?.lifetime == UInt32(granted) * 4)
    }

    @Test func alternateCareOfAddressIsTheBindingsCareOf() throws {
        let h = Harness()
        let alt = addr("2001:db8:aaaa::5")
        let actions = h.handle(h.bu(seq: 1, altCoA: alt))
        #expect(h.cache[hoa]?.careOfAddress == alt)
        // The BA still goes back where the BU came from.
        #expect(h.ack(actions)?.destination == coa)
    }

    @Test func refreshAndMoveNeedNoDAD() throws {
        let h = Harness(dad: true)
        #expect(h.handle(h.bu(seq: 1)) == [.startDAD(homeAddress: hoa)])
        _ = h.core.dadFinished(homeAddress: hoa, duplicate: false)
        h.clock.advance(seconds: 100)
        let refresh = h.handle(h.bu(seq: 2, lifetime: 100))
        #expect(refresh.count == 2)
        guard case .bindingInstalled(let b) = refresh[0] else { Issue.record("\(refresh)"); return }
        #expect(b.sequence == 2 && b.lifetime == 400 && b.registeredAt == h.clock.now)
        #expect(h.ack(refresh)?.ba?.lifetime == 100)

        let newCoA = addr("2001:db8:bbbb::7")
        let move = h.handle(h.bu(seq: 3, from: newCoA))
        #expect(h.cache[hoa]?.careOfAddress == newCoA)
        #expect(h.dataPlane.installed[hoa]?.careOfAddress == newCoA)
        #expect(h.ack(move)?.destination == newCoA)
        #expect(h.core.counters.refreshes == 2 && h.core.counters.registrations == 1)
    }
}

@Suite("Home agent: rejections")
struct HomeAgentRejectionTests {
    @Test func status131NotTheHomeAgentAddress() throws {
        let h = Harness()
        let actions = h.handle(h.bu(seq: 1, to: otherLocal))
        let sent = try #require(h.ack(actions))
        #expect(sent.ba?.status == .homeRegistrationNotSupported)
        #expect(sent.ba?.sequence == 1 && sent.ba?.lifetime == 0)
        #expect(sent.source == otherLocal && sent.destination == coa && sent.routingType2 == hoa)
        #expect(h.cache.count == 0)
    }

    @Test func status132NotHomeSubnet() throws {
        let h = Harness()
        let sent = try #require(h.ack(h.handle(h.bu(seq: 1, home: addr("2001:db8:2::100")))))
        #expect(sent.ba?.status == .notHomeSubnet)
        #expect(sent.routingType2 == addr("2001:db8:2::100"))
        #expect(h.cache.count == 0 && h.dataPlane.installCalls == 0)
    }

    @Test func status129ForOwnAndAnycastAddress() throws {
        let h = Harness()
        #expect(h.ack(h.handle(h.bu(seq: 1, home: ha)))?.ba?.status == .prohibited)
        #expect(h.ack(h.handle(h.bu(seq: 1, home: addr("2001:db8:1::"))))?.ba?.status == .prohibited)
        // Another address of ours in the home prefix is no home either (it is the node's own).
        #expect(h.ack(h.handle(h.bu(seq: 1, home: otherLocal)))?.ba?.status == .prohibited)
        #expect(h.cache.count == 0)
    }

    @Test func status133DeregistrationWithoutBinding() throws {
        let h = Harness()
        let sent = try #require(h.ack(h.handle(h.bu(seq: 4, lifetime: 0))))
        #expect(sent.ba?.status == .notHomeAgentForThisMN && sent.ba?.sequence == 4)
    }

    @Test func status135WithLastAcceptedSequence() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 10))
        for stale: UInt16 in [10, 9, 0, 10 &+ 32768] {
            let sent = try #require(h.ack(h.handle(h.bu(seq: stale))))
            #expect(sent.ba?.status == .sequenceOutOfWindow, "seq \(stale)")
            #expect(sent.ba?.sequence == 10, "BA carries the last accepted sequence number")
        }
        // Also for a de-registration with a stale number: the binding stays.
        #expect(h.ack(h.handle(h.bu(seq: 3, lifetime: 0)))?.ba?.status == .sequenceOutOfWindow)
        #expect(h.cache[hoa] != nil)
        #expect(h.cache[hoa]?.sequence == 10)
        // 10 + 32767 is still newer.
        #expect(h.ack(h.handle(h.bu(seq: 10 &+ 32767)))?.ba?.status == .accepted)
        #expect(h.core.counters.acksByStatus[135] == 5)
    }

    @Test func sequenceWrapsAround() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 65535))
        #expect(h.ack(h.handle(h.bu(seq: 0)))?.ba?.status == .accepted)
        #expect(h.cache[hoa]?.sequence == 0)
    }

    @Test func status130WhenFull() throws {
        let h = Harness(capacity: 1)
        _ = h.handle(h.bu(seq: 1))
        let second = addr("2001:db8:1::200")
        let sent = try #require(h.ack(h.handle(h.bu(seq: 1, home: second))))
        #expect(sent.ba?.status == .insufficientResources)
        #expect(h.cache[second] == nil)
        // The existing binding can still be refreshed.
        #expect(h.ack(h.handle(h.bu(seq: 2)))?.ba?.status == .accepted)
    }

    @Test func pendingDADCountsTowardsCapacity() throws {
        let h = Harness(dad: true, capacity: 1)
        #expect(h.handle(h.bu(seq: 1)) == [.startDAD(homeAddress: hoa)])
        #expect(h.ack(h.handle(h.bu(seq: 1, home: addr("2001:db8:1::200"))))?.ba?.status == .insufficientResources)
    }

    @Test func status130OnDataPlaneFailure() throws {
        let h = Harness()
        h.dataPlane.failInstalls = true
        let actions = h.handle(h.bu(seq: 1))
        #expect(actions.count == 1)
        #expect(h.ack(actions)?.ba?.status == .insufficientResources)
        #expect(h.cache.count == 0)
        #expect(h.core.counters.dataPlaneErrors == 1)
        #expect(h.logs.records.contains { $0.level == .error && $0.metadata["mip6.hoa"] == "\(hoa)" })

        // A failing refresh leaves the old binding in place.
        h.dataPlane.failInstalls = false
        _ = h.handle(h.bu(seq: 2))
        h.dataPlane.failInstalls = true
        #expect(h.ack(h.handle(h.bu(seq: 3, from: addr("2001:db8:cccc::1"))))?.ba?.status == .insufficientResources)
        #expect(h.cache[hoa]?.careOfAddress == coa && h.cache[hoa]?.sequence == 2)
    }
}

@Suite("Home agent: de-registration")
struct HomeAgentDeregistrationTests {
    @Test func byLifetimeZero() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1))
        let registered = try #require(h.cache[hoa])
        let actions = h.handle(h.bu(seq: 2, lifetime: 0))
        #expect(actions.first == .bindingRemoved(registered, reason: .deregistered))
        let sent = try #require(h.ack(actions))
        #expect(sent.ba == BindingAcknowledgement(status: .accepted, sequence: 2, lifetime: 0))
        #expect(sent.destination == coa && sent.routingType2 == hoa)
        #expect(h.cache[hoa] == nil && h.dataPlane.installed[hoa] == nil)
        #expect(h.core.counters.deregistrations == 1)
    }

    @Test func byCareOfEqualsHome() throws {
        // Back home: the BU comes from the home address, no Home Address option, lifetime non-zero.
        let h = Harness()
        _ = h.handle(h.bu(seq: 1))
        let actions = h.handle(h.bu(seq: 2, lifetime: 900, from: hoa))
        guard case .bindingRemoved(_, .deregistered) = actions.first else { Issue.record("\(actions)"); return }
        let sent = try #require(h.ack(actions))
        #expect(sent.ba?.status == .accepted && sent.ba?.lifetime == 0)
        // No Home Address option, so straight to the home address without a routing header.
        #expect(sent.destination == hoa && sent.routingType2 == nil)
        #expect(h.cache[hoa] == nil)
    }

    @Test func byAlternateCareOfEqualsHome() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1))
        let actions = h.handle(h.bu(seq: 2, altCoA: hoa))
        #expect(h.ack(actions)?.ba?.status == .accepted)
        #expect(h.cache[hoa] == nil)
    }

    @Test func dataPlaneFailureKeepsBinding() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1))
        h.dataPlane.failRemoves = true
        #expect(h.ack(h.handle(h.bu(seq: 2, lifetime: 0)))?.ba?.status == .insufficientResources)
        #expect(h.cache[hoa] != nil)
    }
}

@Suite("Home agent: duplicate address detection")
struct HomeAgentDADTests {
    @Test func firstRegistrationWaitsForDAD() throws {
        let h = Harness(dad: true)
        #expect(h.handle(h.bu(seq: 1)) == [.startDAD(homeAddress: hoa)])
        #expect(h.cache[hoa] == nil && h.core.pendingDAD == [hoa])
        #expect(h.core.counters.dadStarted == 1)

        // Retransmissions (new sequence numbers, §11.8) update the request but do not restart DAD.
        let newCoA = addr("2001:db8:dddd::3")
        h.clock.advance(seconds: 1.5)
        #expect(h.handle(h.bu(seq: 2, lifetime: 100, from: newCoA)).isEmpty)
        // A stale one is ignored.
        #expect(h.handle(h.bu(seq: 1)).isEmpty)
        #expect(h.drops(.dadInProgress) == 1)
        #expect(h.core.counters.dadStarted == 1)

        let done = h.core.dadFinished(homeAddress: hoa, duplicate: false)
        #expect(done.count == 3)
        guard case .bindingInstalled(let b) = done[0] else { Issue.record("\(done)"); return }
        #expect(b.careOfAddress == newCoA && b.sequence == 2 && b.lifetime == 400)
        #expect(done[1] == .sendUnsolicitedNA(homeAddress: hoa))
        let sent = try #require(h.ack(done))
        #expect(sent.ba == BindingAcknowledgement(status: .accepted, sequence: 2, lifetime: 100))
        #expect(sent.destination == newCoA && sent.routingType2 == hoa)
        #expect(h.core.pendingDAD.isEmpty)
        // A late second report changes nothing.
        #expect(h.core.dadFinished(homeAddress: hoa, duplicate: true).isEmpty)
        #expect(h.cache[hoa] != nil)
    }

    @Test func duplicateRejectsWith134() throws {
        let h = Harness(dad: true)
        _ = h.handle(h.bu(seq: 5))
        let actions = h.core.dadFinished(homeAddress: hoa, duplicate: true)
        #expect(actions.count == 1)
        let sent = try #require(h.ack(actions))
        #expect(sent.ba?.status == .duplicateAddressDetectionFailed && sent.ba?.sequence == 5)
        #expect(h.cache.count == 0 && h.dataPlane.installCalls == 0)
        // The next BU starts over with a new DAD.
        #expect(h.handle(h.bu(seq: 6)) == [.startDAD(homeAddress: hoa)])
    }

    @Test func deregistrationWithdrawsPendingRegistration() throws {
        let h = Harness(dad: true)
        _ = h.handle(h.bu(seq: 5))
        #expect(h.handle(h.bu(seq: 5, lifetime: 0)).isEmpty) // stale: ignored
        let sent = try #require(h.ack(h.handle(h.bu(seq: 6, lifetime: 0))))
        #expect(sent.ba?.status == .accepted && sent.ba?.lifetime == 0)
        #expect(h.core.pendingDAD.isEmpty)
        #expect(h.core.dadFinished(homeAddress: hoa, duplicate: false).isEmpty)
        #expect(h.cache.count == 0)
    }

    @Test func dadTimeoutDropsPendingRegistration() throws {
        let h = Harness(dad: true)
        _ = h.handle(h.bu(seq: 1))
        let deadline = try #require(h.core.nextDeadline)
        #expect(deadline == h.clock.now + 10 * 1_000_000_000)
        h.clock.advance(seconds: 10)
        #expect(h.core.expire().isEmpty)
        #expect(h.core.pendingDAD.isEmpty && h.drops(.dadTimedOut) == 1)
        #expect(h.core.nextDeadline == nil)
    }

    @Test func unknownHomeAddressIgnored() {
        let h = Harness(dad: true)
        #expect(h.core.dadFinished(homeAddress: hoa, duplicate: false).isEmpty)
    }

    @Test func dataPlaneFailureAfterDAD() throws {
        let h = Harness(dad: true)
        _ = h.handle(h.bu(seq: 1))
        h.dataPlane.failInstalls = true
        #expect(h.ack(h.core.dadFinished(homeAddress: hoa, duplicate: false))?.ba?.status == .insufficientResources)
        #expect(h.cache.count == 0)
    }
}

@Suite("Home agent: other messages and drops")
struct HomeAgentDropTests {
    @Test func unknownMHTypeGetsBindingErrorStatus2() throws {
        let h = Harness()
        let mh = MobilityHeaderCodec.encode(.unrecognized(type: 42, data: [0, 0]), source: hoa, destination: ha)
        // From the care-of address with a Home Address option, like a BU.
        var packet: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: 24 + mh.count, nextHeader: 60, hopLimit: 64, source: coa, destination: ha, into: &packet)
        packet += [135, 2, 1, 2, 0, 0, 201, 16] + hoa.bytes + mh
        let sent = h.sent(h.handle(packet))
        #expect(sent.count == 1)
        let be = try #require(sent.first?.be)
        #expect(be.status == 2 && be.homeAddress == hoa)
        #expect(sent.first?.destination == coa && sent.first?.source == ha && sent.first?.routingType2 == nil)
        #expect(h.core.counters.bindingErrorsSent == 1)

        // Without a Home Address option the field is unspecified.
        let plain = MobilityHeaderCodec.encode(.unrecognized(type: 1, data: [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]), source: coa, destination: ha)
        var p2: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: plain.count, nextHeader: 135, hopLimit: 64, source: coa, destination: ha, into: &p2)
        #expect(h.sent(h.handle(p2 + plain)).first?.be == BindingError(status: 2, homeAddress: .unspecified))
    }

    @Test func noBindingErrorToMulticastSource() {
        let h = Harness()
        let mh = MobilityHeaderCodec.encode(.unrecognized(type: 42, data: [0, 0]), source: addr("ff02::1"), destination: ha)
        var packet: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: mh.count, nextHeader: 135, hopLimit: 64, source: addr("ff02::1"),
                                 destination: ha, into: &packet)
        #expect(h.handle(packet + mh).isEmpty)
        #expect(h.drops(.invalidSourceAddress) == 1 && h.core.counters.bindingErrorsSent == 0)
    }

    @Test func bindingErrorsAreRateLimited() {
        let h = Harness(errorsPerSecond: 3)
        let mh = MobilityHeaderCodec.encode(.unrecognized(type: 42, data: [0, 0]), source: coa, destination: ha)
        var packet: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: mh.count, nextHeader: 135, hopLimit: 64, source: coa, destination: ha, into: &packet)
        packet += mh
        var sent = 0
        for _ in 0..<10 { sent += h.handle(packet).count }
        #expect(sent == 3 && h.drops(.errorRateLimited) == 7)
        h.clock.advance(seconds: 0.34)
        #expect(h.handle(packet).count == 1)
        #expect(h.handle(packet).isEmpty)
        h.clock.advance(seconds: 100)
        sent = 0
        for _ in 0..<10 { sent += h.handle(packet).count }
        #expect(sent == 3)
    }

    @Test(arguments: [
        MobilityMessage.bindingAcknowledgement(BindingAcknowledgement(status: .accepted, sequence: 1, lifetime: 1)),
        .bindingRefreshRequest(BindingRefreshRequest()),
        .bindingError(BindingError(status: 1, homeAddress: hoa)),
    ])
    func messagesForMobileNodesAreDropped(_ m: MobilityMessage) {
        let h = Harness()
        let mh = MobilityHeaderCodec.encode(m, source: coa, destination: ha)
        var packet: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: mh.count, nextHeader: 135, hopLimit: 64, source: coa, destination: ha, into: &packet)
        #expect(h.handle(packet + mh).isEmpty)
        #expect(h.drops(.unexpectedMessage) == 1)
    }

    @Test func badChecksumSilentlyDropped() {
        let h = Harness()
        var packet = h.bu(seq: 1)
        packet[packet.count - 1] ^= 0x40
        #expect(h.handle(packet).isEmpty)
        #expect(h.drops(.badChecksum) == 1 && h.cache.count == 0)
    }

    @Test func badPayloadProtoGetsParameterProblem() throws {
        let h = Harness()
        var packet = h.bu(seq: 1)
        packet[64] = 6 // MH Payload Proto, after 40 IPv6 + 24 Destination Options octets
        let actions = h.handle(packet)
        #expect(h.drops(.badPayloadProto) == 1)
        guard case .send(let icmp, _) = try #require(actions.first) else { Issue.record("\(actions)"); return }
        #expect(icmp[6] == 58 && icmp[40] == 4 && icmp[41] == 0)
        #expect(Array(icmp[44..<48]) == [0, 0, 0, 64]) // pointer at Payload Proto
        #expect(Array(icmp[24..<40]) == coa.bytes)
        #expect(Array(icmp[48...]) == packet)
        #expect(h.core.counters.parameterProblemsSent == 1)
    }

    @Test func headerLenBelowMinimumGetsParameterProblem() throws {
        let h = Harness()
        var mh = hex("3b 00 05 00 00 00 00 07")
        fixChecksum(&mh, source: coa, destination: ha)
        var packet: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: mh.count, nextHeader: 135, hopLimit: 64, source: coa, destination: ha, into: &packet)
        let actions = h.handle(packet + mh)
        #expect(h.drops(.belowMinimumLength) == 1)
        guard case .send(let icmp, _) = try #require(actions.first) else { return }
        #expect(Array(icmp[44..<48]) == [0, 0, 0, 41]) // pointer at Header Len
    }

    @Test func malformedAndForeignPacketsDropped() {
        let h = Harness()
        #expect(h.handle([0x45, 0, 0, 20]).isEmpty)
        #expect(h.drops(.malformedPacket) == 1)
        // Not for us.
        #expect(h.handle(h.bu(seq: 1, to: addr("2001:db8:77::1"))).isEmpty)
        #expect(h.drops(.notForUs) == 1)
        // Truncated MH (payload length fixed up so only the MH is short).
        var short = h.bu(seq: 1)
        short.removeLast(8)
        short[5] -= 8
        #expect(h.handle(short).isEmpty)
        #expect(h.drops(.malformedMobilityHeader) == 1)
        // A fragment.
        var frag: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: 8, nextHeader: 44, hopLimit: 64, source: coa, destination: ha, into: &frag)
        #expect(h.handle(frag + [135, 0, 0, 1, 0, 0, 0, 1]).isEmpty)
        #expect(h.drops(.fragmented) == 1)
        #expect(h.core.counters.totalDrops == 4)
    }

    @Test func invalidCareOfAddressSilentlyDiscarded() {
        let h = Harness()
        for bad in [addr("fe80::1"), addr("ff02::1"), IPv6Address.unspecified, addr("::1")] {
            #expect(h.handle(h.bu(seq: 1, altCoA: bad)).isEmpty, "\(bad)")
        }
        #expect(h.drops(.invalidCareOfAddress) == 4)
        // A link-local source without an Alternate Care-of Address option: same.
        #expect(h.handle(h.bu(seq: 1, from: addr("fe80::99"))).isEmpty)
        #expect(h.drops(.invalidCareOfAddress) == 5)
        #expect(h.cache.count == 0)
    }

    @Test func invalidHomeAddressSilentlyDiscarded() {
        let h = Harness()
        #expect(h.handle(h.bu(seq: 1, home: addr("fe80::100"))).isEmpty)
        #expect(h.drops(.invalidHomeAddress) == 1)
    }

    @Test func correspondentRegistrationDropped() {
        let h = Harness()
        #expect(h.handle(h.bu(seq: 1, flags: .ack)).isEmpty)
        #expect(h.drops(.notHomeRegistration) == 1)
    }
}

@Suite("Home agent: expiry and logging")
struct HomeAgentExpiryTests {
    @Test func bindingsExpire() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1, lifetime: 10))                           // 40 s
        _ = h.handle(h.bu(seq: 1, lifetime: 5, home: addr("2001:db8:1::200"))) // 20 s
        let start = h.clock.now
        #expect(h.core.nextDeadline == start + 20 * 1_000_000_000)
        h.clock.advance(seconds: 19.9)
        #expect(h.core.expire().isEmpty)
        h.clock.advance(seconds: 0.1)
        let first = h.core.expire()
        guard case .bindingRemoved(let b, .expired) = try #require(first.first) else { Issue.record("\(first)"); return }
        #expect(b.homeAddress == addr("2001:db8:1::200"))
        #expect(h.core.nextDeadline == start + 40 * 1_000_000_000)
        h.clock.advance(seconds: 30)
        #expect(h.core.expire().count == 1)
        #expect(h.core.counters.expirations == 2 && h.cache.count == 0 && h.dataPlane.installed.isEmpty)
        #expect(h.core.nextDeadline == nil)
    }

    @Test func expiryRetriesAfterDataPlaneFailure() throws {
        let h = Harness()
        _ = h.handle(h.bu(seq: 1, lifetime: 1))
        h.clock.advance(seconds: 5)
        h.dataPlane.failRemoves = true
        #expect(h.core.expire().isEmpty)
        #expect(h.core.counters.dataPlaneErrors == 1)
        // Not due again until the retry delay has passed, so the daemon loop does not spin.
        #expect(h.core.nextDeadline == h.clock.now + 1_000_000_000)
        h.dataPlane.failRemoves = false
        #expect(h.core.expire().isEmpty)
        h.clock.advance(seconds: 1)
        #expect(h.core.expire().count == 1)
    }

    @Test func registrationsLoggedAtInfoWithMetadata() throws {
        let h = Harness(logLevel: .info)
        _ = h.handle(h.bu(seq: 7))
        _ = h.handle(h.bu(seq: 8, lifetime: 0))
        let infos = h.logs.records.filter { $0.level == .info }
        #expect(infos.count == 2)
        for r in infos {
            #expect(r.metadata["mip6.hoa"] == "2001:db8:1::100")
            #expect(r.metadata["mip6.coa"] == "2001:db8:ffff::2")
        }
        #expect(infos[0].metadata["mip6.seq"] == "7" && infos[1].metadata["mip6.seq"] == "8")
        // Rejections carry the status.
        _ = h.handle(h.bu(seq: 1, lifetime: 0))
        #expect(h.logs.records.last?.metadata["mip6.status"] == "133")
    }

    @Test func malformedPacketsAreCountedAndLoggedOncePerReason() {
        let h = Harness()
        var bad = h.bu(seq: 1)
        bad[bad.count - 1] ^= 1
        for _ in 0..<100 {
            _ = h.handle(bad)
            _ = h.handle([0x60])
        }
        // One record per drop reason, however many packets: a flood cannot flood the log.
        let drops = h.logs.records.filter { $0.metadata["mip6.drop"] != nil }
        #expect(drops.count == 2)
        #expect(Set(drops.compactMap { $0.metadata["mip6.drop"].map { "\($0)" } }).count == 2)
        #expect(h.core.counters.drops[.badChecksum] == 100)
    }
}
