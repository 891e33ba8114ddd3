import Testing
@testable import ControlPlane

@Suite("PMIPv6 policy file")
struct ProxyPolicyTests {
    @Test("statements, comments, CRLF; lookups by NAI and by MAC")
    func parses() throws {
        let p = try ProxyPolicy(parsing: "# the domain\r\nmag 2001:db8:b1::2\r\npool 2001:db8:100::/48   # /64s\r\n\r\n"
            + "mn a@x mac 02:00:00:00:0a:01,02-00-00-00-0a-09 prefix 2001:db8:200:1::/64 lma 2001:db8:a::1\n"
            + "mn b@x mac 02:00:00:00:0a:02 prefix pool\n")
        #expect(p.mags == [IPv6Address("2001:db8:b1::2")!] && p.pool == IPv6Prefix("2001:db8:100::/48"))
        let a = try #require(p.node(identifier: "a@x"))
        #expect(a.prefixes == [IPv6Prefix("2001:db8:200:1::/64")!] && a.lma == IPv6Address("2001:db8:a::1") && a.line == 5)
        #expect(p.node(linkLayerAddress: [2, 0, 0, 0, 0x0a, 0x09])?.identifier == "a@x")
        #expect(p.node(linkLayerAddress: [2, 0, 0, 0, 0x0a, 0x02])?.prefixes == [])
        #expect(p.node(identifier: "c@x") == nil && p.node(linkLayerAddress: [2, 0, 0, 0, 0, 0]) == nil)
        #expect(formatMAC([2, 0, 0, 0, 0x0a, 0x01]) == "02:00:00:00:0a:01")
    }

    @Test("each mistake is refused with its line and what is wrong", arguments: [
        ("mag fe80::1", 1, "global unicast"),
        ("pool 2001:db8::/96", 1, "longer than /64"),
        ("mn a@x mac 02:00:00:00:0a:01", 1, "`prefix PREFIX` or `prefix pool` is required"),
        ("mn a@x mac 02:00:00:00:0a prefix pool", 1, "bad MAC address"),
        ("mn a@x mac 02:00:00:00:0a:01 prefix 2001:db8:1::/56", 1, "a /64"),
        ("mn a@x mac 02:00:00:00:0a:01 prefix pool colour blue", 1, "unknown key"),
        ("mn a@x mac 02:00:00:00:0a:01 prefix pool lma", 1, "needs a value"),
        ("\nmn a@x mac 02:00:00:00:0a:01 prefix pool\nmn a@x mac 02:00:00:00:0a:02 prefix pool", 3, "listed twice"),
        ("mn a@x mac 02:00:00:00:0a:01 prefix pool\nmn b@x mac 02:00:00:00:0a:01 prefix pool", 2, "already belongs to a@x"),
        ("mn a@x mac 02:00:00:00:0a:01 prefix 2001:db8:1:1::/64\nmn b@x mac 02:00:00:00:0a:02 prefix 2001:db8:1:1::/64", 2, "already belongs"),
        ("pool 2001:db8:100::/48\nmn a@x mac 02:00:00:00:0a:01 prefix 2001:db8:100:7::/64", 2, "inside the pool"),
        ("routers 3", 1, "unknown statement"),
    ])
    func refuses(text: String, line: Int, reason: String) {
        do {
            _ = try ProxyPolicy(parsing: text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line && error.reason.contains(reason), "\(error)")
            #expect("\(error)".hasPrefix("policy line \(line): "))
        }
    }
}
