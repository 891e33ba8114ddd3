import ControlPlane
import Mip6TestSupport
import Testing
@testable import DataPlane

/// The rtnetlink dumps movement detection decides from: the flags must be the kernel's at
/// the moment of the event (administrative state, carrier, DAD), not sysfs's later view.
@Suite("Netlink link and address dumps")
struct NetlinkDumpTests {
    @Test("IFF_UP, carrier and DAD flags as the kernel has them at once",
          .enabled(if: isRoot, "needs root for a scratch network namespace: run `sudo swift test` (CI is root)"))
    func flagsFollowTheKernel() throws {
        let ns = try ScratchNamespace("nldump")
        try ns.sysctl("net.ipv6.conf.default.accept_dad=1")
        try ns.ip("""
            link add a0 type veth peer name b0
            link set a0 up
            link set b0 up
            address add 2001:db8:a::1/64 dev a0
            address add 2001:db8:a::2/64 dev a0 nodad
            """)
        let index = try ns.ifindex("a0")
        try ns.run {
            let link = try #require(try Netlink.links().first { $0.name == "a0" })
            #expect(link.index == index && link.isUp && link.hasCarrier)
            let mine = try Netlink.ipv6Addresses().filter { $0.ifindex == index }
            let dad = try #require(mine.first { $0.address == IPv6Address("2001:db8:a::1")! })
            let nodad = try #require(mine.first { $0.address == IPv6Address("2001:db8:a::2")! })
            #expect(dad.isTentative, "DAD takes a second: the address is tentative right after it was added")
            #expect(!nodad.isTentative && nodad.prefixLength == 64)
            #expect(mine.contains { $0.address.isLinkLocal }, "the kernel's fe80:: address is listed too")
        }
        // The peer going down takes the carrier away; our side stays administratively up.
        try ns.ip("link set b0 down")
        try ns.run {
            let link = try #require(try Netlink.links().first { $0.name == "a0" })
            #expect(link.isUp && !link.hasCarrier)
        }
        try ns.ip("link set a0 down")
        try ns.run {
            let link = try #require(try Netlink.links().first { $0.name == "a0" })
            #expect(!link.isUp)
            // keep_addr_on_down=0: the kernel removed the global addresses with the link.
            #expect(try Netlink.ipv6Addresses().filter { $0.ifindex == index && $0.address.isUnicastRoutable }.isEmpty)
        }
    }

    @Test("the best route through one interface: longest prefix, then metric; other interfaces never")
    func bestRouteThroughOneInterface() {
        func r(_ p: String, _ i: UInt32, _ gw: String?, _ m: UInt32) -> Netlink.Route {
            Netlink.Route(destination: IPv6Prefix(p)!, ifindex: i, gateway: gw.flatMap(IPv6Address.init), metric: m)
        }
        let ha = IPv6Address("2001:db8:1::a")!
        let routes = [r("::/0", 3, "2001:db8:f1::1", 100), r("::/0", 4, "2001:db8:f2::1", 200),
                      r("::/0", 4, "2001:db8:f2::2", 300), r("2001:db8:1::/64", 4, "2001:db8:f2::9", 1024),
                      r("2001:db8:f2::/64", 4, nil, 256)]
        #expect(Netlink.bestRoute(to: ha, through: 4, in: routes)?.gateway == IPv6Address("2001:db8:f2::9"))
        #expect(Netlink.bestRoute(to: IPv6Address("2001:db8:c::2")!, through: 4, in: routes)?.gateway == IPv6Address("2001:db8:f2::1"))
        #expect(Netlink.bestRoute(to: IPv6Address("2001:db8:f2::7")!, through: 4, in: routes)?.gateway == nil, "on-link")
        #expect(Netlink.bestRoute(to: ha, through: 5, in: routes) == nil)
    }

    @Test("a source rule and a table's default route: made, listed, replaced and removed; twice is fine",
          .enabled(if: isRoot, "needs root for a scratch network namespace: run `sudo swift test` (CI is root)"))
    func sourceRuleAndTable() throws {
        let ns = try ScratchNamespace("nlroute")
        try ns.ip("""
            link add a0 type veth peer name b0
            link set a0 up
            link set b0 up
            address add 2001:db8:a::1/64 dev a0 nodad
            address add 2001:db8:b::1/64 dev b0 nodad
            route add default via 2001:db8:a::9 dev a0 metric 100
            """)
        let (a0, b0) = (try ns.ifindex("a0"), try ns.ifindex("b0"))
        let hoa = IPv6Address("2001:db8:1::100")!
        try ns.run {
            try Netlink.setSourceRule(add: true, source: hoa, table: 6275, priority: 6275)
            try Netlink.setSourceRule(add: true, source: hoa, table: 6275, priority: 6275) // a killed daemon's leftover
            try Netlink.setDefaultRoute(table: 6275, ifindex: a0, gateway: IPv6Address("2001:db8:a::9")!)
            #expect(try Netlink.routes(table: 6275).map(\.gateway) == [IPv6Address("2001:db8:a::9")!])
            try Netlink.setDefaultRoute(table: 6275, ifindex: b0, gateway: nil)
            #expect(try Netlink.routes(table: 6275).map(\.ifindex) == [b0], "replaced, not added")
            #expect(try Netlink.routes().contains { $0.destination.length == 0 && $0.ifindex == a0 && $0.metric == 100 })
        }
        let rules = try sh("ip -n \(ns.name) -6 rule show")
        #expect(rules.contains("6275:\tfrom 2001:db8:1::100 lookup 6275"), "\(rules)")
        #expect(try sh("ip -n \(ns.name) -6 route get 2001:db8:c::1 from 2001:db8:1::100").contains("dev b0"))
        try ns.run {
            try Netlink.setDefaultRoute(table: 6275, ifindex: nil, gateway: nil)
            try Netlink.setDefaultRoute(table: 6275, ifindex: nil, gateway: nil)
            try Netlink.setSourceRule(add: false, source: hoa, table: 6275, priority: 6275)
            try Netlink.setSourceRule(add: false, source: hoa, table: 6275, priority: 6275)
            #expect(try Netlink.routes(table: 6275).isEmpty)
        }
        #expect(!(try sh("ip -n \(ns.name) -6 rule show")).contains("6275"))
    }

    @Test("unresolved neighbour entries (INCOMPLETE, FAILED) are deleted; resolved ones and other links' are kept",
          .enabled(if: isRoot, "needs root for a scratch network namespace: run `sudo swift test` (CI is root)"))
    func unresolvedNeighbours() throws {
        let ns = try ScratchNamespace("nlneigh")
        try ns.ip("""
            link add a0 type veth peer name b0
            link set a0 up
            link set b0 up
            address add 2001:db8:a::1/64 dev a0 nodad
            neigh add 2001:db8:a::8 dev a0 nud incomplete
            neigh add 2001:db8:a::9 dev a0 nud failed
            neigh add 2001:db8:a::7 lladdr 02:00:00:00:00:07 dev a0 nud permanent
            neigh add 2001:db8:a::8 dev b0 nud incomplete
            """)
        let (a0, b0) = (try ns.ifindex("a0"), try ns.ifindex("b0"))
        let (incomplete, failed, permanent) = (IPv6Address("2001:db8:a::8")!, IPv6Address("2001:db8:a::9")!, IPv6Address("2001:db8:a::7")!)
        try ns.run {
            let listed = try Netlink.neighbours().filter { $0.ifindex == a0 }
            #expect(listed.first { $0.address == incomplete }?.isUnresolved == true)
            #expect(listed.first { $0.address == failed }?.isUnresolved == true)
            #expect(listed.first { $0.address == permanent }?.isUnresolved == false)
            #expect(try Netlink.deleteUnresolvedNeighbour(incomplete, ifindex: a0))
            #expect(try !Netlink.deleteUnresolvedNeighbour(incomplete, ifindex: a0), "gone already")
            #expect(try Netlink.deleteUnresolvedNeighbour(failed, ifindex: a0))
            #expect(try !Netlink.deleteUnresolvedNeighbour(permanent, ifindex: a0), "resolved: kept")
            let left = try Netlink.neighbours()
            #expect(left.contains { $0.ifindex == a0 && $0.address == permanent })
            #expect(!left.contains { $0.ifindex == a0 && ($0.address == incomplete || $0.address == failed) })
            #expect(left.contains { $0.ifindex == b0 && $0.address == incomplete }, "another link's entry is not touched")
        }
    }
}
