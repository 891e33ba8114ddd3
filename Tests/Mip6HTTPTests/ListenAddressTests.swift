import Testing
@testable import Mip6HTTP

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9464", "127.0.0.1", ListenAddress.Family.ipv4, UInt16(9464)),
        ("0.0.0.0:80", "0.0.0.0", .ipv4, 80),
        ("[::1]:9464", "::1", .ipv6, 9464),
        ("[::]:9464", "::", .ipv6, 9464),
        ("[2001:DB8:0:0::a]:1", "2001:db8::a", .ipv6, 1),  // canonical spelling
        ("*:9464", "::", .ipv6, 9464),
        (":9464", "::", .ipv6, 9464),
        ("127.0.0.1:0", "127.0.0.1", .ipv4, 0),
        ("127.0.0.1:65535", "127.0.0.1", .ipv4, 65535),
    ])
    func parses(_ text: String, _ host: String, _ family: ListenAddress.Family, _ port: UInt16) throws {
        let a = try ListenAddress(parsing: text)
        #expect(a.host == host)
        #expect(a.family == family)
        #expect(a.port == port)
    }

    @Test func describesItselfAsItParses() throws {
        #expect(try ListenAddress(parsing: "[::1]:9464").description == "[::1]:9464")
        #expect(try ListenAddress(parsing: "127.0.0.1:9464").description == "127.0.0.1:9464")
        #expect(try ListenAddress(parsing: "*:9464").description == "[::]:9464")
        let a = try ListenAddress(parsing: "[::1]:9464")
        #expect(try ListenAddress(parsing: a.description) == a)
    }

    @Test(arguments: [
        ("foo", "missing ':PORT'"),
        ("", "missing ':PORT'"),
        ("127.0.0.1", "missing ':PORT'"),
        ("127.0.0.1:", "PORT must be a number"),
        ("127.0.0.1:65536", "PORT must be a number"),
        ("127.0.0.1:-1", "PORT must be a number"),
        ("127.0.0.1:http", "PORT must be a number"),
        ("127.0.0.1:+80", "PORT must be a number"),
        ("::1:9464", "put an IPv6 address in brackets"),
        ("[::1]9464", "missing ':PORT' after ']'"),
        ("[::1:9464", "missing ']'"),
        ("[127.0.0.1]:9464", "is not an IPv6 address"),
        ("[fe80::1%eth0]:9464", "is not an IPv6 address"),
        ("localhost:9464", "ADDR must be a numeric"),
        ("256.0.0.1:9464", "ADDR must be a numeric"),
    ])
    func rejects(_ text: String, _ reason: String) {
        #expect {
            try ListenAddress(parsing: text)
        } throws: { error in
            guard let e = error as? ListenAddressError else { return false }
            let message = e.description
            return e.input == text && message.contains(reason)
                && message.hasPrefix("--http-listen '\(text)': ")
                && message.contains("expected ADDR:PORT such as [::1]:9464")
        }
    }

    @Test func errorNamesTheOptionItWasGiven() {
        #expect(throws: ListenAddressError(option: "--metrics", input: "x", reason: "missing ':PORT'")) {
            try ListenAddress(parsing: "x", option: "--metrics")
        }
    }
}
