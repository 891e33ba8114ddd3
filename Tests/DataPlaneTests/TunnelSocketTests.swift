import CMip6
import ControlPlane
import Glibc
import Testing
@testable import DataPlane
import Mip6TestSupport

/// The tunnel socket (raw IPv6, next header 41) as the daemons use it for RFC 2473 §7.1(b), on
/// a real path: a home agent, a router whose route to the care-of link has an MTU of 1300, a
/// mobile node. What is asserted is the kernel's part: the Packet Too Big reaches the socket
/// and lowers the path MTU, the sender's kernel fragments, the receiver's reassembles.
@Suite("tunnel socket: fragmented by the sender's kernel, reassembled by the receiver's (RFC 2473 §7.1(b))", .serialized,
       .enabled(if: isRoot, "needs root to make network namespaces: run `sudo swift test` (CI is root)"))
struct TunnelSocketTests {
    typealias F = PacketFixtures
    static let router = IPv6Address("2001:db8:1::1")!

    /// ha (a0 2001:db8:1::a) -- (ra) router (rb, route to 2001:db8:f1::/64 with MTU 1300) -- (b0 2001:db8:f1::100) mn
    final class Path {
        let ha: ScratchNamespace, router: ScratchNamespace, mn: ScratchNamespace

        init() throws {
            ha = try ScratchNamespace("tun-ha")
            router = try ScratchNamespace("tun-r")
            mn = try ScratchNamespace("tun-mn")
            // No DAD: a tentative link-local address would hold up Neighbor Discovery for a second or two.
            for ns in [ha, router, mn] {
                try ns.sysctl("net.ipv6.conf.all.accept_dad=0")
                try ns.sysctl("net.ipv6.conf.default.accept_dad=0")
            }
            try router.ip("""
                link set lo up
                link add ra type veth peer name a0 netns \(ha.name)
                link add rb type veth peer name b0 netns \(mn.name)
                -6 addr add 2001:db8:1::1/64 dev ra nodad
                -6 addr add 2001:db8:f1::1/64 dev rb nodad
                link set ra up
                link set rb up
                -6 route replace 2001:db8:f1::/64 dev rb proto kernel metric 256 mtu 1300
                """)
            try router.sysctl("net.ipv6.conf.all.forwarding=1")
            try ha.ip("""
                link set lo up
                -6 addr add 2001:db8:1::a/64 dev a0 nodad
                link set a0 up
                -6 route add default via 2001:db8:1::1
                """)
            try mn.ip("""
                link set lo up
                -6 addr add 2001:db8:f1::100/64 dev b0 nodad
                link set b0 up
                -6 route add default via 2001:db8:f1::1
                """)
        }
    }

    /// Polls `fd` for `events` (POLLERR is always reported) for up to `milliseconds`.
    static func ready(_ fd: Int32, _ events: Int32 = POLLIN, milliseconds: Int32 = 2000) -> Bool {
        var p = pollfd(fd: fd, events: Int16(events), revents: 0)
        return poll(&p, 1, milliseconds) == 1
    }

    @Test("a 1280-byte packet over a 1300-byte path: the Packet Too Big lowers the path MTU, then it goes in fragments of at most 1300 and arrives whole, with no Parameter Problem back")
    func fragmentedAndReassembled() throws {
        let path = try Path()
        let sender = try path.ha.run { try TunnelSocket(source: F.homeAgent, hopLimit: 64, reportErrors: true) }
        var receiver: TunnelSocket? = try path.mn.run { try TunnelSocket() }
        let b0 = try path.mn.ifindex("b0")
        let tap = try path.mn.run { try FrameTap(ifindex: b0) }
        let inner = F.echoRequest(dataSize: 1280 - 48)

        // The path MTU is not known yet: 1320 bytes go whole, and the router answers 1300.
        try sender.send(inner, to: F.careOf)
        #expect(Self.ready(sender.pollFD, 0), "an error is queued")
        let e = try sender.receiveError()
        #expect(e?.isPacketTooBig == true && e?.info == 1300, "\(String(describing: e))")
        #expect(e?.destination == F.careOf && e?.offender == Self.router)
        let route = try sh("ip -n \(path.ha.name) -6 route get \(F.careOf) from \(F.homeAgent)")
        #expect(route.contains("mtu 1300"), "the kernel lowered the path MTU: \(route)")

        // Fragmented to it now; the other end's kernel reassembles the tunnel packet for its socket.
        try sender.send(inner, to: F.careOf)
        #expect(Self.ready(receiver!.pollFD))
        let got = try receiver!.receive()
        #expect(got == TunnelSocket.Received(source: F.homeAgent, destination: F.careOf, payload: inner))
        let outer = try [0, 1].map { _ in
            try tap.receive(within: 1) { $0.count > 14 + 40 && $0[12] == 0x86 && $0[13] == 0xDD && $0[14 + 6] == 44 }
        }
        let sizes = outer.map { ($0?.count ?? 0) - 14 }
        #expect(sizes.allSatisfy { $0 > 40 && $0 <= 1300 } && sizes.reduce(0, +) == 1280 + 2 * (40 + 8),
                "two fragments of the 1320-byte tunnel packet, each within 1300: \(sizes)")
        #expect(outer.allSatisfy { $0.map { $0[14 + 40] == 41 && $0[14 + 7] == 63 } ?? false },
                "Fragment header's next header 41, outer hop limit 64 less the router's hop")

        // The receiving socket being open, the kernel took the packet as delivered: no error back.
        usleep(200_000)
        #expect(try sender.receiveError() == nil)
        // Without it, a kernel without ip6tnl answers Parameter Problem (unknown next header):
        // what the mobile node's socket keeps from the home agent.
        // (The kernel rate-limits its ICMPv6 errors per destination: a few tries, half a second apart.)
        receiver = nil
        var answered = false
        for _ in 0..<6 where !answered {
            try sender.send(inner, to: F.careOf)
            answered = Self.ready(sender.pollFD, 0, milliseconds: 500)
        }
        #expect(answered)
        let problem = try sender.receiveError()
        #expect(problem?.type == 4 && problem?.code == 1, "\(String(describing: problem))")
    }
}
