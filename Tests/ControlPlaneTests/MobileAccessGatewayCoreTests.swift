import Foundation
import Logging
import Testing
@testable import ControlPlane

/// Router Advertisement and Router Solicitations as scapy 2.5 (/usr/bin/python3) builds them,
/// hex pasted here once:
///
///     from scapy.layers.inet6 import *
///     ra = IPv6(src='fe80::1', dst='ff02::1', hlim=255)/ICMPv6ND_RA(chlim=64, prf=0, routerlifetime=1800) \
///          /ICMPv6NDOptSrcLLAddr(lladdr='02:00:5e:00:53:01')/ICMPv6NDOptMTU(mtu=1460) \
///          /ICMPv6NDOptPrefixInfo(prefix='2001:db8:100:1::', prefixlen=64, L=1, A=1,
///                                 validlifetime=7200, preferredlifetime=1800)
///     rs = IPv6(src='fe80::200:ff:fe00:a01', dst='ff02::2', hlim=255)/ICMPv6ND_RS() \
///          /ICMPv6NDOptSrcLLAddr(lladdr='02:00:00:00:0a:01')
///     rs0 = IPv6(src='::', dst='ff02::2', hlim=255)/ICMPv6ND_RS()
///     print(raw(ra).hex(), raw(rs).hex(), raw(rs0).hex())
///
/// `prf=0`: scapy's ICMPv6ND_RA defaults to RFC 4191 preference 01 (high); our RAs leave those
/// bits 00 (medium, RFC 4861's reserved value), so the reference says so explicitly.
private enum ScapyND {
    static let routerAdvertisement = hex("""
        6000000000403afffe800000000000000000000000000001ff0200000000000000000000000000018600e098400007080000000000000000
        010102005e005301 05010000000005b4 030440c000001c20000007080000000020010db8010000010000000000000000
        """)
    static let routerSolicitation = hex("""
        6000000000103afffe80000000000000020000fffe000a01ff0200000000000000000000000000028500652c00000000
        0101020000000a01
        """)
    static let routerSolicitationUnspecified = hex("""
        6000000000083aff00000000000000000000000000000000ff02000000000000000000000000000285007bb800000000
        """)
}

private let second: UInt64 = 1_000_000_000
private let pcoa = addr("2001:db8:b1::2")
private let lmaAddress = addr("2001:db8:a::1")
private let otherLMA = addr("2001:db8:a::99")
private let sharedMAC: [UInt8] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]
private let mac1: [UInt8] = [0x02, 0, 0, 0, 0x0a, 0x01]
private let mac2: [UInt8] = [0x02, 0, 0, 0, 0x0a, 0x02]
private let mac3: [UInt8] = [0x02, 0, 0, 0, 0x0a, 0x03]
private let stranger: [UInt8] = [0x02, 0, 0, 0, 0x0b, 0xff]
private let hnp1 = IPv6Prefix("2001:db8:100:1::/64")!
private let poolPrefix = IPv6Prefix("2001:db8:200::/48")!
private let assignedFromPool = IPv6Prefix("2001:db8:200:7::/64")!
private let allZero = IPv6Prefix("::/0")!

/// mn1: fixed prefix, explicit LMA; mn2: pool, default LMA; mn3: pool, another LMA.
private let policyText = """
    pool 2001:db8:200::/48
    mn mn1@pmip.example mac 02:00:00:00:0a:01 prefix 2001:db8:100:1::/64 lma 2001:db8:a::1
    mn mn2@pmip.example mac 02:00:00:00:0a:02 prefix pool
    mn mn3@pmip.example mac 02:00:00:00:0a:03 prefix pool lma 2001:db8:a::99
    """

/// A Proxy Binding Update as it left the MAG, decoded back with the project's parser and codec
/// (checksum verified).
private struct SentPBU {
    var packet: MobilityPacket
    var pbu: BindingUpdate
    var options: ProxyOptions { pbu.proxyOptions }
    var timestamp: ProxyTimestamp? { options.timestamps.count == 1 ? options.timestamps[0] : nil }
}

/// A Router Advertisement as sent, parsed by hand (RFC 4861 §4.2, §4.6).
private struct SentRA {
    var mac: [UInt8]
    var ifindex: UInt32
    var source: IPv6Address
    var destination: IPv6Address
    var hopLimit: UInt8
    var checksumValid: Bool
    var curHopLimit: UInt8
    var routerLifetime: UInt16
    var sourceLinkLayer: [UInt8]?
    var mtu: UInt32?
    var prefixes: [(prefix: IPv6Prefix, flags: UInt8, valid: UInt32, preferred: UInt32)] = []
}

private final class MAGHarness {
    let clock = TestClock()
    let wall: TestWallClock
    let logs = LogCapture()
    let core: MobileAccessGatewayCore

    init(initialSequence: UInt16 = 100, requestedLifetime: UInt32 = 60, accessLinkMTU: UInt32 = 1500) {
        // 2026-12-06 20:32:44 UTC when the monotonic clock reads 0; both advance together.
        wall = TestWallClock(NTPTimestamp.from(unixSeconds: 1_796_589_164, nanoseconds: 0), following: clock)
        let policy = try! ProxyPolicy(parsing: policyText)
        let config = MobileAccessGatewayConfiguration(
            proxyCareOf: pcoa, defaultLMA: lmaAddress, linkLayerAddress: sharedMAC, policy: policy,
            requestedLifetime: requestedLifetime, accessLinkMTU: accessLinkMTU, wallClock: wall)
        core = MobileAccessGatewayCore(configuration: config, clock: clock, logger: logs.logger(),
                                       initialSequence: initialSequence)
    }

    var now: UInt64 { clock.now }
    func advance(_ seconds: Double) { clock.advance(seconds: seconds) }
    func set(_ t: UInt64) {
        precondition(t >= clock.now)
        clock.now = t
    }
    /// What the wall clock reads now, as a PMIPv6 timestamp.
    var wallTimestamp: ProxyTimestamp { ProxyTimestamp(ntp: wall.ntpTimestamp()) }

    func pbus(_ actions: [MobileAccessGatewayAction]) -> [SentPBU] {
        actions.compactMap { action -> SentPBU? in
            guard case .send(let bytes, _) = action else { return nil }
            guard let p = try? IPv6PacketParser.parseMobility(bytes),
                  case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(
                      p.mh, source: p.checksumSource, destination: p.checksumDestination)
            else {
                Issue.record("sent packet is not a valid Binding Update")
                return nil
            }
            return SentPBU(packet: p, pbu: bu)
        }
    }

    /// The one PBU in `actions` (and nothing else of the kind).
    func pbu(_ actions: [MobileAccessGatewayAction]) -> SentPBU? {
        let all = pbus(actions)
        return all.count == 1 ? all[0] : nil
    }

    /// The forwarding the actions install, in order.
    func installs(_ actions: [MobileAccessGatewayAction]) -> [MobileAccessGatewayForwarding] {
        actions.compactMap { if case .install(let f, _) = $0 { f } else { nil } }
    }

    func ras(_ actions: [MobileAccessGatewayAction]) -> [SentRA] {
        actions.compactMap { action -> SentRA? in
            guard case .sendRouterAdvertisement(let bytes, let mac, let ifindex) = action else { return nil }
            return parseRA(bytes, mac: mac, ifindex: ifindex)
        }
    }

    /// A PBA as the LMA sends it: to the Proxy-CoA, P set, echoing the PBU's options (RFC 5213
    /// §5.3.6) with the assigned prefix in place of the requested ones.
    func pba(for sent: SentPBU, status: BAStatus = .accepted, lifetime: UInt16? = nil,
             assign: [IPv6Prefix]? = nil, sequence: UInt16? = nil, flags: BAFlags = [.proxy],
             from: IPv6Address = lmaAddress, to: IPv6Address = pcoa,
             options: [MobilityOption]? = nil) -> [UInt8] {
        var echoed: [MobilityOption] = []
        for option in sent.pbu.options {
            if case .homeNetworkPrefix = option {
                if let assign {
                    if !echoed.contains(where: { if case .homeNetworkPrefix = $0 { true } else { false } }) {
                        echoed += assign.map { .homeNetworkPrefix($0) }
                    }
                    continue
                }
            }
            echoed.append(option)
        }
        let ba = BindingAcknowledgement(status: status, flags: flags, sequence: sequence ?? sent.pbu.sequence,
                                        lifetime: lifetime ?? sent.pbu.lifetime, options: options ?? echoed)
        return PacketBuilder.bindingAcknowledgement(ba, from: from, to: to, homeAddress: nil)
    }

    /// Attaches `mac` and answers its PBU with acceptance; returns the accepting actions.
    @discardableResult
    func register(_ mac: [UInt8] = mac1, ifindex: UInt32 = 7, assign: [IPv6Prefix]? = nil) -> [MobileAccessGatewayAction] {
        guard let sent = pbu(core.attach(mac: mac, ifindex: ifindex, trigger: .carrierUp)) else {
            Issue.record("no PBU on attach")
            return []
        }
        return core.handlePacket(pba(for: sent, assign: assign))
    }

    func forwarding(_ mac: [UInt8] = mac1, ifindex: UInt32 = 7, prefixes: [IPv6Prefix] = [hnp1],
                    identifier: String = "mn1@pmip.example", lma: IPv6Address = lmaAddress) -> MobileAccessGatewayForwarding {
        MobileAccessGatewayForwarding(mac: mac, ifindex: ifindex, identifier: identifier, homeNetworkPrefixes: prefixes,
                                      lma: lma, proxyCareOf: pcoa)
    }
}

private func parseRA(_ bytes: [UInt8], mac: [UInt8], ifindex: UInt32) -> SentRA? {
    guard bytes.count >= 56, bytes[6] == 58 else { return nil }
    let icmp = Array(bytes[40...])
    let source = IPv6Address(bytes: bytes[8..<24]), destination = IPv6Address(bytes: bytes[24..<40])
    guard icmp[0] == 134, icmp[1] == 0 else { return nil }
    func u32(_ i: Int) -> UInt32 { icmp[i..<i + 4].reduce(0) { $0 << 8 | UInt32($1) } }
    var ra = SentRA(mac: mac, ifindex: ifindex, source: source, destination: destination, hopLimit: bytes[7],
                    checksumValid: InternetChecksum.upperLayer(source: source, destination: destination,
                                                               nextHeader: 58, payload: icmp) == 0,
                    curHopLimit: icmp[4], routerLifetime: UInt16(icmp[6]) << 8 | UInt16(icmp[7]))
    var i = 16
    while i + 2 <= icmp.count {
        let length = Int(icmp[i + 1]) * 8
        guard length > 0, i + length <= icmp.count else { return nil }
        switch icmp[i] {
        case 1: ra.sourceLinkLayer = Array(icmp[i + 2..<i + 8])
        case 5: ra.mtu = u32(i + 4)
        case 3:
            let prefix = IPv6Prefix(address: IPv6Address(bytes: icmp[i + 16..<i + 32]), length: Int(icmp[i + 2]))!
            ra.prefixes.append((prefix, icmp[i + 3], u32(i + 4), u32(i + 8)))
        default: break
        }
        i += length
    }
    return ra
}

@Suite("Mobile access gateway: Proxy Binding Update content (RFC 5213 §6.9.1.1, §6.9.1.5)")
struct MobileAccessGatewayPBUTests {
    @Test func firstPBUForAFixedPrefixNode() throws {
        let h = MAGHarness(initialSequence: 100)
        let expectedTimestamp = h.wallTimestamp
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        // From the Proxy-CoA to the node's LMA; no Home Address option, no Type 2 Routing Header.
        #expect(sent.packet.source == pcoa)
        #expect(sent.packet.destination == lmaAddress)
        #expect(sent.packet.homeAddressOption == nil && sent.packet.routingType2Address == nil)
        #expect(sent.packet.mhOffset == 40)
        // §8.1: A and P set; H (and everything else) clear.
        #expect(sent.pbu.flags == [.ack, .proxy])
        #expect(sent.pbu.flags.rawValue == 0x8200)
        #expect(sent.pbu.sequence == 100)
        #expect(sent.pbu.lifetime == 15) // 60 s in 4-second units
        let o = sent.options
        #expect(o.mobileNodeIdentifiers.count == 1)
        #expect(o.mobileNodeIdentifiers.first?.subtype == 1)
        #expect(o.networkAccessIdentifier == "mn1@pmip.example")
        #expect(o.homeNetworkPrefixes == [hnp1])
        #expect(o.handoffIndicators == [MobilityOption.HandoffIndicator.unknown], "a MAG cannot know whether the node roamed in")
        #expect(o.accessTechnologyTypes == [MobilityOption.AccessTechnology.ethernet])
        #expect(o.linkLayerIdentifiers == [mac1])
        #expect(o.timestamps == [expectedTimestamp])
        #expect(o.linkLocalAddresses.isEmpty)
        // Nothing but those six (padding is not returned by the decoder).
        #expect(sent.pbu.options.count == 6)
        #expect(h.core.entry(mac: mac1)?.state == .pending)
        #expect(h.core.counters.pbusSent == 1 && h.core.counters.attaches == 1)
    }

    @Test func poolNodeAsksForAPrefixWithOneAllZeroOption() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac2, ifindex: 3, trigger: .unknownMAC)))
        #expect(sent.options.homeNetworkPrefixes == [allZero])
        #expect(sent.options.networkAccessIdentifier == "mn2@pmip.example")
        #expect(sent.options.linkLayerIdentifiers == [mac2])
        // No LMA in the policy: the configured default.
        #expect(sent.packet.destination == lmaAddress)
        let third = try #require(h.pbu(h.core.attach(mac: mac3, ifindex: 3, trigger: .unknownMAC)))
        #expect(third.packet.destination == otherLMA)
    }

    @Test func unknownMACIsCountedAndNothingIsSent() {
        let h = MAGHarness()
        let actions = h.core.attach(mac: stranger, ifindex: 7, trigger: .unknownMAC)
        #expect(actions == [.notAuthorized(mac: stranger, ifindex: 7)])
        #expect(h.core.counters.unknownMobileNodes == 1)
        #expect(h.core.counters.pbusSent == 0 && h.core.counters.attaches == 0)
        #expect(h.core.entryCount == 0)
        #expect(h.core.nextDeadline == nil)
    }

    @Test func retransmissionsBackOffFromOnePointFiveSecondsWithFreshTimestamps() throws {
        let h = MAGHarness(initialSequence: 100)
        let t0 = h.now
        let first = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        var lastTimestamp = try #require(first.timestamp)
        // RFC 6275 §11.8 / §13 via RFC 5213 §6.9.4: InitialBindackTimeoutFirstReg 1.5 s, doubling,
        // capped at MAX_BINDACK_TIMEOUT 32 s.
        let intervals: [Double] = [1.5, 3, 6, 12, 24, 32, 32]
        var expectedAt = t0
        var sequence: UInt16 = 100
        for interval in intervals {
            expectedAt += UInt64(interval * 1e9)
            #expect(h.core.nextDeadline == expectedAt)
            h.set(expectedAt - 1_000_000)
            #expect(h.core.tick().isEmpty, "nothing due 1 ms before \(interval) s")
            h.set(expectedAt)
            let again = try #require(h.pbu(h.core.tick()))
            sequence &+= 1
            // A new sequence number and a fresh Timestamp each time (§5.5): the wall clock's now.
            #expect(again.pbu.sequence == sequence)
            let ts = try #require(again.timestamp)
            #expect(ts > lastTimestamp)
            #expect(ts == h.wallTimestamp)
            lastTimestamp = ts
            #expect(again.pbu.flags == [.ack, .proxy])
            #expect(again.options.homeNetworkPrefixes == [hnp1])
        }
        #expect(h.core.counters.pbusSent == UInt64(intervals.count + 1))
        #expect(h.core.counters.retransmissions == UInt64(intervals.count))
        #expect(h.core.entry(mac: mac1)?.transmissions == intervals.count + 1)
        // Only the latest transmission is outstanding: the PBA for the first is stale.
        #expect(h.core.handlePacket(h.pba(for: first)).isEmpty)
        #expect(h.core.counters.pbasIgnored == 1)
    }

    @Test func timestampsStayStrictlyIncreasingWhenTheWallClockStandsStill() throws {
        let h = MAGHarness()
        h.wall.follow = nil // frozen
        let first = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        h.set(try #require(h.core.nextDeadline))
        let again = try #require(h.pbu(h.core.tick()))
        #expect(try #require(again.timestamp).rawValue == (try #require(first.timestamp)).rawValue + 1)
    }
}

@Suite("Mobile access gateway: Proxy Binding Acknowledgement (RFC 5213 §6.9.1.2)")
struct MobileAccessGatewayPBATests {
    @Test func acceptedInstallsForwardingThenAdvertisesTheAssignedPrefix() throws {
        let h = MAGHarness()
        let attach = h.core.attach(mac: mac2, ifindex: 3, trigger: .carrierUp)
        #expect(h.ras(attach).isEmpty, "no RA before the PBA")
        let sent = try #require(h.pbu(attach))
        // An RS meanwhile does not bring the RA forward either.
        #expect(h.core.attach(mac: mac2, ifindex: 3, trigger: .routerSolicitation).isEmpty)

        let actions = h.core.handlePacket(h.pba(for: sent, assign: [assignedFromPool]))
        let expected = h.forwarding(mac2, ifindex: 3, prefixes: [assignedFromPool], identifier: "mn2@pmip.example")
        try #require(actions.count == 2)
        #expect(h.installs(actions) == [expected], "forwarding first")
        // The data plane's expiry: the granted 60 s from when the PBU left.
        guard case .install(_, let expiresAt) = actions[0] else { Issue.record("\(actions)"); return }
        #expect(expiresAt == h.now + 60 * second)
        guard case .sendRouterAdvertisement = actions[1] else {
            Issue.record("the RA comes second")
            return
        }
        let ra = try #require(h.ras(actions).first)
        #expect(ra.mac == mac2 && ra.ifindex == 3)
        #expect(ra.source == addr("fe80::1") && ra.destination == addr("ff02::1") && ra.hopLimit == 255)
        #expect(ra.checksumValid)
        #expect(ra.curHopLimit == 64 && ra.routerLifetime == 1800)
        #expect(ra.sourceLinkLayer == sharedMAC)
        #expect(ra.mtu == 1460) // link 1500 - 40 for the tunnel
        // The LMA's assignment, not the all-zero request.
        #expect(ra.prefixes.count == 1)
        #expect(ra.prefixes.first?.prefix == assignedFromPool)
        #expect(ra.prefixes.first?.flags == 0xc0) // L and A
        #expect(ra.prefixes.first?.valid == 7200 && ra.prefixes.first?.preferred == 1800)

        let entry = try #require(h.core.entry(mac: mac2))
        #expect(entry.state == .registered && entry.installed)
        #expect(entry.homeNetworkPrefixes == [assignedFromPool])
        #expect(entry.grantedLifetime == 60)
        #expect(h.core.counters.pbasAccepted == 1 && h.core.counters.registrations == 1)
        #expect(h.core.counters.rasSent == 1)
    }

    @Test func advertisedMTUNeverGoesBelow1280() throws {
        let h = MAGHarness(accessLinkMTU: 1300)
        let ra = try #require(h.ras(h.register()).first)
        #expect(ra.mtu == 1280)
        #expect(h.core.configuration.advertisedMTU == 1280)
        #expect(MAGHarness(accessLinkMTU: 9000).core.configuration.advertisedMTU == 8960)
    }

    @Test func answersThatDoNotMatchAreIgnored() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        var stale = sent.pbu.options
        stale.removeAll { if case .timestamp = $0 { true } else { false } }
        stale.append(.timestamp(ProxyTimestamp(rawValue: try #require(sent.timestamp).rawValue - 65536)))
        var otherNAI = sent.pbu.options
        otherNAI[0] = .mobileNodeIdentifier(subtype: 1, identifier: Array("mn9@pmip.example".utf8))
        let wrong: [(String, [UInt8])] = [
            ("wrong sequence", h.pba(for: sent, sequence: sent.pbu.sequence &+ 1)),
            ("older sequence", h.pba(for: sent, sequence: sent.pbu.sequence &- 1)),
            ("not from the LMA", h.pba(for: sent, from: otherLMA)),
            ("no P flag", h.pba(for: sent, flags: [])),
            ("not to the Proxy-CoA", h.pba(for: sent, to: addr("2001:db8:b2::2"))),
            ("timestamp not echoed", h.pba(for: sent, options: stale)),
            ("another node's MN-ID", h.pba(for: sent, options: otherNAI)),
        ]
        for (why, packet) in wrong {
            #expect(h.core.handlePacket(packet).isEmpty, "\(why)")
        }
        #expect(h.core.counters.pbasIgnored == UInt64(wrong.count))
        #expect(h.core.counters.pbasAccepted == 0)
        #expect(h.core.entry(mac: mac1)?.state == .pending)
        // A Binding Update is not an answer.
        #expect(h.core.handlePacket(PacketBuilder.proxyBindingUpdate(sent.pbu, from: lmaAddress, to: pcoa)).isEmpty)
        #expect(h.core.counters.packetsIgnored == 1)
        // The right one still works.
        #expect(h.core.handlePacket(h.pba(for: sent)).first.map { h.installs([$0]) } == [h.forwarding()])
    }

    @Test func withoutAnMNIdentifierTheSequenceNumberMatches() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        let bare: [MobilityOption] = [.homeNetworkPrefix(hnp1)]
        #expect(h.core.handlePacket(h.pba(for: sent, sequence: sent.pbu.sequence &+ 5, options: bare)).isEmpty)
        #expect(h.core.handlePacket(h.pba(for: sent, options: bare)).first.map { h.installs([$0]) } == [h.forwarding()])
    }

    @Test func twoNodesWithTheSameSequenceAreToldApartByMNIdentifier() throws {
        let h = MAGHarness(initialSequence: 500)
        let one = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        let two = try #require(h.pbu(h.core.attach(mac: mac2, ifindex: 8, trigger: .carrierUp)))
        #expect(one.pbu.sequence == two.pbu.sequence)
        // Without MN-ID the number alone is ambiguous: ignored.
        #expect(h.core.handlePacket(h.pba(for: two, options: [.homeNetworkPrefix(assignedFromPool)])).isEmpty)
        let actions = h.core.handlePacket(h.pba(for: two, assign: [assignedFromPool]))
        #expect(actions.first.map { h.installs([$0]) } == [h.forwarding(mac2, ifindex: 8, prefixes: [assignedFromPool],
                                                       identifier: "mn2@pmip.example")])
        #expect(h.core.entry(mac: mac1)?.state == .pending)
        #expect(h.core.entry(mac: mac2)?.state == .registered)
    }

    @Test func rejectionInstallsNothingAndRetriesAfterMaxBindackTimeout() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        let status = BAStatus.notAuthorizedForHomeNetworkPrefix // 155
        #expect(status.rawValue == 155)
        let actions = h.core.handlePacket(h.pba(for: sent, status: status, lifetime: 0))
        #expect(actions == [.registrationFailed(mac: mac1, status: status)])
        #expect(h.core.counters.pbasRejected == 1 && h.core.counters.rasSent == 0)
        let entry = try #require(h.core.entry(mac: mac1))
        #expect(entry.state == .pending && !entry.installed && entry.lastStatus == 155)
        // An RS does not get an RA out of a rejected node.
        #expect(h.core.attach(mac: mac1, ifindex: 7, trigger: .routerSolicitation).isEmpty)
        let t = h.now
        #expect(h.core.nextDeadline == t + 32 * second)
        h.set(t + 32 * second)
        let retry = try #require(h.pbu(h.core.tick()))
        #expect(retry.pbu.sequence == sent.pbu.sequence &+ 1)
        #expect(try #require(retry.timestamp) > (try #require(sent.timestamp)))
        #expect(h.core.nextDeadline == t + 64 * second)
    }

    @Test func timestampMismatchIsRetriedOnceAtOnceWithAFreshTimestamp() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        h.advance(0.2)
        // §5.5: 156 carries the LMA's clock in the Timestamp option.
        let lmaClock: [MobilityOption] = [.timestamp(ProxyTimestamp(rawValue: try #require(sent.timestamp).rawValue + 5 << 16))]
        let retry = try #require(h.pbu(h.core.handlePacket(h.pba(for: sent, status: .timestampMismatch, options: lmaClock))))
        #expect(retry.pbu.sequence == sent.pbu.sequence &+ 1)
        #expect(retry.timestamp == h.wallTimestamp)
        #expect(h.core.counters.timestampRetries == 1 && h.core.counters.pbasRejected == 1)
        // The second 156 in a row is a failure.
        let second156 = h.core.handlePacket(h.pba(for: retry, status: .timestampMismatch, options: lmaClock))
        #expect(second156 == [.registrationFailed(mac: mac1, status: .timestampMismatch)])
        #expect(h.core.counters.timestampRetries == 1)
    }

    @Test func status135ResynchronisesTheSequenceNumber() throws {
        let h = MAGHarness(initialSequence: 100)
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        // RFC 6275 §11.7.1: the PBA carries the LMA's last accepted number (newer than ours).
        let again = try #require(h.pbu(h.core.handlePacket(h.pba(for: sent, status: .sequenceOutOfWindow, sequence: 4000))))
        #expect(again.pbu.sequence == 4001)
        #expect(h.core.counters.resyncs135 == 1)
        // A stale 135 (older than what we sent since) is ignored.
        #expect(h.core.handlePacket(h.pba(for: sent, status: .sequenceOutOfWindow, sequence: 3000)).isEmpty)
        #expect(h.core.handlePacket(h.pba(for: again)).first.map { h.installs([$0]) } == [h.forwarding()])
    }

    @Test func malformedAndTruncatedInputNeverCrashesOrRegisters() throws {
        let h = MAGHarness()
        let sent = try #require(h.pbu(h.core.attach(mac: mac1, ifindex: 7, trigger: .carrierUp)))
        let good = h.pba(for: sent)
        var fed = 0
        for length in 0..<good.count {
            _ = h.core.handlePacket(Array(good.prefix(length)))
            fed += 1
        }
        // Every bit from the payload length on, except the hop limit (which nothing checks):
        // each flip breaks the framing, the addresses or the checksum.
        for i in 4..<good.count where i != 7 {
            for bit in 0..<8 {
                var bad = good
                bad[i] ^= 1 << bit
                #expect(h.core.handlePacket(bad).isEmpty, "byte \(i) bit \(bit)")
                fed += 1
            }
        }
        _ = h.core.handlePacket([0x60] + [UInt8](repeating: 0xff, count: 100))
        fed += 1
        let c = h.core.counters
        #expect(c.pbasIgnored + c.packetsIgnored == UInt64(fed))
        #expect(c.pbasAccepted == 0 && h.core.entry(mac: mac1)?.state == .pending)
        #expect(h.core.handlePacket(good).first.map { h.installs([$0]) } == [h.forwarding()])
    }
}

@Suite("Mobile access gateway: lifetime, detach, router advertisements")
struct MobileAccessGatewayLifetimeTests {
    @Test func refreshAtThreeQuartersOfTheGrantedLifetime() throws {
        let h = MAGHarness()
        let t0 = h.now
        h.register()
        // Granted 60 s from when the PBU left: refresh at 45 s with HI 5 and the assigned prefix.
        h.set(t0 + 45 * second - 1_000_000)
        #expect(h.pbus(h.core.tick()).isEmpty)
        h.set(t0 + 45 * second)
        let refresh = try #require(h.pbu(h.core.tick()))
        #expect(refresh.options.handoffIndicators == [MobilityOption.HandoffIndicator.notChanged])
        #expect(refresh.options.homeNetworkPrefixes == [hnp1])
        #expect(refresh.pbu.lifetime == 15 && refresh.pbu.flags == [.ack, .proxy])
        #expect(refresh.timestamp == h.wallTimestamp)
        // The LMA holds a binding: INITIAL_BINDACK_TIMEOUT (1 s) for the retransmission.
        #expect(h.core.entry(mac: mac1)?.millisecondsToRetransmission == 1000)
        // Accepted: same forwarding, so no extra RA; the data plane's expiry moves on.
        let accepted = h.core.handlePacket(h.pba(for: refresh))
        #expect(accepted == [.install(h.forwarding(), expiresAt: h.now + 60 * second)])
        #expect(h.core.counters.refreshes == 1 && h.core.counters.registrations == 1)
        #expect(h.core.entry(mac: mac1)?.secondsToExpiry == 60)
        #expect(h.core.entry(mac: mac1)?.secondsToRefresh == 45)
    }

    @Test func bindingExpiresWhenNoRefreshIsAccepted() throws {
        let h = MAGHarness()
        let t0 = h.now
        h.register()
        var removed: [MobileAccessGatewayAction] = []
        var t = t0
        while t < t0 + 60 * second {
            t = try #require(h.core.nextDeadline)
            h.set(t)
            removed += h.core.tick().filter { if case .remove = $0 { true } else { false } }
            if t < t0 + 60 * second { #expect(removed.isEmpty, "still forwarding at \(t - t0)") }
        }
        #expect(h.now == t0 + 60 * second)
        #expect(removed == [.remove(h.forwarding())])
        #expect(h.core.counters.expirations == 1)
        let entry = try #require(h.core.entry(mac: mac1))
        #expect(entry.state == .pending && !entry.installed)
        // No more RAs for it, and retransmissions go on.
        h.advance(10)
        let later = h.core.tick()
        #expect(h.ras(later).isEmpty)
    }

    @Test func periodicUnicastRouterAdvertisement() throws {
        let h = MAGHarness()
        let t0 = h.now
        h.register(ifindex: 9)
        #expect(h.core.nextDeadline == t0 + 3 * second)
        h.set(t0 + 3 * second - 1)
        #expect(h.core.tick().isEmpty)
        h.set(t0 + 3 * second)
        let first = h.ras(h.core.tick())
        #expect(first.count == 1)
        #expect(first.first?.mac == mac1 && first.first?.ifindex == 9)
        #expect(first.first?.prefixes.map(\.prefix) == [hnp1])
        h.set(t0 + 6 * second)
        #expect(h.ras(h.core.tick()).count == 1)
        #expect(h.core.counters.rasSent == 3)
        // An RS from the registered node: an RA at once, no PBU, and the period restarts.
        h.set(t0 + 7 * second)
        let solicited = h.core.attach(mac: mac1, ifindex: 9, trigger: .routerSolicitation)
        #expect(h.ras(solicited).count == 1 && h.pbus(solicited).isEmpty)
        #expect(h.core.nextDeadline == t0 + 10 * second)
    }

    @Test func detachRemovesForwardingAndDeregisters() throws {
        let h = MAGHarness()
        h.register(mac2, ifindex: 4, assign: [assignedFromPool])
        #expect(h.core.entriesByState == [.registered: 1])
        h.advance(5)
        let actions = h.core.detach(mac: mac2)
        #expect(h.core.entriesByState == [.deregistering: 1])
        try #require(actions.count == 3)
        #expect(actions[0] == .remove(h.forwarding(mac2, ifindex: 4, prefixes: [assignedFromPool],
                                                   identifier: "mn2@pmip.example")))
        #expect(actions[2] == .untrack(mac: mac2), "its next frame here is an attach trigger again")
        let dereg = try #require(h.pbu(actions))
        // §6.9.1.4: Lifetime 0, A|P, naming the assigned prefix.
        #expect(dereg.pbu.lifetime == 0 && dereg.pbu.flags == [.ack, .proxy])
        #expect(dereg.options.homeNetworkPrefixes == [assignedFromPool])
        #expect(dereg.options.networkAccessIdentifier == "mn2@pmip.example")
        #expect(dereg.timestamp == h.wallTimestamp)
        #expect(h.core.entry(mac: mac2)?.state == .deregistering)
        #expect(h.core.detach(mac: mac2).isEmpty, "already de-registering")
        // No RA for a detached node.
        h.advance(0.5)
        #expect(h.ras(h.core.tick()).isEmpty)
        // Acknowledged: the entry goes, and with it the MAC (its next frame is an attach trigger).
        #expect(h.core.handlePacket(h.pba(for: dereg, lifetime: 0)) == [.untrack(mac: mac2)])
        #expect(h.core.entry(mac: mac2) == nil)
        #expect(h.core.entriesByState.isEmpty)
        #expect(h.core.counters.deregistrations == 1 && h.core.counters.detaches == 1)
        #expect(h.core.nextDeadline == nil)
    }

    @Test func unansweredDeregistrationIsDroppedAfterThreeAttempts() throws {
        let h = MAGHarness()
        h.register()
        let t = h.now
        #expect(h.pbu(h.core.detach(mac: mac1))?.pbu.lifetime == 0)
        h.set(t + 1 * second)
        #expect(h.pbu(h.core.tick())?.pbu.lifetime == 0)
        h.set(t + 3 * second)
        #expect(h.pbu(h.core.tick())?.pbu.lifetime == 0)
        h.set(t + 7 * second)
        #expect(h.core.tick() == [.untrack(mac: mac1)])
        #expect(h.core.entry(mac: mac1) == nil)
        #expect(h.core.counters.deregistrationTimeouts == 1 && h.core.counters.pbusSent == 4)
        #expect(h.core.nextDeadline == nil)
    }

    @Test func moveToAnotherAccessLinkReregistersWithHandoffIndicator3() throws {
        let h = MAGHarness()
        h.register(mac2, ifindex: 4, assign: [assignedFromPool])
        let old = h.forwarding(mac2, ifindex: 4, prefixes: [assignedFromPool], identifier: "mn2@pmip.example")
        let actions = h.core.attach(mac: mac2, ifindex: 5, trigger: .carrierUp)
        try #require(actions.count == 3)
        #expect(actions[0] == .remove(old))
        #expect(actions[1] == .track(mac: mac2, ifindex: 5), "frames from the new link are the node's now")
        let pbu = try #require(h.pbu(actions))
        #expect(pbu.options.handoffIndicators == [MobilityOption.HandoffIndicator.handoffBetweenMAGsSameInterface])
        #expect(pbu.options.homeNetworkPrefixes == [assignedFromPool], "keeps the assigned prefix")
        #expect(h.core.entry(mac: mac2)?.state == .pending)
        let accepted = h.core.handlePacket(h.pba(for: pbu))
        #expect(accepted.first.map { h.installs([$0]) } == [h.forwarding(mac2, ifindex: 5, prefixes: [assignedFromPool],
                                                        identifier: "mn2@pmip.example")])
        #expect(h.ras(accepted).first?.ifindex == 5)
        #expect(h.core.counters.registrations == 2)
    }

    @Test func countersDecodeWithMissingKeysAndRoundTrip() throws {
        let empty = try JSONDecoder().decode(MobileAccessGatewayCounters.self, from: Data("{}".utf8))
        #expect(empty == MobileAccessGatewayCounters())
        let h = MAGHarness()
        h.register()
        let status = h.core.status
        #expect(status.entries.map(\.mac) == ["02:00:00:00:0a:01"])
        let data = try JSONEncoder().encode(status)
        #expect(try JSONDecoder().decode(MobileAccessGatewayStatus.self, from: data) == status)
        let json = String(decoding: data, as: UTF8.self)
        #expect(json.contains("\"state\":\"registered\"") && json.contains("2001:db8:100:1::"))
    }

    @Test func snapshotIsTheStatusAsOfItsCopyWhateverHappensAfter() throws {
        let h = MAGHarness()
        h.register(mac2, ifindex: 4, assign: [assignedFromPool])
        h.register()
        h.advance(10)
        let snapshot = h.core.snapshot
        let then = h.core.status
        #expect(snapshot.count == 2)
        #expect(snapshot.status() == then, "the same entries, sorted by MAC, and counters")
        #expect(then.entries.map(\.mac) == ["02:00:00:00:0a:01", "02:00:00:00:0a:02"])
        // The loop goes on: a detach and time passing change the core, not the copy.
        _ = h.core.detach(mac: mac1)
        h.advance(20)
        #expect(snapshot.status() == then, "times to expiry as of the copy")
        #expect(h.core.status != then)
    }
}

@Suite("Router Advertisement builder and Router Solicitation parser (RFC 4861)")
struct MobileAccessGatewayNeighborDiscoveryTests {
    @Test func routerAdvertisementMatchesScapy() throws {
        let built = PacketBuilder.routerAdvertisement(
            source: addr("fe80::1"), destination: addr("ff02::1"), hopLimit: 255, curHopLimit: 64,
            routerLifetime: 1800, prefixes: [hnp1], validLifetime: 7200, preferredLifetime: 1800,
            mtu: 1460, sourceLinkLayer: sharedMAC)
        #expect(hexString(built) == hexString(ScapyND.routerAdvertisement))
        #expect(InternetChecksum.upperLayer(source: addr("fe80::1"), destination: addr("ff02::1"), nextHeader: 58,
                                            payload: Array(built[40...])) == 0)
    }

    @Test func routerSolicitationsFromScapyParse() throws {
        let rs = try #require(IPv6PacketParser.parseRouterSolicitation(ScapyND.routerSolicitation))
        #expect(rs.source == addr("fe80::200:ff:fe00:a01") && rs.sourceLinkLayer == mac1)
        let rs0 = try #require(IPv6PacketParser.parseRouterSolicitation(ScapyND.routerSolicitationUnspecified))
        #expect(rs0.source == .unspecified && rs0.sourceLinkLayer == nil)
    }

    @Test func invalidRouterSolicitationsAreRefused() {
        let good = ScapyND.routerSolicitation
        /// `good` changed, with the ICMPv6 checksum recomputed so that only the change is wrong.
        func variant(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = good
            change(&b)
            b[42] = 0; b[43] = 0
            let c = InternetChecksum.upperLayer(source: IPv6Address(bytes: b[8..<24]), destination: IPv6Address(bytes: b[24..<40]),
                                                nextHeader: 58, payload: Array(b[40...]))
            b[42] = UInt8(c >> 8); b[43] = UInt8(c & 0xff)
            return b
        }
        #expect(IPv6PacketParser.parseRouterSolicitation(variant { _ in }) != nil)
        // §6.1.1: hop limit 255, valid checksum, code 0, options with non-zero length; no SLLA
        // option from the unspecified address.
        #expect(IPv6PacketParser.parseRouterSolicitation(variant { $0[7] = 254 }) == nil)
        #expect(IPv6PacketParser.parseRouterSolicitation(variant { $0[41] = 1 }) == nil)
        #expect(IPv6PacketParser.parseRouterSolicitation(variant { $0[49] = 0 }) == nil)
        #expect(IPv6PacketParser.parseRouterSolicitation(variant { for i in 8..<24 { $0[i] = 0 } }) == nil)
        var badChecksum = good
        badChecksum[43] ^= 1
        #expect(IPv6PacketParser.parseRouterSolicitation(badChecksum) == nil)
        #expect(IPv6PacketParser.parseRouterSolicitation(ScapyND.routerAdvertisement) == nil)
        for length in 0..<good.count {
            #expect(IPv6PacketParser.parseRouterSolicitation(Array(good.prefix(length))) == nil)
        }
    }
}
