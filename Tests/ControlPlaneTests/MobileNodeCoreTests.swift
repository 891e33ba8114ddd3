import Foundation
import Logging
import Testing
@testable import ControlPlane

// Addresses: `ha`, `hoa` and `coa` (2001:db8:ffff::2) come from MobilityHeaderTests.swift;
// the home prefix is 2001:db8:1::/64.
let mnHomePrefix = IPv6Prefix("2001:db8:1::/64")!
let mnCoA2 = addr("2001:db8:eeee::2")
let mnCoA3 = addr("2001:db8:dddd::2")
let mnCoA4 = addr("2001:db8:cccc::2")
let mnStranger = addr("2001:db8:9999::1")

/// A Binding Update as it left the mobile node, decoded back with the project's parser and codec
/// (checksum verified against the home address as pseudo-header source).
struct MNSentBU {
    var source: IPv6Address
    var destination: IPv6Address
    var homeAddressOption: IPv6Address?
    var bu: BindingUpdate
}

final class MNHarness {
    let clock = TestClock()
    let logs = LogCapture()
    let core: MobileNodeCore

    init(initialSequence: UInt16 = 100, requestedLifetime: UInt32 = 600, maxResyncs: Int = 3) {
        let config = MobileNodeConfiguration(homeAddress: hoa, homeAgent: ha, homePrefix: mnHomePrefix,
                                             requestedLifetime: requestedLifetime, maxConsecutiveResyncs: maxResyncs)
        core = MobileNodeCore(configuration: config, clock: clock, logger: logs.logger(), initialSequence: initialSequence)
    }

    var now: UInt64 { clock.now }

    func advance(_ seconds: Double) { clock.advance(seconds: seconds) }

    /// Moves the clock to an absolute time.
    func set(_ t: UInt64) {
        precondition(t >= clock.now)
        clock.now = t
    }

    func bus(_ actions: [MobileNodeAction]) -> [MNSentBU] {
        actions.compactMap { action -> MNSentBU? in
            guard case .send(let bytes, _) = action else { return nil }
            guard let p = try? IPv6PacketParser.parseMobility(bytes),
                  case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(
                      p.mh, source: p.checksumSource, destination: p.checksumDestination)
            else {
                Issue.record("sent packet is not a valid Binding Update")
                return nil
            }
            return MNSentBU(source: p.source, destination: p.destination, homeAddressOption: p.homeAddressOption, bu: bu)
        }
    }

    /// The one Binding Update in `actions`.
    func bu(_ actions: [MobileNodeAction]) -> MNSentBU? {
        let all = bus(actions)
        return all.count == 1 ? all[0] : nil
    }

    /// A BA as the home agent sends it to a mobile node away from home: to the care-of address
    /// with a Type 2 Routing Header holding the home address.
    func ba(status: BAStatus = .accepted, seq: UInt16, lifetime: UInt16 = 150, options: [MobilityOption] = [],
            from: IPv6Address = ha, to: IPv6Address = coa, home: IPv6Address? = hoa) -> [UInt8] {
        PacketBuilder.bindingAcknowledgement(
            BindingAcknowledgement(status: status, sequence: seq, lifetime: lifetime, options: options),
            from: from, to: to, homeAddress: home)
    }

    /// Registers at `careOf` with a BA granting `lifetime` units; returns the BU's sequence.
    @discardableResult
    func register(at careOf: IPv6Address = coa, lifetime: UInt16 = 150) -> UInt16 {
        let sent = bu(core.careOfAddressChanged(careOf))!
        let actions = core.handlePacket(ba(seq: sent.bu.sequence, lifetime: lifetime, to: careOf))
        #expect(actions.contains(.registered(careOf: careOf, lifetime: min(UInt32(lifetime) * 4, 600))))
        return sent.bu.sequence
    }

    func records(_ level: Logger.Level) -> [LogCapture.Record] {
        logs.records.filter { $0.level == level }
    }
}

private let second: UInt64 = 1_000_000_000

@Suite("Mobile node: Binding Update transmission")
struct MobileNodeTransmissionTests {
    @Test func firstRegistrationBackOffFromOnePointFiveSecondsToThirtyTwo() throws {
        let h = MNHarness(initialSequence: 100)
        let t0 = h.now
        let first = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        // §11.7.1: from the care-of address to the home agent, Home Address option, A and H.
        #expect(first.source == coa)
        #expect(first.destination == ha)
        #expect(first.homeAddressOption == hoa)
        #expect(first.bu.flags == [.ack, .home])
        #expect(first.bu.lifetime == 150)
        #expect(first.bu.sequence == 100)
        #expect(h.core.status.state == "registering")

        // §11.8 / §13: 1.5 s, then doubling, capped at MAX_BINDACK_TIMEOUT; a new sequence number each time.
        let intervals: [Double] = [1.5, 3, 6, 12, 24, 32, 32, 32]
        var expectedAt = t0
        var sequence: UInt16 = 100
        for interval in intervals {
            expectedAt += UInt64(interval * 1e9)
            #expect(h.core.nextDeadline == expectedAt)
            h.set(expectedAt - 1_000_000)
            #expect(h.core.tick().isEmpty, "nothing due 1 ms before \(interval) s")
            h.set(expectedAt)
            let again = try #require(h.bu(h.core.tick()))
            sequence &+= 1
            #expect(again.bu.sequence == sequence)
            #expect(again.homeAddressOption == hoa)
            #expect(again.source == coa)
            #expect(again.bu.flags == [.ack, .home])
        }
        #expect(h.core.counters.busSent == UInt64(intervals.count + 1))
        #expect(h.core.counters.retransmissions == UInt64(intervals.count))
        #expect(h.core.status.sequence == sequence)
    }

    @Test func laterRegistrationsStartAtOneSecond() throws {
        let h = MNHarness()
        h.register()
        h.advance(10)
        // A move: the home agent holds a binding, so INITIAL_BINDACK_TIMEOUT applies.
        let t = h.now
        _ = try #require(h.bu(h.core.careOfAddressChanged(mnCoA2)))
        #expect(h.core.nextDeadline == t + 1 * second)
        h.set(t + 1 * second)
        _ = try #require(h.bu(h.core.tick()))
        #expect(h.core.nextDeadline == t + 3 * second)
        h.set(t + 3 * second)
        _ = try #require(h.bu(h.core.tick()))
        #expect(h.core.nextDeadline == t + 7 * second)
    }

    @Test func refreshAlsoStartsAtOneSecond() throws {
        let h = MNHarness()
        let t0 = h.now
        h.register()
        h.set(t0 + 450 * second)
        _ = try #require(h.bu(h.core.tick()))
        #expect(h.core.nextDeadline == t0 + 451 * second)
    }

    @Test func sequenceNumbersWrapModulo65536() throws {
        let h = MNHarness(initialSequence: 0xfffe)
        var seen: [UInt16] = [try #require(h.bu(h.core.careOfAddressChanged(coa))).bu.sequence]
        for _ in 0..<3 {
            h.set(try #require(h.core.nextDeadline))
            seen.append(try #require(h.bu(h.core.tick())).bu.sequence)
        }
        #expect(seen == [0xfffe, 0xffff, 0x0000, 0x0001])
        // Only the latest transmission is outstanding: a BA for 0 is stale.
        #expect(h.core.handlePacket(h.ba(seq: 0)).isEmpty)
        #expect(h.core.counters.acksIgnored == 1)
        let actions = h.core.handlePacket(h.ba(seq: 1))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
    }

    @Test func sameCareOfAddressAgainSendsNothing() throws {
        let h = MNHarness()
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(h.core.careOfAddressChanged(coa).isEmpty)
        h.register(at: mnCoA2)
        #expect(h.core.careOfAddressChanged(mnCoA2).isEmpty)
        #expect(h.core.counters.busSent == 2)
    }

    @Test func maxUpdateRateDefersTheFourthBindingUpdateInOneSecond() throws {
        let h = MNHarness()
        let t = h.now
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        _ = try #require(h.bu(h.core.careOfAddressChanged(mnCoA2)))
        _ = try #require(h.bu(h.core.careOfAddressChanged(mnCoA3)))
        // §11.8: MAX_UPDATE_RATE is 3 a second.
        #expect(h.core.careOfAddressChanged(mnCoA4).isEmpty)
        #expect(h.core.nextDeadline == t + second)
        h.set(t + second)
        let deferred = try #require(h.bu(h.core.tick()))
        #expect(deferred.source == mnCoA4)
        #expect(h.core.nextDeadline == t + second + UInt64(1.5 * 1e9))
    }
}

@Suite("Mobile node: Binding Acknowledgement validation")
struct MobileNodeAckValidationTests {
    @Test func wrongSequenceIgnored() throws {
        let h = MNHarness()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(h.core.handlePacket(h.ba(seq: sent.bu.sequence &+ 1)).isEmpty)
        #expect(h.core.handlePacket(h.ba(seq: sent.bu.sequence &- 1)).isEmpty)
        #expect(h.core.counters.acksIgnored == 2)
        #expect(h.core.counters.acksAccepted == 0)
        #expect(h.core.status.state == "registering")
        #expect(h.records(.debug).contains { $0.message == "binding acknowledgement ignored" })
        // The right one still works.
        #expect(h.core.handlePacket(h.ba(seq: sent.bu.sequence)).contains(.tunnelUp(careOf: coa)))
    }

    @Test func badChecksumIgnored() throws {
        let h = MNHarness()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        var packet = h.ba(seq: sent.bu.sequence)
        // IPv6 header 40 + Type 2 Routing Header 24: the MH starts at 64; Lifetime is at MH offset 10.
        packet[64 + 11] ^= 0x01
        #expect(h.core.handlePacket(packet).isEmpty)
        #expect(h.core.counters.acksIgnored == 1)
        #expect(h.core.status.state == "registering")

        // A BA whose checksum was computed for the care-of address, not the final destination.
        let ba = BindingAcknowledgement(status: .accepted, sequence: sent.bu.sequence, lifetime: 150)
        var mh = MobilityHeaderCodec.encode(.bindingAcknowledgement(ba), source: ha, destination: coa)
        var wrong = PacketBuilder.bindingAcknowledgement(ba, from: ha, to: coa, homeAddress: hoa)
        wrong.replaceSubrange(64..., with: mh)
        #expect(h.core.handlePacket(wrong).isEmpty)
        #expect(h.core.counters.acksIgnored == 2)

        // Fixing the checksum makes it acceptable.
        fixChecksum(&mh, source: ha, destination: hoa)
        wrong.replaceSubrange(64..., with: mh)
        #expect(h.core.handlePacket(wrong).contains(.tunnelUp(careOf: coa)))
    }

    @Test func otherSourceOrHomeAddressIgnored() throws {
        let h = MNHarness()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let seq = sent.bu.sequence
        // Not from the home agent.
        #expect(h.core.handlePacket(h.ba(seq: seq, from: mnStranger)).isEmpty)
        // Type 2 Routing Header for someone else's home address.
        #expect(h.core.handlePacket(h.ba(seq: seq, home: addr("2001:db8:1::200"))).isEmpty)
        // No routing header, straight to the care-of address: final destination is not the HoA.
        #expect(h.core.handlePacket(h.ba(seq: seq, home: nil)).isEmpty)
        #expect(h.core.counters.acksIgnored == 3)
        // Not a mobility packet at all.
        #expect(h.core.handlePacket([0x60, 0, 0]).isEmpty)
        #expect(h.core.counters.packetsIgnored == 1)
        #expect(h.core.status.tunnelCareOf == nil)
    }

    @Test func baWithoutOutstandingBindingUpdateIgnored() {
        let h = MNHarness()
        #expect(h.core.handlePacket(h.ba(seq: 100)).isEmpty)
        #expect(h.core.counters.acksIgnored == 1)
    }
}

@Suite("Mobile node: status 135")
struct MobileNodeResyncTests {
    @Test func resynchronisesToHomeAgentSequencePlusOne() throws {
        let h = MNHarness(initialSequence: 100)
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(sent.bu.sequence == 100)
        // §11.7.1: the BA carries the last accepted sequence number; use the next one, at once.
        let resent = try #require(h.bu(h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: 5000, lifetime: 0))))
        #expect(resent.bu.sequence == 5001)
        #expect(resent.homeAddressOption == hoa)
        #expect(h.core.counters.resyncs135 == 1)
        #expect(h.core.status.lastStatus == 135)
        // A late 135 for the superseded BU is stale now.
        #expect(h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: 5000, lifetime: 0)).isEmpty)
        #expect(h.core.counters.acksIgnored == 1)
        let actions = h.core.handlePacket(h.ba(seq: 5001))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
        // Retransmissions and later BUs continue from there.
        h.set(try #require(h.core.nextDeadline))
        #expect(try #require(h.bu(h.core.tick())).bu.sequence == 5002)
    }

    @Test func resyncAcrossTheWrap() throws {
        let h = MNHarness(initialSequence: 0xfff0)
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let resent = try #require(h.bu(h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: 0xffff, lifetime: 0))))
        #expect(resent.bu.sequence == 0)
    }

    @Test func impossible135Ignored() throws {
        // Our 10 is newer than the home agent's 0xffff modulo 2^16 (§9.5.1): it could not have
        // been rejected for that, so the 135 is stale or forged.
        let h = MNHarness(initialSequence: 10)
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: 0xffff, lifetime: 0)).isEmpty)
        #expect(h.core.counters.acksIgnored == 1)
        #expect(h.core.counters.resyncs135 == 0)
    }

    @Test func givesUpAfterAFewResyncsInARow() throws {
        let h = MNHarness(maxResyncs: 3)
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        var haSeq: UInt16 = 20000
        for _ in 0..<3 {
            h.advance(0.4)
            let resent = try #require(h.bu(h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: haSeq, lifetime: 0))))
            #expect(resent.bu.sequence == haSeq &+ 1)
            haSeq &+= 7 // a home agent that keeps moving ahead
        }
        h.advance(0.4)
        let t = h.now
        let actions = h.core.handlePacket(h.ba(status: .sequenceOutOfWindow, seq: haSeq, lifetime: 0))
        #expect(actions == [.registrationFailed(status: .sequenceOutOfWindow)])
        #expect(h.core.counters.resyncs135 == 3)
        #expect(h.core.status.state == "failed")
        #expect(h.core.nextDeadline == t + 32 * second)
    }
}

@Suite("Mobile node: lifetime, refresh and expiry")
struct MobileNodeLifetimeTests {
    @Test func refreshAtThreeQuartersOfTheGrantedLifetime() throws {
        let h = MNHarness()
        let t0 = h.now
        let seq = h.register(lifetime: 150) // 600 s
        let status = h.core.status
        #expect(status.state == "registered")
        #expect(status.grantedLifetime == 600)
        #expect(status.secondsToRefresh == 450)
        #expect(status.secondsToExpiry == 600)
        #expect(h.core.nextDeadline == t0 + 450 * second)
        h.set(t0 + 450 * second - 1)
        #expect(h.core.tick().isEmpty)
        h.set(t0 + 450 * second)
        let refresh = try #require(h.bu(h.core.tick()))
        #expect(refresh.bu.sequence == seq &+ 1)
        #expect(refresh.source == coa)
        #expect(h.core.status.state == "registered")
        // The refresh is acknowledged: no tunnel change, a new lifetime from the refresh's send time.
        let actions = h.core.handlePacket(h.ba(seq: refresh.bu.sequence))
        #expect(actions == [.registered(careOf: coa, lifetime: 600)])
        #expect(h.core.counters.refreshes == 1)
        #expect(h.core.counters.registrations == 1)
        #expect(h.core.nextDeadline == t0 + 900 * second)
    }

    @Test func grantedLifetimeShorterThanAskedAndNeverLonger() throws {
        let h = MNHarness()
        let t0 = h.now
        h.register(lifetime: 25) // 100 s
        #expect(h.core.status.grantedLifetime == 100)
        #expect(h.core.nextDeadline == t0 + 75 * second)

        let h2 = MNHarness()
        let sent = try #require(h2.bu(h2.core.careOfAddressChanged(coa)))
        let actions = h2.core.handlePacket(h2.ba(seq: sent.bu.sequence, lifetime: 1000))
        #expect(actions.contains(.registered(careOf: coa, lifetime: 600)))
    }

    @Test func bindingRefreshAdviceRefreshesEarlier() throws {
        let h = MNHarness()
        let t0 = h.now
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        // §6.2.4: refresh interval 30 units = 120 s.
        _ = h.core.handlePacket(h.ba(seq: sent.bu.sequence, options: [.bindingRefreshAdvice(30)]))
        #expect(h.core.nextDeadline == t0 + 120 * second)
        #expect(h.core.status.secondsToRefresh == 120)
        h.set(t0 + 120 * second)
        _ = try #require(h.bu(h.core.tick()))
    }

    @Test func bindingRefreshAdviceNotBelowLifetimeIgnored() throws {
        let h = MNHarness()
        let t0 = h.now
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        _ = h.core.handlePacket(h.ba(seq: sent.bu.sequence, lifetime: 25, options: [.bindingRefreshAdvice(25)]))
        #expect(h.core.nextDeadline == t0 + 75 * second)
    }

    @Test func expiryWithoutRefreshTakesTheTunnelDownAndKeepsTrying() throws {
        let h = MNHarness()
        let t0 = h.now
        h.register(lifetime: 25) // 100 s, refresh at 75 s
        var all: [MobileNodeAction] = []
        var tunnelDownAt: UInt64?
        while let deadline = h.core.nextDeadline, deadline <= t0 + 200 * second {
            h.set(deadline)
            let actions = h.core.tick()
            if actions.contains(.tunnelDown) { tunnelDownAt = h.now }
            all += actions
        }
        #expect(tunnelDownAt == t0 + 100 * second)
        #expect(all.filter { $0 == .tunnelDown }.count == 1)
        // Refresh BUs at 75, 76, 78, 82, 90, 106, 138, 170 s: retransmission never stopped.
        #expect(h.bus(all).count == 8)
        #expect(h.core.status.state == "registering")
        #expect(h.core.status.tunnelCareOf == nil)
        #expect(h.core.counters.expirations == 1)
        #expect(h.core.nextDeadline != nil)
        // When the home agent finally answers, the tunnel comes back.
        let last = try #require(h.bus(all).last)
        let actions = h.core.handlePacket(h.ba(seq: last.bu.sequence))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
    }

    @Test func expiryWithoutCareOfAddress() throws {
        let h = MNHarness()
        let t0 = h.now
        h.register(lifetime: 25)
        #expect(h.core.careOfAddressChanged(nil) == [.tunnelDown])
        #expect(h.core.status.state == "no-care-of-address")
        // No refresh without an address; the expiry is still tracked.
        #expect(h.core.nextDeadline == t0 + 100 * second)
        h.set(t0 + 100 * second)
        #expect(h.core.tick().isEmpty)
        #expect(h.core.nextDeadline == nil)
        #expect(h.core.counters.expirations == 1)
        // The next care-of address registers as a first registration again (1.5 s).
        let t = h.now
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(h.core.nextDeadline == t + 1_500_000_000)
    }
}

@Suite("Mobile node: movement")
struct MobileNodeMovementTests {
    @Test func makeBeforeBreak() throws {
        let h = MNHarness()
        h.register(at: coa)
        #expect(h.core.status.tunnelCareOf == coa)
        let actions = h.core.careOfAddressChanged(mnCoA2)
        // A BU at once from the new address; the old tunnel stays.
        #expect(actions.count == 1)
        let sent = try #require(h.bu(actions))
        #expect(sent.source == mnCoA2)
        #expect(sent.homeAddressOption == hoa)
        #expect(h.core.status.tunnelCareOf == coa)
        #expect(h.core.status.careOfAddress == mnCoA2)
        #expect(h.core.status.state == "registering")
        // A BA that does not match changes nothing.
        #expect(h.core.handlePacket(h.ba(seq: sent.bu.sequence &- 1, to: mnCoA2)).isEmpty)
        #expect(h.core.status.tunnelCareOf == coa)
        let done = h.core.handlePacket(h.ba(seq: sent.bu.sequence, to: mnCoA2))
        #expect(done == [.registered(careOf: mnCoA2, lifetime: 600), .tunnelUp(careOf: mnCoA2)])
        #expect(h.core.status.tunnelCareOf == mnCoA2)
        #expect(h.core.status.state == "registered")
        #expect(h.core.counters.registrations == 2)
        let info = h.records(.info).filter { $0.metadata["mip6.coa"] == "\(mnCoA2)" }
        #expect(info.contains { $0.message.contains("moved") && $0.metadata["mip6.seq"] == "\(sent.bu.sequence)" })
        #expect(info.contains { $0.message.contains("registered") && $0.metadata["mip6.status"] == "0" })
    }

    @Test func noInterfaceThenBack() throws {
        let h = MNHarness()
        h.register()
        #expect(h.core.careOfAddressChanged(nil) == [.tunnelDown])
        // No retransmission, no refresh: only the binding's expiry remains.
        let sentBefore = h.core.counters.busSent
        h.advance(30)
        #expect(h.core.tick().isEmpty)
        #expect(h.core.counters.busSent == sentBefore)
        // The same care-of address as before re-registers at once (the tunnel is down).
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let actions = h.core.handlePacket(h.ba(seq: sent.bu.sequence))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
    }

    @Test func rejectionReportsAndBacksOff() throws {
        let h = MNHarness()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let t = h.now
        let actions = h.core.handlePacket(h.ba(status: .prohibited, seq: sent.bu.sequence, lifetime: 0))
        #expect(actions == [.registrationFailed(status: .prohibited)])
        #expect(h.core.status.state == "failed")
        #expect(h.core.status.lastStatus == 129)
        #expect(h.core.nextDeadline == t + 32 * second)
        h.set(t + 32 * second)
        let retry = try #require(h.bu(h.core.tick()))
        #expect(retry.bu.sequence == sent.bu.sequence &+ 1)
        #expect(h.core.nextDeadline == t + 64 * second)
        #expect(h.records(.warning).contains { $0.metadata["mip6.status"] == "129" })
    }

    @Test func bindingRefreshRequestFromHomeAgent() throws {
        let h = MNHarness()
        let seq = h.register()
        let brr = MobilityHeaderCodec.encode(.bindingRefreshRequest(BindingRefreshRequest()), source: ha, destination: hoa)
        var packet: [UInt8] = [0x60, 0, 0, 0, 0, UInt8(24 + brr.count), 43, 64]
        packet += ha.bytes + coa.bytes
        packet += [135, 2, 2, 1, 0, 0, 0, 0] + hoa.bytes
        packet += brr
        let sent = try #require(h.bu(h.core.handlePacket(packet)))
        #expect(sent.bu.sequence == seq &+ 1)
        #expect(h.core.counters.refreshRequests == 1)
    }
}

@Suite("Mobile node: returning home and shutdown")
struct MobileNodeHomeTests {
    @Test func returningHomeDeregistersWithoutHomeAddressOption() throws {
        let h = MNHarness()
        let seq = h.register()
        let actions = h.core.careOfAddressChanged(hoa)
        #expect(actions.first == .tunnelDown)
        let dereg = try #require(h.bu(actions))
        // §11.5.5: from the home address, no Home Address option, A and H, Lifetime 0.
        #expect(dereg.source == hoa)
        #expect(dereg.destination == ha)
        #expect(dereg.homeAddressOption == nil)
        #expect(dereg.bu.lifetime == 0)
        #expect(dereg.bu.flags == [.ack, .home])
        #expect(dereg.bu.sequence == seq &+ 1)
        #expect(h.core.status.state == "deregistering")
        #expect(h.core.status.careOfAddress == nil)
        // Retransmitted until acknowledged (the home agent held a binding: 1 s).
        h.advance(1)
        let again = try #require(h.bu(h.core.tick()))
        #expect(again.source == hoa && again.homeAddressOption == nil && again.bu.lifetime == 0)
        // The BA comes straight to the home address: no routing header.
        let ba = h.ba(status: .notHomeAgentForThisMN, seq: again.bu.sequence, lifetime: 0, to: hoa, home: nil)
        #expect(h.core.handlePacket(ba).isEmpty)
        #expect(h.core.status.state == "home")
        #expect(h.core.nextDeadline == nil)
        #expect(h.core.counters.deregistrations == 1)
        #expect(h.records(.info).contains { $0.message.contains("returned home") })
        // Another address on the home link is still home: nothing new.
        #expect(h.core.careOfAddressChanged(addr("2001:db8:1::abcd")).isEmpty)
    }

    @Test func returningHomeAcceptedWithStatusZero() throws {
        let h = MNHarness()
        h.register()
        let dereg = try #require(h.bu(h.core.careOfAddressChanged(addr("2001:db8:1::abcd"))))
        #expect(dereg.source == hoa)
        #expect(h.core.handlePacket(h.ba(seq: dereg.bu.sequence, lifetime: 0, to: hoa, home: nil)).isEmpty)
        #expect(h.core.status.state == "home")
        // Leaving again: the home agent has no binding, so 1.5 s again.
        let t = h.now
        _ = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(h.core.nextDeadline == t + 1_500_000_000)
    }

    @Test func deregistrationRejectedOtherwiseKeepsTrying() throws {
        let h = MNHarness()
        h.register()
        let dereg = try #require(h.bu(h.core.careOfAddressChanged(hoa)))
        let actions = h.core.handlePacket(h.ba(status: .prohibited, seq: dereg.bu.sequence, lifetime: 0, to: hoa, home: nil))
        #expect(actions == [.registrationFailed(status: .prohibited)])
        #expect(h.core.status.state == "failed")
        #expect(h.core.nextDeadline != nil)
    }

    @Test func startingAtHomeDeregistersOnce() throws {
        let h = MNHarness()
        let actions = h.core.careOfAddressChanged(hoa)
        #expect(actions.first == .tunnelDown)
        let dereg = try #require(h.bu(actions))
        #expect(dereg.homeAddressOption == nil)
        #expect(h.core.handlePacket(h.ba(status: .notHomeAgentForThisMN, seq: dereg.bu.sequence, lifetime: 0,
                                         to: hoa, home: nil)).isEmpty)
        #expect(h.core.status.state == "home")
    }

    @Test func shutdownDeregistersFromTheCareOfAddress() throws {
        let h = MNHarness()
        let seq = h.register()
        let actions = h.core.shutdown()
        #expect(actions.count == 2)
        #expect(actions.last == .tunnelDown)
        let dereg = try #require(h.bu(actions))
        #expect(dereg.source == coa)
        #expect(dereg.homeAddressOption == hoa)
        #expect(dereg.bu.lifetime == 0)
        #expect(dereg.bu.sequence == seq &+ 1)
        #expect(h.core.status.state == "deregistering")
        // One attempt only, and nothing else runs any more.
        #expect(h.core.nextDeadline == nil)
        h.advance(5)
        #expect(h.core.tick().isEmpty)
        #expect(h.core.careOfAddressChanged(mnCoA2).isEmpty)
        #expect(h.core.shutdown().isEmpty)
        // The BA still counts when the daemon hands it in.
        #expect(h.core.handlePacket(h.ba(seq: dereg.bu.sequence, lifetime: 0)).isEmpty)
        #expect(h.core.counters.deregistrations == 1)
        #expect(h.core.status.state == "no-care-of-address")
    }

    @Test func shutdownWithoutCareOfAddress() {
        let h = MNHarness()
        #expect(h.core.shutdown() == [.tunnelDown])
        #expect(h.core.counters.busSent == 0)
    }
}

@Suite("Mobile node: status")
struct MobileNodeStatusTests {
    @Test func statusEncodesAsJSON() throws {
        let h = MNHarness()
        h.register()
        let status = h.core.status
        let data = try JSONEncoder().encode(status)
        let back = try JSONDecoder().decode(MobileNodeStatus.self, from: data)
        #expect(back == status)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"2001:db8:1::100\""))
        #expect(status.counters.lastRegistrationMs == 0)
        #expect(status.sequence == 100)
    }

    @Test func initialStatus() {
        let h = MNHarness()
        let status = h.core.status
        #expect(status.state == "no-care-of-address")
        #expect(status.sequence == nil)
        #expect(status.grantedLifetime == 0)
        #expect(status.secondsToRefresh == nil)
        #expect(h.core.nextDeadline == nil)
    }
}

@Suite("Mobile node against the home agent")
struct MobileNodeAgainstHomeAgentTests {
    final class Pair {
        let clock = TestClock()
        let dataPlane = MockDataPlane()
        let cache: BindingCache
        let agent: HomeAgentCore
        var mn: MobileNodeCore
        let mnConfig = MobileNodeConfiguration(homeAddress: hoa, homeAgent: ha, homePrefix: mnHomePrefix)

        init(initialSequence: UInt16) {
            cache = BindingCache(capacity: 10, dataPlane: dataPlane)
            let config = HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: mnHomePrefix,
                                                maxLifetime: 3600, capacity: 10, duplicateAddressDetection: false)
            agent = HomeAgentCore(configuration: config, cache: cache, clock: clock, logger: Logger(label: "ha", factory: { _ in SwiftLogNoOpLogHandler() }))
            mn = MobileNodeCore(configuration: mnConfig, clock: clock, logger: Logger(label: "mn", factory: { _ in SwiftLogNoOpLogHandler() }),
                                initialSequence: initialSequence)
        }

        func packets(_ actions: [MobileNodeAction]) -> [[UInt8]] {
            actions.compactMap { if case .send(let p, _) = $0 { return p } else { return nil } }
        }

        /// Carries the MN's BUs to the HA and the HA's replies back; returns the MN's actions.
        func exchange(_ actions: [MobileNodeAction]) -> [MobileNodeAction] {
            var result = actions.filter { if case .send = $0 { return false } else { return true } }
            var toHA = packets(actions)
            while !toHA.isEmpty {
                let bu = toHA.removeFirst()
                for reply in agent.handlePacket(bu, localAddresses: [ha]) {
                    guard case .send(let packet, _) = reply else { continue }
                    let back = mn.handlePacket(packet)
                    toHA += packets(back)
                    result += back.filter { if case .send = $0 { return false } else { return true } }
                }
            }
            return result
        }
    }

    @Test func registerMoveAndReturnHome() throws {
        let pair = Pair(initialSequence: 40000)
        // Registration.
        var actions = pair.exchange(pair.mn.careOfAddressChanged(coa))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
        #expect(pair.cache[hoa]?.careOfAddress == coa)
        #expect(pair.cache[hoa]?.lifetime == 600)
        #expect(pair.mn.status.state == "registered")

        // Move.
        pair.clock.advance(seconds: 20)
        actions = pair.exchange(pair.mn.careOfAddressChanged(mnCoA2))
        #expect(actions == [.registered(careOf: mnCoA2, lifetime: 600), .tunnelUp(careOf: mnCoA2)])
        #expect(pair.cache[hoa]?.careOfAddress == mnCoA2)

        // Refresh at 75 %.
        let deadline = try #require(pair.mn.nextDeadline)
        pair.clock.now = deadline
        actions = pair.exchange(pair.mn.tick())
        #expect(actions == [.registered(careOf: mnCoA2, lifetime: 600)])
        #expect(pair.agent.counters.refreshes == 2)

        // Return home.
        pair.clock.advance(seconds: 20)
        actions = pair.exchange(pair.mn.careOfAddressChanged(hoa))
        #expect(actions == [.tunnelDown])
        #expect(pair.cache[hoa] == nil)
        #expect(pair.mn.status.state == "home")
        #expect(pair.agent.counters.deregistrations == 1)
        #expect(pair.mn.counters.acksIgnored == 0)
        #expect(pair.mn.nextDeadline == nil)
    }

    @Test func restartedMobileNodeResynchronises() throws {
        let pair = Pair(initialSequence: 40000)
        _ = pair.exchange(pair.mn.careOfAddressChanged(coa))
        #expect(pair.cache[hoa]?.sequence == 40000)
        // The mobile node restarts with a sequence number the home agent considers old.
        pair.clock.advance(seconds: 5)
        pair.mn = MobileNodeCore(configuration: pair.mnConfig, clock: pair.clock, logger: Logger(label: "mn", factory: { _ in SwiftLogNoOpLogHandler() }),
                                 initialSequence: 39000)
        let actions = pair.exchange(pair.mn.careOfAddressChanged(mnCoA2))
        #expect(actions == [.registered(careOf: mnCoA2, lifetime: 600), .tunnelUp(careOf: mnCoA2)])
        #expect(pair.mn.counters.resyncs135 == 1)
        #expect(pair.cache[hoa]?.sequence == 40001)
        #expect(pair.cache[hoa]?.careOfAddress == mnCoA2)
    }

    @Test func shutdownDeregistersAtTheHomeAgent() throws {
        let pair = Pair(initialSequence: 7)
        _ = pair.exchange(pair.mn.careOfAddressChanged(coa))
        #expect(pair.cache[hoa] != nil)
        pair.clock.advance(seconds: 3)
        let actions = pair.exchange(pair.mn.shutdown())
        #expect(actions == [.tunnelDown])
        #expect(pair.cache[hoa] == nil)
        #expect(pair.mn.counters.deregistrations == 1)
    }

    @Test func startingAtHomeWithoutBindingGets133() throws {
        let pair = Pair(initialSequence: 1)
        let actions = pair.exchange(pair.mn.careOfAddressChanged(hoa))
        #expect(actions == [.tunnelDown])
        #expect(pair.mn.status.state == "home")
        #expect(pair.mn.status.lastStatus == 133)
    }
}
