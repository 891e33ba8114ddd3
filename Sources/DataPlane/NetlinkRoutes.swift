// IPv6 routes and policy rules over rtnetlink: what a mobile node needs to send its home
// address's traffic through the link its registered care-of address is on.
import CMip6
import ControlPlane
import Glibc

extension Netlink {
    static let rtmNewRoute: UInt16 = 24, rtmDelRoute: UInt16 = 25, rtmGetRoute: UInt16 = 26
    static let rtmNewRule: UInt16 = 32, rtmDelRule: UInt16 = 33
    static let replace: UInt16 = 0x100
    public static let rtTableMain: UInt32 = 254
    /// The protocol our routes carry (rtm_protocol): `ip -6 route show proto 0x6d` lists them.
    static let protocolMip6: UInt8 = 0x6d

    /// A route of one table with one next hop.
    public struct Route: Sendable, Equatable {
        public var destination: IPv6Prefix
        public var ifindex: UInt32
        public var gateway: IPv6Address?
        public var metric: UInt32

        public init(destination: IPv6Prefix, ifindex: UInt32, gateway: IPv6Address?, metric: UInt32) {
            self.destination = destination
            self.ifindex = ifindex
            self.gateway = gateway
            self.metric = metric
        }
    }

    /// A table's IPv6 unicast routes with one next hop (multipath ones are left out).
    public static func routes(table wanted: UInt32 = rtTableMain) throws(SystemError) -> [Route] {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
        let rtmsg: [UInt8] = [UInt8(AF_INET6), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        return try dump(type: rtmGetRoute, family: rtmsg) { type, body -> Route? in
            guard type == rtmNewRoute, body.count >= 12, body[2] == 0 /* src_len */, body[7] == 1 /* RTN_UNICAST */ else { return nil }
            var table = UInt32(body[4]), oif: UInt32?, gateway: IPv6Address?, metric: UInt32 = 0
            var destination = IPv6Address.unspecified
            attributes(body, from: 12) { t, v in
                switch t {
                case 1 where v.count == 16: destination = IPv6Address(bytes: Array(v)) // RTA_DST
                case 15 where v.count >= 4: table = v.loadLE(UInt32.self, at: 0)       // RTA_TABLE
                case 4 where v.count >= 4: oif = v.loadLE(UInt32.self, at: 0)          // RTA_OIF
                case 5 where v.count == 16: gateway = IPv6Address(bytes: Array(v))     // RTA_GATEWAY
                case 6 where v.count >= 4: metric = v.loadLE(UInt32.self, at: 0)       // RTA_PRIORITY
                default: break
                }
            }
            guard table == wanted, let oif, let prefix = IPv6Prefix(address: destination, length: Int(body[1])) else { return nil }
            return Route(destination: prefix, ifindex: oif, gateway: gateway, metric: metric)
        }
    }

    /// The route of `routes` (one table) for `destination` if only interface `ifindex` could
    /// be used: the longest prefix through it, then the lowest metric. The kernel has no
    /// such lookup: `ip route get ... oif IF` is only a preference for a global destination
    /// and answers with a better route through another interface.
    public static func bestRoute(to destination: IPv6Address, through ifindex: UInt32, in routes: [Route]) -> Route? {
        routes.filter { $0.ifindex == ifindex && $0.destination.contains(destination) }
            .min { ($0.destination.length, $1.metric) > ($1.destination.length, $0.metric) }
    }

    /// Replaces `table`'s default route with one through `ifindex` (via `gateway` when set),
    /// or deletes it (`ifindex` nil). Deleting a route that is not there is not an error.
    public static func setDefaultRoute(table: UInt32, ifindex: UInt32?, gateway: IPv6Address?) throws(SystemError) {
        var body: [UInt8] = [UInt8(AF_INET6), 0, 0, 0, 0 /* table: RTA_TABLE */, protocolMip6,
                             0 /* RT_SCOPE_UNIVERSE */, 1 /* RTN_UNICAST */, 0, 0, 0, 0]
        body.appendAttribute(15 /* RTA_TABLE */, UInt32(table))
        if let ifindex {
            body.appendAttribute(4 /* RTA_OIF */, ifindex)
            if let gateway { body.appendAttribute(5 /* RTA_GATEWAY */, gateway.bytes) }
        }
        let what = ifindex == nil ? "RTM_DELROUTE" : "RTM_NEWROUTE"
        let err = try transact(ifindex == nil ? rtmDelRoute : rtmNewRoute, flags: ifindex == nil ? 0 : create | replace,
                               body: body, what: what)
        if err == 0 || (ifindex == nil && (err == ESRCH || err == ENOENT)) { return }
        throw SystemError(what, errno: err, "default route of table \(table)\(ifindex.map { " through ifindex \($0)" } ?? "")")
    }

    /// Adds or removes the rule "from `source`/128 lookup `table`" at `priority`. Adding one
    /// that exists (left by a daemon that was killed) or removing one that is gone is fine.
    public static func setSourceRule(add: Bool, source: IPv6Address, table: UInt32, priority: UInt32) throws(SystemError) {
        // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags (u32).
        var body: [UInt8] = [UInt8(AF_INET6), 0, 128, 0, 0, 0, 0, 1 /* FR_ACT_TO_TBL */, 0, 0, 0, 0]
        body.appendAttribute(2 /* FRA_SRC */, source.bytes)
        body.appendAttribute(6 /* FRA_PRIORITY */, priority)
        body.appendAttribute(15 /* FRA_TABLE */, table)
        let what = add ? "RTM_NEWRULE" : "RTM_DELRULE"
        let err = try transact(add ? rtmNewRule : rtmDelRule, flags: add ? create | excl : 0, body: body, what: what)
        if err == 0 || (add && err == EEXIST) || (!add && (err == ENOENT || err == ESRCH)) { return }
        throw SystemError(what, errno: err, "from \(source) lookup \(table) priority \(priority)")
    }
}

extension Array where Element == UInt8 {
    /// An rtattr: length, type, value, padded to 4 bytes.
    mutating func appendAttribute(_ type: UInt16, _ value: [UInt8]) {
        appendLE(UInt16(4 + value.count))
        appendLE(type)
        self += value
        self += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    mutating func appendAttribute(_ type: UInt16, _ value: UInt32) {
        appendAttribute(type, Swift.withUnsafeBytes(of: value.littleEndian, Array.init))
    }
}
