import Logging
import Testing
@testable import ControlPlane

/// The MAG core and the LMA core talking to each other through real PBU/PBA bytes, as the
/// daemons will: one host with a pool prefix attaches at MAG1, roams to MAG2 (the prefix
/// follows it), and MAG1's de-registration arriving late changes nothing.
@Suite("PMIPv6: MAG and LMA cores together")
struct ProxyMobilityInteropTests {
    static let lmaAddress = IPv6Address("2001:db8:a::1")!
    static let mac: [UInt8] = [2, 0, 0, 0, 0x0a, 0x01]
    static let policy = """
        mag 2001:db8:b1::2
        mag 2001:db8:b2::2
        pool 2001:db8:100::/48
        mn mn1@pmip.example mac 02:00:00:00:0a:01 prefix pool
        """

    let clock = TestClock()
    let wall: TestWallClock
    let dataPlane = MockProxyDataPlane()
    let lma: LocalMobilityAnchorCore
    let mag1: MobileAccessGatewayCore
    let mag2: MobileAccessGatewayCore

    init() throws {
        wall = TestWallClock(following: clock)
        let policy = try ProxyPolicy(parsing: Self.policy)
        lma = LocalMobilityAnchorCore(configuration: LocalMobilityAnchorConfiguration(address: Self.lmaAddress), policy: policy,
                                      dataPlane: dataPlane, clock: clock, wallClock: wall, logger: Logger(label: "lma"))
        mag1 = Self.mag("2001:db8:b1::2", policy: policy, clock: clock, wall: wall)
        mag2 = Self.mag("2001:db8:b2::2", policy: policy, clock: clock, wall: wall)
    }

    static func mag(_ pcoa: String, policy: ProxyPolicy, clock: TestClock, wall: TestWallClock) -> MobileAccessGatewayCore {
        MobileAccessGatewayCore(configuration: MobileAccessGatewayConfiguration(
            proxyCareOf: IPv6Address(pcoa)!, defaultLMA: lmaAddress, linkLayerAddress: [2, 0, 0x5e, 0, 0x53, 1],
            policy: policy, wallClock: wall), clock: clock, logger: Logger(label: "mag"))
    }

    /// Carries every packet a MAG sends to the LMA and every PBA back; returns the MAG's
    /// actions on the answers.
    func exchange(_ mag: MobileAccessGatewayCore, _ actions: [MobileAccessGatewayAction]) -> [MobileAccessGatewayAction] {
        var out: [MobileAccessGatewayAction] = []
        for case let .send(packet, _) in actions {
            for case let .send(pba, _) in lma.handlePacket(packet) { out += mag.handlePacket(pba) }
        }
        return out
    }

    @Test("attach, roam to another MAG with the prefix kept, late de-registration from the first ignored")
    func attachRoamAndLateDeregistration() throws {
        let first = exchange(mag1, mag1.attach(mac: Self.mac, ifindex: 3, trigger: .carrierUp))
        guard case let .install(f1, _)? = first.first(where: { if case .install = $0 { true } else { false } }) else { Issue.record("\(first)"); return }
        let prefix = try #require(f1.homeNetworkPrefixes.first)
        #expect(IPv6Prefix("2001:db8:100::/48")!.contains(prefix.address) && prefix.length == 64)
        #expect(first.contains { if case .sendRouterAdvertisement(_, let mac, 3) = $0 { return mac == Self.mac } else { return false } })
        #expect(dataPlane.routes == [prefix: IPv6Address("2001:db8:b1::2")!])

        // The host's port moves to MAG2: MAG2 registers before MAG1 notices the detach.
        clock.advance(seconds: 0.01)
        let second = exchange(mag2, mag2.attach(mac: Self.mac, ifindex: 5, trigger: .unknownMAC))
        guard case let .install(f2, _)? = second.first(where: { if case .install = $0 { true } else { false } }) else { Issue.record("\(second)"); return }
        #expect(f2.homeNetworkPrefixes == [prefix], "the host keeps its prefix, so its addresses")
        #expect(dataPlane.routes == [prefix: IPv6Address("2001:db8:b2::2")!])

        clock.advance(seconds: 0.01)
        let late = exchange(mag1, mag1.detach(mac: Self.mac))
        _ = late
        #expect(dataPlane.routes == [prefix: IPv6Address("2001:db8:b2::2")!], "MAG1's de-registration must not tear down MAG2's")
        #expect(lma.counters.staleDeregistrations == 1 && lma.counters.handoffs == 1)
        #expect(mag1.entry(mac: Self.mac) == nil, "MAG1 got its PBA and dropped the entry")
        #expect(mag2.entry(mac: Self.mac)?.state == .registered)

        // MAG2 keeps it alive: the refresh at 75 % of the lifetime is accepted.
        clock.advance(seconds: 46)
        _ = exchange(mag2, mag2.tick())
        #expect(lma.counters.refreshes == 1 && lma.expire().isEmpty && dataPlane.routes.count == 1)
    }
}
