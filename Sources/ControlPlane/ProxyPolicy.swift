/// The Proxy Mobile IPv6 policy store (RFC 5213 §2.2 "Policy Profile", §6.2): which mobile
/// nodes may use the domain, by which identifier and link-layer address, with which home
/// network prefixes and local mobility anchor; which MAGs the LMA trusts; where prefixes are
/// assigned from. The LMA and every MAG read the same file.
///
/// Text form, one statement a line (blank lines and `#` comments skipped; a token starting
/// with `#` ends the line):
///
///     mag 2001:db8:b1::2                      # a MAG the LMA accepts PBUs from (else 154)
///     pool 2001:db8:100::/48                  # /64s assigned on request (all-zero HNP)
///     mn mn1@pmip.example mac 02:00:00:00:0a:01 prefix 2001:db8:100:1::/64 lma 2001:db8:a::1
///     mn mn2@pmip.example mac 02:00:00:00:0a:02 prefix pool
///
/// `mn NAI mac MAC[,MAC...] prefix PREFIX[,PREFIX...]|pool [lma ADDRESS]`: prefixes are
/// exactly /64 (RFC 5213 §2.2: a home network prefix per mobile node interface; the data
/// plane is keyed by /64). Errors name the line.
public struct ProxyPolicy: Sendable, Equatable {
    public struct MobileNode: Sendable, Equatable {
        /// The MN-Identifier (an NAI, RFC 4283 subtype 1).
        public var identifier: String
        /// The link-layer addresses a MAG recognises it by (6-byte MACs).
        public var linkLayerAddresses: [[UInt8]]
        /// Fixed home network prefixes; empty: one /64 from the pool, kept for the binding's life.
        public var prefixes: [IPv6Prefix]
        /// Its LMA (the MAG sends the PBU there); nil: the MAG's default LMA.
        public var lma: IPv6Address?
        public var line: Int

        public init(identifier: String, linkLayerAddresses: [[UInt8]], prefixes: [IPv6Prefix] = [],
                    lma: IPv6Address? = nil, line: Int = 0) {
            self.identifier = identifier
            self.linkLayerAddresses = linkLayerAddresses
            self.prefixes = prefixes
            self.lma = lma
            self.line = line
        }
    }

    public private(set) var mobileNodes: [MobileNode] = []
    public private(set) var mags: Set<IPv6Address> = []
    public private(set) var pool: IPv6Prefix?
    private var byIdentifier: [String: Int] = [:]
    private var byLinkLayer: [[UInt8]: Int] = [:]
    /// Fixed prefix -> node: lookups stay O(1) with a million nodes (the LMA's pool skips these).
    private var byPrefix: [IPv6Prefix: Int] = [:]

    public init(mobileNodes: [MobileNode] = [], mags: [IPv6Address] = [], pool: IPv6Prefix? = nil) throws(ProxyPolicyError) {
        for m in mags { self.mags.insert(m) }
        if let pool { try setPool(pool, line: 0) }
        for node in mobileNodes { try add(node) }
    }

    public init(parsing text: String) throws(ProxyPolicyError) {
        var number = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var fields: [String] = []
            for token in rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
                if token.hasPrefix("#") { break }
                fields.append(String(token))
            }
            guard let keyword = fields.first else { continue }
            func fail(_ why: String) -> ProxyPolicyError { ProxyPolicyError(line: number, reason: why) }
            switch keyword {
            case "mag":
                guard fields.count == 2, let a = IPv6Address(fields[1]), a.isUnicastRoutable else {
                    throw fail("expected `mag ADDRESS` (a global unicast address)")
                }
                mags.insert(a)
            case "pool":
                guard fields.count == 2, let p = IPv6Prefix(fields[1]) else { throw fail("expected `pool PREFIX/LENGTH`") }
                try setPool(p, line: number)
            case "mn":
                guard fields.count >= 2 else { throw fail("expected `mn NAI mac MAC prefix PREFIX|pool [lma ADDRESS]`") }
                var node = MobileNode(identifier: fields[1], linkLayerAddresses: [], line: number)
                var sawPrefix = false
                var i = 2
                while i < fields.count {
                    guard i + 1 < fields.count else { throw fail("`\(fields[i])` needs a value") }
                    let value = fields[i + 1]
                    switch fields[i] {
                    case "mac":
                        for text in value.split(separator: ",") {
                            guard let mac = Self.parseMAC(text) else { throw fail("bad MAC address \(text) (want 02:00:00:00:0a:01)") }
                            node.linkLayerAddresses.append(mac)
                        }
                    case "prefix":
                        sawPrefix = true
                        if value == "pool" { break }
                        for text in value.split(separator: ",") {
                            guard let p = IPv6Prefix(String(text)), p.length == 64 else {
                                throw fail("bad home network prefix \(text): a /64 (or `pool`)")
                            }
                            node.prefixes.append(p)
                        }
                    case "lma":
                        guard let a = IPv6Address(value), a.isUnicastRoutable else { throw fail("bad LMA address \(value)") }
                        node.lma = a
                    default:
                        throw fail("unknown key `\(fields[i])` (mac, prefix, lma)")
                    }
                    i += 2
                }
                guard sawPrefix else { throw fail("`prefix PREFIX` or `prefix pool` is required") }
                try add(node)
            default:
                throw fail("unknown statement `\(keyword)` (mag, pool, mn)")
            }
        }
    }

    private mutating func setPool(_ p: IPv6Prefix, line: Int) throws(ProxyPolicyError) {
        guard p.length <= 64 else { throw ProxyPolicyError(line: line, reason: "pool \(p) is longer than /64: it must hold /64s") }
        pool = p
    }

    private mutating func add(_ node: MobileNode) throws(ProxyPolicyError) {
        let line = node.line
        let nai = Array(node.identifier.utf8)
        guard !nai.isEmpty, nai.count <= 254 else { throw ProxyPolicyError(line: line, reason: "the NAI must be 1-254 octets") }
        guard byIdentifier[node.identifier] == nil else {
            throw ProxyPolicyError(line: line, reason: "\(node.identifier) is listed twice")
        }
        for mac in node.linkLayerAddresses where byLinkLayer[mac] != nil {
            throw ProxyPolicyError(line: line, reason: "MAC \(formatMAC(mac)) already belongs to \(mobileNodes[byLinkLayer[mac]!].identifier)")
        }
        for p in node.prefixes {
            if let other = byPrefix[p] {
                throw ProxyPolicyError(line: line, reason: "prefix \(p) already belongs to \(mobileNodes[other].identifier)")
            }
            if let pool, pool.contains(p.address) {
                throw ProxyPolicyError(line: line, reason: "prefix \(p) is inside the pool \(pool): the pool could hand it out twice")
            }
        }
        byIdentifier[node.identifier] = mobileNodes.count
        for mac in node.linkLayerAddresses { byLinkLayer[mac] = mobileNodes.count }
        for p in node.prefixes { byPrefix[p] = mobileNodes.count }
        mobileNodes.append(node)
    }

    public func node(identifier: String) -> MobileNode? { byIdentifier[identifier].map { mobileNodes[$0] } }
    public func node(linkLayerAddress mac: [UInt8]) -> MobileNode? { byLinkLayer[mac].map { mobileNodes[$0] } }
    /// The node a fixed prefix belongs to.
    public func node(prefix: IPv6Prefix) -> MobileNode? { byPrefix[prefix].map { mobileNodes[$0] } }

    public static func == (a: ProxyPolicy, b: ProxyPolicy) -> Bool {
        a.mobileNodes == b.mobileNodes && a.mags == b.mags && a.pool == b.pool
    }

    /// "02:00:00:00:0a:01" (also with '-').
    public static func parseMAC(_ text: some StringProtocol) -> [UInt8]? {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard part.count == 2, let b = UInt8(part, radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }

}

/// "02:00:00:00:0a:01": a link-layer address as logs, listings and the policy file write it.
public func formatMAC(_ mac: [UInt8]) -> String {
    mac.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
}

public struct ProxyPolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line of the policy file (0 when built in code).
    public var line: Int
    public var reason: String
    public var description: String { line > 0 ? "policy line \(line): \(reason)" : "policy: \(reason)" }
}
