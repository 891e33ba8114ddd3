import CMip6
import ControlPlane
import Logging
import Testing
@testable import DataPlane
import Mip6TestSupport

/// RFC 6275 §10.3.1, the L flag: the home agent defends the mobile node's link-local address
/// (fe80::/64 + the home address's interface identifier) with proxy ND for the binding's life
/// and never tunnels to it. Rows of the XDP table (the TC suite runs them too), then the rest.
extension XDPProgramTests {
    static let linkLocalRouter = IPv6Address("fe80::1")!

    /// An NS for `target` from the router's link-local address (`source` nil: a DAD probe).
    static func neighborSolicitation(for target: IPv6Address, from source: IPv6Address? = linkLocalRouter,
                                     unicast: Bool = false) -> [UInt8] {
        let group = target.solicitedNodeMulticast
        let dst = unicast ? target : group
        let dstMAC: [UInt8] = unicast ? F.haMAC : [0x33, 0x33] + group.bytes[12...15]
        return F.ethernet(dst: dstMAC, PacketBuilder.neighborSolicitation(
            target: target, source: source ?? .unspecified, destination: dst, sourceLinkLayer: source == nil ? nil : F.routerMAC))
    }

    /// Our proxy NA for `target`: to the soliciting router, or (`to` nil) the DAD defence to all-nodes.
    static func proxyAdvertisement(for target: IPv6Address, to peer: IPv6Address? = linkLocalRouter) -> [UInt8] {
        F.ethernet(dst: peer == nil ? [0x33, 0x33, 0, 0, 0, 1] : F.routerMAC, src: t0MAC, PacketBuilder.neighborAdvertisement(
            target: target, source: target, destination: peer ?? IPv6Address("ff02::1")!,
            flags: (router: false, solicited: peer != nil, override: true), targetLinkLayer: t0MAC))
    }

    static var linkLocalCases: [Case] {
        let ll = Env.hoaLinkLocal.derivedLinkLocal // fe80::107
        let toLinkLocal = F.ethernet(F.echoRequest(src: linkLocalRouter, dst: ll, hopLimit: 64))
        let withoutL = neighborSolicitation(for: F.homeAddress.derivedLinkLocal) // fe80::100: its binding has no L
        return [
            Case(name: "NS for the link-local address of a binding with L: proxy NA with our MAC (RFC 6275 §10.3.1)",
                 input: neighborSolicitation(for: ll), verdict: xdpTX, output: proxyAdvertisement(for: ll), counters: ["na_proxy"]),
            Case(name: "unicast NS (NUD) for that link-local address: answered", input: neighborSolicitation(for: ll, unicast: true),
                 verdict: xdpTX, output: proxyAdvertisement(for: ll), counters: ["na_proxy"]),
            Case(name: "DAD probe for that link-local address: defended to all-nodes", input: neighborSolicitation(for: ll, from: nil),
                 verdict: xdpTX, output: proxyAdvertisement(for: ll, to: nil), counters: ["na_proxy"]),
            Case(name: "a packet to that link-local address: never tunneled, to the kernel untouched", input: toLinkLocal,
                 verdict: xdpPass, output: toLinkLocal, counters: ["pass_other"]),
            Case(name: "NS for the link-local address of a binding without L: to the kernel", input: withoutL,
                 verdict: xdpPass, output: withoutL, counters: ["pass_other"]),
        ]
    }
}

@Suite("Link-local defence, L flag (BPF_PROG_TEST_RUN)", .serialized,
       .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
struct LinkLocalDefenceTests {
    typealias F = PacketFixtures
    typealias XDP = XDPProgramTests
    typealias Env = XDPFixtureEnvironment
    nonisolated(unsafe) static let env: Result<Env, Error> = Result { try Env(tag: "ll") }

    static let hoa = IPv6Address("2001:db8:1::1a7")!
    static var ll: IPv6Address { hoa.derivedLinkLocal }

    func binding(_ flags: BUFlags, expiresAt: UInt64 = .max) -> Binding {
        Binding(homeAddress: Self.hoa, careOfAddress: F.careOf, sequence: 1, flags: flags, lifetime: 600, registeredAt: 1,
                expiresAt: expiresAt)
    }

    func answered(_ env: Env) throws -> Bool {
        try env.run(XDP.neighborSolicitation(for: Self.ll)).verdict == XDP.xdpTX
    }

    @Test("the binding is the truth: an entry whose binding lost L, expired or went defends nothing")
    func bindingIsTheTruth() throws {
        let env = try Self.env.get()
        defer { _ = try? env.maps.remove(Self.hoa) }
        try env.maps.install(binding([.ack, .home, .linkLocal]), ifindex: env.t0)
        #expect(try env.maps.linkLocalEntry(Self.ll) == Self.hoa)
        #expect(try answered(env))
        // A refresh without L, written to the binding alone: the entry is still there, unused.
        try env.maps.install(binding([.ack, .home]), ifindex: env.t0)
        #expect(try env.maps.linkLocalEntry(Self.ll) == Self.hoa)
        #expect(try !answered(env), "no L, no defence")
        // Past its lifetime, with no daemon to remove it: the data plane stops on its own.
        try env.maps.install(binding([.ack, .home, .linkLocal], expiresAt: 2), ifindex: env.t0)
        let expired = try env.counter("pass_expired")
        #expect(try !answered(env) && env.counter("pass_expired") == expired + 1)
        // Back, then evicted (de-registration, expiry, `mip6 bindings delete`): entry and defence go.
        try env.maps.install(binding([.ack, .home, .linkLocal]), ifindex: env.t0)
        #expect(try answered(env))
        try env.maps.remove(Self.hoa)
        #expect(try env.maps.linkLocalEntry(Self.ll) == nil)
        #expect(try !answered(env))
        // An entry whose address is not its home address's derived one: ignored.
        try env.maps.install(binding([.ack, .home, .linkLocal]), ifindex: env.t0)
        var k: mip6_addr_key = zeroed()
        k.addr = IPv6Address("fe80::abcd")!.cAddress
        try env.maps.linkLocalProxy.update(k, HomeAgentMaps.key(Self.hoa))
        defer { _ = try? env.maps.linkLocalProxy.delete(k) }
        #expect(try env.run(XDP.neighborSolicitation(for: IPv6Address("fe80::abcd")!)).verdict == XDP.xdpPass)
    }

    @Test("written through by the control plane: L registers the entry, a refresh without L and a de-registration remove it; L = 0 writes none")
    func writeThrough() throws {
        let env = try Self.env.get()
        let table = BPFBindingTable(maps: env.maps, homeLinkIfindex: env.t0)
        let cache = BindingCache(capacity: 16, dataPlane: table)
        table.current = { cache[$0] }
        let core = HomeAgentCore(configuration: HomeAgentConfiguration(homeAgentAddress: F.homeAgent, homePrefix: F.homePrefix,
                                                                       duplicateAddressDetection: false),
                                 cache: cache, clock: SystemMonotonicClock(), logger: Logger(label: "test"))
        defer { _ = try? env.maps.remove(Self.hoa) }
        func bu(_ seq: UInt16, _ flags: BUFlags, lifetime: UInt16 = 100) -> [UInt8] {
            PacketBuilder.bindingUpdate(BindingUpdate(sequence: seq, flags: flags, lifetime: lifetime),
                                        careOf: F.careOf, homeAgent: F.homeAgent, homeAddress: Self.hoa)
        }
        _ = core.handlePacket(bu(1, [.ack, .home]), localAddresses: [F.homeAgent])
        #expect(try cache[Self.hoa] != nil && env.maps.linkLocalEntry(Self.ll) == nil, "L = 0: no entry")
        #expect(try !answered(env))
        _ = core.handlePacket(bu(2, [.ack, .home, .linkLocal]), localAddresses: [F.homeAgent])
        #expect(try env.maps.linkLocalEntry(Self.ll) == Self.hoa)
        #expect(try answered(env))
        // Batched, as the daemon writes a ring drain: L dropped.
        table.deferring = true
        _ = core.handlePacket(bu(3, [.ack, .home]), localAddresses: [F.homeAgent])
        #expect(table.flush().isEmpty)
        table.deferring = false
        #expect(try env.maps.linkLocalEntry(Self.ll) == nil && !answered(env))
        // L again, batched, then de-registered.
        table.deferring = true
        _ = core.handlePacket(bu(4, [.ack, .home, .linkLocal]), localAddresses: [F.homeAgent])
        #expect(table.flush().isEmpty)
        table.deferring = false
        #expect(try env.maps.linkLocalEntry(Self.ll) == Self.hoa && answered(env))
        _ = core.handlePacket(bu(5, [.ack, .home, .linkLocal], lifetime: 0), localAddresses: [F.homeAgent])
        #expect(try cache[Self.hoa] == nil && env.maps.linkLocalEntry(Self.ll) == nil)
        #expect(try !answered(env))
    }

    @Test("at start the entries are made to match the adopted bindings")
    func syncAtStart() throws {
        let env = try Self.env.get()
        defer { _ = try? env.maps.remove(Self.hoa) }
        let stale = IPv6Address("2001:db8:1::1a8")!
        try env.maps.addLinkLocal(of: stale) // its binding went while no daemon ran
        try env.maps.install(binding([.ack, .home]), ifindex: env.t0)
        var adopted = binding([.ack, .home, .linkLocal])
        try env.maps.install(adopted, ifindex: env.t0)
        try env.maps.removeLinkLocal(of: Self.hoa) // written half way
        adopted.expiresAt = .max
        let (added, removed) = try env.maps.syncLinkLocal([adopted])
        #expect(added == 1 && removed >= 1)
        #expect(try env.maps.linkLocalEntry(stale.derivedLinkLocal) == nil)
        #expect(try env.maps.linkLocalEntry(Self.ll) == Self.hoa)
        #expect(try env.maps.linkLocalEntry(Env.hoaLinkLocal.derivedLinkLocal) == nil, "only what the given bindings say")
        try env.maps.addLinkLocal(of: Env.hoaLinkLocal) // the fixture's own, put back
    }

    @Test("mip6 bindings show: the flag and the defended link-local address")
    func view() throws {
        let env = try Self.env.get()
        let v = try #require(try env.maps.bindingView(Env.hoaLinkLocal))
        #expect(v.flags == ["A", "H", "L"] && v.linkLocal == "fe80::107")
        #expect(try env.maps.bindingView(F.homeAddress)?.linkLocal == nil)
    }
}
