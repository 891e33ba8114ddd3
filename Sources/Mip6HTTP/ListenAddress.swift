#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the HTTP endpoint listens (`--http-listen ADDR:PORT`).
///
/// Accepted forms: `127.0.0.1:9464`, `[::1]:9464`, `[::]:9464`, `0.0.0.0:9464`, and
/// `*:9464` or `:9464` for every address (bound as `[::]`, which on Linux also takes
/// IPv4 unless `net.ipv6.bindv6only` is set). ADDR is numeric: no name lookups at start-up.
/// Port 0 picks a free port (tests; the daemon logs the port it got).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6
    }

    /// Numeric address in its canonical text form, without brackets.
    public let host: String
    public let family: Family
    public let port: UInt16

    /// Parses `text`; synchronous and side-effect free, so a CLI can call it from `validate()`.
    /// - Parameter option: the option name the error message starts with.
    public init(parsing text: String, option: String = "--http-listen") throws(ListenAddressError) {
        func fail(_ reason: String) -> ListenAddressError {
            ListenAddressError(option: option, input: text, reason: reason)
        }
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("missing ']' after the IPv6 address") }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail("missing ':PORT' after ']'") }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("missing ':PORT'") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { throw fail("put an IPv6 address in brackets, as in [::1]:9464") }
        }
        guard !portPart.isEmpty, portPart.allSatisfy(\.isASCII), portPart.allSatisfy(\.isNumber),
              let port = UInt16(portPart) else {
            throw fail("PORT must be a number from 0 to 65535")
        }

        if text.hasPrefix("[") {
            guard let canonical = Self.canonical(String(hostPart), family: AF_INET6) else {
                throw fail("'\(hostPart)' is not an IPv6 address")
            }
            self.init(host: canonical, family: .ipv6, port: port)
        } else if hostPart.isEmpty || hostPart == "*" {
            self.init(host: "::", family: .ipv6, port: port)
        } else if let canonical = Self.canonical(String(hostPart), family: AF_INET) {
            self.init(host: canonical, family: .ipv4, port: port)
        } else {
            throw fail("ADDR must be a numeric IPv4 address or an IPv6 address in brackets, not '\(hostPart)'")
        }
    }

    public init(host: String, family: Family, port: UInt16) {
        self.host = host
        self.family = family
        self.port = port
    }

    public static func loopback(port: UInt16) -> ListenAddress { ListenAddress(host: "127.0.0.1", family: .ipv4, port: port) }

    public var description: String { family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The same address with another port (the one the kernel picked for port 0).
    public func with(port: UInt16) -> ListenAddress { ListenAddress(host: host, family: family, port: port) }

    /// inet_pton then inet_ntop: validates and gives one spelling per address.
    static func canonical(_ text: String, family: Int32) -> String? {
        var raw = [UInt8](repeating: 0, count: 16)
        guard inet_pton(family, text, &raw) == 1 else { return nil }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, raw, &out, socklen_t(out.count)) != nil else { return nil }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A `--http-listen` value that does not parse. Its description is the whole message for the operator.
public struct ListenAddressError: Error, Equatable, CustomStringConvertible {
    public let option: String
    public let input: String
    public let reason: String

    public var description: String {
        "\(option) '\(input)': \(reason); expected ADDR:PORT such as [::1]:9464, 127.0.0.1:9464 or *:9464"
    }
}
