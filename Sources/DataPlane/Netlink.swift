// A minimal rtnetlink client: requests with an ack (addresses here, routes and rules in
// NetlinkRoutes.swift), dumps (NetlinkDump.swift) and a socket that wakes
// the event loop on link, address and route changes. Messages are built byte by byte
// (NLMSG_ALIGN and friends are C macros Swift does not import).
import CMip6
import ControlPlane
import Glibc

public enum Netlink {
    static let rtmNewAddr: UInt16 = 20, rtmDelAddr: UInt16 = 21
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4, excl: UInt16 = 0x200, create: UInt16 = 0x400
    static let ifaFlagNoDAD: UInt8 = 0x02
    public static let rtmgrpLink: UInt32 = 0x1, rtmgrpNeigh: UInt32 = 0x4, rtmgrpIPv6IfAddr: UInt32 = 0x100,
                      rtmgrpIPv6Route: UInt32 = 0x400

    static func open(groups: UInt32) throws(SystemError) -> OwnedFD {
        let s = try Syscall.call("socket(AF_NETLINK)") {
            socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), NETLINK_ROUTE)
        }
        let fd = OwnedFD(s)
        var sa = sockaddr_nl()
        sa.nl_family = sa_family_t(AF_NETLINK)
        sa.nl_groups = groups
        try Syscall.call("bind(AF_NETLINK)") {
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
            }
        }
        return fd
    }

    /// RTM_NEWADDR / RTM_DELADDR for an IPv6 address (no DAD); returns false when it
    /// already existed (add) or was absent (delete).
    @discardableResult
    public static func changeAddress(add: Bool, _ address: IPv6Address, prefixLength: UInt8, ifindex: UInt32) throws(SystemError) -> Bool {
        var body: [UInt8] = [UInt8(AF_INET6), prefixLength, ifaFlagNoDAD, 0]  // struct ifaddrmsg
        body.appendLE(ifindex)
        body.appendAttribute(2 /* IFA_LOCAL */, address.bytes)
        body.appendAttribute(1 /* IFA_ADDRESS */, address.bytes)
        let what = "RTM_\(add ? "NEW" : "DEL")ADDR"
        let err = try transact(add ? rtmNewAddr : rtmDelAddr, flags: add ? create | excl : 0, body: body, what: what)
        if err == 0 { return true }
        if add && err == EEXIST { return false }
        if !add && (err == EADDRNOTAVAIL || err == ENOENT) { return false }
        throw SystemError(what, errno: err, "\(address)/\(prefixLength) on ifindex \(ifindex)")
    }

    /// RTM_SETLINK with IFLA_ADDRESS: the interface's Ethernet address. A MAG gives every
    /// access link the same one (RFC 5213 §6.9.3, FixedMAGLinkLayerAddressOnAllAccessLinks).
    public static func setLinkAddress(ifindex: UInt32, mac: [UInt8]) throws(SystemError) {
        guard mac.count == 6 else { throw SystemError("RTM_SETLINK", errno: EINVAL, "an Ethernet address has 6 bytes") }
        var body: [UInt8] = [UInt8(AF_UNSPEC), 0, 0, 0]  // struct ifinfomsg: family, pad, type
        body.appendLE(Int32(bitPattern: ifindex))
        body.appendLE(UInt32(0))  // ifi_flags
        body.appendLE(UInt32(0))  // ifi_change
        body.appendAttribute(1 /* IFLA_ADDRESS */, mac)
        let err = try transact(19 /* RTM_SETLINK */, flags: 0, body: body, what: "RTM_SETLINK")
        if err != 0 { throw SystemError("RTM_SETLINK", errno: err, "address \(formatMAC(mac)) on ifindex \(ifindex)") }
    }

    /// Sends one request message: nlmsghdr (NLM_F_REQUEST | `flags`) and `body`.
    static func send(_ fd: OwnedFD, _ type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8], what: String) throws(SystemError) {
        var msg: [UInt8] = []
        msg.appendLE(UInt32(16 + body.count))
        msg.appendLE(type)
        msg.appendLE(request | flags)
        msg.appendLE(sequence)
        msg.appendLE(UInt32(0)) // port id: the kernel fills it in
        msg += body
        _ = try Syscall.call("send(\(what))") { msg.withUnsafeBytes { Glibc.send(fd.raw, $0.baseAddress, $0.count, 0) } }
    }

    /// One request with NLM_F_ACK; returns the kernel's answer as an errno (0: done), for
    /// the caller to decide which ones are fine (EEXIST on a create, ENOENT on a delete).
    static func transact(_ type: UInt16, flags: UInt16, body: [UInt8], what: String) throws(SystemError) -> Int32 {
        let fd = try open(groups: 0)
        try send(fd, type, flags: ack | flags, sequence: 1, body: body, what: what)

        // The ack: nlmsghdr + struct nlmsgerr (error is the first field, 0 or -errno).
        var reply = [UInt8](repeating: 0, count: 1024)
        var pfd = [pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)]
        guard try Syscall.poll(&pfd, timeoutMilliseconds: 2000) == 1 else { throw SystemError(what, errno: ETIMEDOUT, "no netlink ack") }
        let n = try Syscall.call("recv(\(what) ack)") { reply.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) } }
        guard n >= 20 else { throw SystemError(what, errno: EPROTO, "short netlink ack") }
        return -reply.loadLE(Int32.self, at: 16)
    }

    /// A non-blocking socket subscribed to rtnetlink groups (default: link and IPv6
    /// address events). Its content is not parsed: any message means "something changed".
    public final class Watcher {
        let fd: OwnedFD
        public var pollFD: Int32 { fd.raw }

        public init(groups: UInt32 = Netlink.rtmgrpLink | Netlink.rtmgrpIPv6IfAddr) throws(SystemError) {
            fd = try Netlink.open(groups: groups)
        }

        /// Reads everything queued; returns whether anything was there. An overrun
        /// (ENOBUFS) also counts as a change: the rescan covers what was lost.
        public func drain() -> Bool {
            var buf = [UInt8](repeating: 0, count: 16384)
            var any = false
            while true {
                do throws(SystemError) {
                    let n = try Syscall.call("recv(netlink)") { buf.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) } }
                    if n == 0 { return any }
                    any = true
                } catch {
                    if error.errno == ENOBUFS { any = true; continue }
                    return any // EAGAIN: all read
                }
            }
        }
    }
}
