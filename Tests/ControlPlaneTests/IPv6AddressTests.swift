import Foundation
import Testing
@testable import ControlPlane

@Suite("IPv6Address and IPv6Prefix")
struct IPv6AddressTests {
    @Test func parsesAndPrintsCanonicalForm() throws {
        let a = try #require(IPv6Address("2001:0DB8:0000:0000:0000:0000:0000:0001"))
        #expect(a.description == "2001:db8::1")
        #expect(a.high == 0x2001_0db8_0000_0000)
        #expect(a.low == 1)
        // RFC 5952 §4.2.2: a single 16-bit 0 field is not shortened to "::".
        #expect(IPv6Address("2001:db8:0:1:1:1:1:1")?.description == "2001:db8:0:1:1:1:1:1")
        // §4.2.3: the longest run of zeros is shortened, the first on a tie.
        #expect(IPv6Address("2001:0:0:1:0:0:0:1")?.description == "2001:0:0:1::1")
        #expect(IPv6Address("::")?.description == "::")
        #expect(IPv6Address("::ffff:192.0.2.1")?.isIPv4Mapped == true)
    }

    @Test(arguments: ["", "2001:db8::1::2", "1.2.3.4", "2001:db8::g", "2001:db8::1/64", " ::1"])
    func rejectsBadText(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func bytesRoundTrip() throws {
        let bytes: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]
        let a = IPv6Address(bytes: bytes)
        #expect(a == IPv6Address("2001:db8:1::100"))
        #expect(a.bytes == bytes)
        #expect(a.withBytes { Array($0) } == bytes)
        #expect(IPv6Address(bytes: bytes[...]) == a)
    }

    @Test func ordersLikeByteStrings() throws {
        let list = ["2001:db8::2", "::1", "ff02::1", "2001:db8::1", "fe80::1", "2001:db7:ffff::"].map(addr)
        let sorted = list.sorted()
        #expect(sorted.map(\.bytes) == list.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func classification() {
        #expect(IPv6Address.unspecified.isUnspecified)
        #expect(addr("::1").isLoopback)
        #expect(addr("ff02::1").isMulticast)
        #expect(addr("fe80::1").isLinkLocal)
        #expect(addr("febf::1").isLinkLocal)
        #expect(!addr("fec0::1").isLinkLocal)
        #expect(addr("2001:db8::1").isUnicastRoutable)
        #expect(addr("fd00::1").isUnicastRoutable)
        for a in ["::", "::1", "ff0e::1", "fe80::1", "::ffff:10.0.0.1"] {
            #expect(!addr(a).isUnicastRoutable, "\(a)")
        }
    }

    @Test func solicitedNodeMulticast() {
        #expect(addr("2001:db8:1::100").solicitedNodeMulticast == addr("ff02::1:ff00:100"))
        #expect(addr("fe80::2aa:ff:fe28:9c5a").solicitedNodeMulticast == addr("ff02::1:ff28:9c5a"))
    }

    @Test func codableAsString() throws {
        let a = addr("2001:db8:1::100")
        let json = try JSONEncoder().encode([a])
        #expect(String(decoding: json, as: UTF8.self) == #"["2001:db8:1::100"]"#)
        #expect(try JSONDecoder().decode([IPv6Address].self, from: json) == [a])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([IPv6Address].self, from: Data(#"["nope"]"#.utf8))
        }
    }

    @Test func prefixMasksAndContains() throws {
        let p = try #require(IPv6Prefix("2001:db8:1::ffff/64"))
        #expect(p.address == addr("2001:db8:1::"))
        #expect(p.length == 64)
        #expect(p.description == "2001:db8:1::/64")
        #expect(p.contains(addr("2001:db8:1::100")))
        #expect(p.contains(addr("2001:db8:1:0:ffff:ffff:ffff:ffff")))
        #expect(!p.contains(addr("2001:db8:2::100")))

        let p0 = try #require(IPv6Prefix("::/0"))
        #expect(p0.contains(addr("ff02::1")))
        let p128 = try #require(IPv6Prefix("2001:db8::1/128"))
        #expect(p128.contains(addr("2001:db8::1")) && !p128.contains(addr("2001:db8::2")))
        let p48 = try #require(IPv6Prefix("2001:db8:abcd:12::/48"))
        #expect(p48.address == addr("2001:db8:abcd::"))
        let p65 = try #require(IPv6Prefix("2001:db8::ffff:ffff:ffff:ffff/65"))
        #expect(p65.address == addr("2001:db8::8000:0:0:0"))
        let json = try JSONEncoder().encode(p)
        #expect(String(decoding: json, as: UTF8.self) == #""2001:db8:1::\/64""#)
        #expect(try JSONDecoder().decode(IPv6Prefix.self, from: json) == p)
        for bad in ["2001:db8::/129", "2001:db8::", "2001:db8::/", "/64", "2001:db8::/-1", "2001:db8::/6 4", "x/64"] {
            #expect(IPv6Prefix(bad) == nil, "\(bad)")
        }
    }
}
