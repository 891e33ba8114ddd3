import Testing
@testable import ControlPlane

/// RFC 2473 §7.1(b): what the daemons do with a packet that travels in a fragmented tunnel
/// packet, as the data plane would for an unfragmented one.
@Suite("Fragmented tunnel (RFC 2473 §7.1(b))")
struct FragmentedTunnelTests {
    static let ha = addr("2001:db8:1::a"), hoa = addr("2001:db8:1::100"), coa = addr("2001:db8:f1::100")
    static let cn = addr("2001:db8:c::2"), second: UInt64 = 1_000_000_000

    /// An IPv6 packet of `size` bytes: `nextHeader` then zeros.
    static func packet(size: Int, src: IPv6Address = cn, dst: IPv6Address = hoa, nextHeader: UInt8 = 58, hopLimit: UInt8 = 63,
                       body: [UInt8] = []) -> [UInt8] {
        var p: [UInt8] = []
        PacketBuilder.ipv6Header(payloadLength: size - 40, nextHeader: nextHeader, hopLimit: hopLimit, source: src,
                                 destination: dst, into: &p)
        return p + body + [UInt8](repeating: 0, count: size - 40 - body.count)
    }

    func cache(expiresAt: UInt64 = 600 * second) throws -> BindingCache {
        let c = BindingCache(capacity: 4, dataPlane: MockDataPlane())
        try c.upsert(Binding(homeAddress: Self.hoa, careOfAddress: Self.coa, sequence: 1, flags: .home, lifetime: 600,
                             registeredAt: 0, expiresAt: expiresAt))
        return c
    }

    // MARK: home agent: entry point

    @Test("a punted packet for a bound home address goes to the cache's care-of address, hop limit decremented (RFC 2473 §3.1)")
    func entrySends() throws {
        let inner = Self.packet(size: 1280)
        guard case let .send(packet, careOf) = FragmentedTunnel.encapsulate(inner, cache: try cache(), now: Self.second) else {
            Issue.record("not sent")
            return
        }
        #expect(careOf == Self.coa)
        #expect(packet.count == 1280 && packet[7] == 62 && Array(packet[8...]) == Array(inner[8...]) && packet[..<7] == inner[..<7])
    }

    @Test("the cache is the truth: a binding that moved since the punt sends to the new care-of address")
    func entryFollowsTheCache() throws {
        let c = try cache()
        let moved = addr("2001:db8:f2::100")
        try c.upsert(Binding(homeAddress: Self.hoa, careOfAddress: moved, sequence: 2, flags: .home, lifetime: 600,
                             registeredAt: 0, expiresAt: 600 * Self.second))
        #expect(FragmentedTunnel.encapsulate(Self.packet(size: 1261), cache: c, now: Self.second)
            == .send(packet: { var p = Self.packet(size: 1261); p[7] = 62; return p }(), careOf: moved))
    }

    @Test("no binding, an expired binding, hop limit 1: not sent, each counted by its reason")
    func entryDrops() throws {
        let c = try cache(expiresAt: 10 * Self.second)
        #expect(FragmentedTunnel.encapsulate(Self.packet(size: 1280, dst: addr("2001:db8:1::77")), cache: c, now: Self.second)
            == .drop(.noBinding))
        #expect(FragmentedTunnel.encapsulate(Self.packet(size: 1280), cache: c, now: 10 * Self.second) == .drop(.expired))
        #expect(FragmentedTunnel.encapsulate(Self.packet(size: 1280, hopLimit: 1), cache: c, now: Self.second) == .drop(.hopLimit))
    }

    @Test("what the data plane never punts is malformed: over 1280 bytes, shorter than its header says, not IPv6")
    func entryMalformed() throws {
        let c = try cache()
        #expect(FragmentedTunnel.encapsulate(Self.packet(size: 1281), cache: c, now: Self.second) == .drop(.malformed))
        #expect(FragmentedTunnel.encapsulate(Array(Self.packet(size: 1280).prefix(1279)), cache: c, now: Self.second)
            == .drop(.malformed))
        var v4 = Self.packet(size: 100)
        v4[0] = 0x45
        #expect(FragmentedTunnel.encapsulate(v4, cache: c, now: Self.second) == .drop(.malformed))
        #expect(FragmentedTunnel.encapsulate([0x60], cache: c, now: Self.second) == .drop(.malformed))
    }

    /// A UDP (17) or TCP (6) packet of `size` bytes to the home address with its checksum
    /// field as an skb left to offload holds it: the pseudo-header's sum, not yet complemented.
    static func offloaded(nextHeader: UInt8, size: Int) -> [UInt8] {
        let l4 = size - 40
        var upper = [UInt8](repeating: 0, count: l4)
        for i in 0..<l4 { upper[i] = UInt8(truncatingIfNeeded: i &* 13) }
        let field = nextHeader == 17 ? 6 : 16
        if nextHeader == 17 { (upper[4], upper[5]) = (UInt8(l4 >> 8), UInt8(l4 & 0xff)) } else { upper[12] = 0x50 }
        let pseudo = InternetChecksum.fold(InternetChecksum.pseudoHeaderSum(source: cn, destination: hoa, nextHeader: nextHeader,
                                                                            length: l4))
        (upper[field], upper[field + 1]) = (UInt8(pseudo >> 8), UInt8(pseudo & 0xff))
        return packet(size: size, nextHeader: nextHeader, body: upper)
    }

    @Test("a TCP or UDP checksum left to offload (CHECKSUM_PARTIAL, copied by TC) is finished as the kernel would; a valid or a corrupted one is left alone", arguments: [UInt8(17), 6])
    func entryFinishesOffloadedChecksums(_ nextHeader: UInt8) throws {
        let partial = Self.offloaded(nextHeader: nextHeader, size: 1280)
        #expect(InternetChecksum.upperLayer(source: Self.cn, destination: Self.hoa, nextHeader: nextHeader,
                                            payload: Array(partial[40...])) != 0, "does not verify as it is")
        guard case let .send(sent, _) = FragmentedTunnel.encapsulate(partial, cache: try cache(), now: Self.second) else {
            Issue.record("not sent")
            return
        }
        #expect(InternetChecksum.upperLayer(source: Self.cn, destination: Self.hoa, nextHeader: nextHeader,
                                            payload: Array(sent[40...])) == 0, "verifies once finished")
        let field = 40 + (nextHeader == 17 ? 6 : 16)
        #expect(Array(sent[..<field]) == Array(partial[..<field]).enumerated().map { $0.offset == 7 ? $0.element - 1 : $0.element }
                && Array(sent[(field + 2)...]) == Array(partial[(field + 2)...]), "nothing else changes but the hop limit")

        // Valid already: untouched. Corrupted (neither valid nor the pseudo-header sum): untouched.
        var valid = sent
        valid[7] += 1
        #expect(FragmentedTunnel.encapsulate(valid, cache: try cache(), now: Self.second) == .send(packet: sent, careOf: Self.coa))
        var corrupted = valid
        corrupted[300] ^= 0x40
        guard case let .send(left, _) = FragmentedTunnel.encapsulate(corrupted, cache: try cache(), now: Self.second) else {
            Issue.record("not sent")
            return
        }
        #expect(Array(left[field..<field + 2]) == Array(corrupted[field..<field + 2]), "a corrupted packet is not made valid")
    }

    // MARK: mobile node: exit point

    static let exit = FragmentedTunnel.ExitPoint(homeAddress: hoa, homeAgent: ha, careOf: coa, pendingCareOf: nil)

    @Test("from the home agent to the care-of address, for the home address: delivered, trailing bytes cut")
    func exitDelivers() {
        let inner = Self.packet(size: 1280)
        #expect(FragmentedTunnel.decapsulate(inner + [1, 2, 3], outerSource: Self.ha, outerDestination: Self.coa, at: Self.exit)
            == .deliver(inner))
        // The inner packet may itself be a fragment (a correspondent fragmented to 1280 after our Packet Too Big).
        let fragment = Self.packet(size: 1280, nextHeader: 44, body: [17, 0, 0, 1, 0, 0, 0, 9])
        #expect(FragmentedTunnel.decapsulate(fragment, outerSource: Self.ha, outerDestination: Self.coa, at: Self.exit)
            == .deliver(fragment))
    }

    @Test("the data plane's drop reasons: spoofed outer source, another outer destination, no registration up, inner not for the home address, malformed")
    func exitDrops() {
        let inner = Self.packet(size: 1280)
        func run(_ p: [UInt8] = inner, src: IPv6Address = Self.ha, dst: IPv6Address = Self.coa,
                 at e: FragmentedTunnel.ExitPoint = Self.exit) -> FragmentedTunnel.Exit {
            FragmentedTunnel.decapsulate(p, outerSource: src, outerDestination: dst, at: e)
        }
        #expect(run(src: addr("2001:db8:1::66")) == .drop(.spoofed))
        #expect(run(dst: addr("2001:db8:f1::200")) == .drop(.notCareOf))
        var down = Self.exit
        down.careOf = nil
        #expect(run(at: down) == .drop(.tunnelDown))
        #expect(run(Self.packet(size: 1280, dst: addr("2001:db8:1::77"))) == .drop(.notHomeAddress))
        #expect(run(Self.packet(size: 1280, dst: addr("ff0e::1"))) == .drop(.notHomeAddress))
        #expect(run(Array(inner.prefix(1000))) == .drop(.malformed))
        var v4 = inner
        v4[0] = 0x45
        #expect(run(v4) == .drop(.malformed))
    }

    @Test("make-before-break: to the care-of address of an outstanding BU, even before the tunnel is up")
    func exitPending() {
        let newCoA = addr("2001:db8:f2::100")
        let inner = Self.packet(size: 1280)
        var e = Self.exit
        e.pendingCareOf = newCoA
        #expect(FragmentedTunnel.decapsulate(inner, outerSource: Self.ha, outerDestination: newCoA, at: e) == .deliver(inner))
        e.careOf = nil
        #expect(FragmentedTunnel.decapsulate(inner, outerSource: Self.ha, outerDestination: newCoA, at: e) == .deliver(inner))
        #expect(FragmentedTunnel.decapsulate(inner, outerSource: Self.ha, outerDestination: Self.coa, at: e) == .drop(.tunnelDown))
    }

    @Test("a Mobility Header inside the tunnel goes to the state machine; a fragment of one is dropped")
    func exitSignaling() {
        // A Binding Refresh Request (MH type 0) behind a Destination Options header (PadN).
        let brr = Self.packet(size: 56, src: Self.ha, nextHeader: 60, body: [135, 0, 1, 4, 0, 0, 0, 0] + [59, 0, 0, 0])
        #expect(FragmentedTunnel.decapsulate(brr, outerSource: Self.ha, outerDestination: Self.coa, at: Self.exit) == .signaling(brr))
        let mhFragment = Self.packet(size: 1280, src: Self.ha, nextHeader: 44, body: [135, 0, 0, 1, 0, 0, 0, 9])
        #expect(FragmentedTunnel.decapsulate(mhFragment, outerSource: Self.ha, outerDestination: Self.coa, at: Self.exit)
            == .drop(.fragmentedSignaling))
    }
}
