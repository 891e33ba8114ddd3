// What the kernel says about links and IPv6 addresses, read from an rtnetlink dump rather
// than sysfs or getifaddrs: the flags that matter for movement (carrier, DAD state) are
// only there, and a dump answered after an event describes the state that event announced.
import CMip6
import ControlPlane
import Glibc

extension Netlink {
    /// One link of RTM_GETLINK.
    public struct Link: Sendable, Equatable {
        public var index: UInt32
        public var name: String
        /// ifi_flags: IFF_UP is the administrative state (changed at once by `ip link set
        /// down`); IFF_LOWER_UP is the carrier. IFF_RUNNING follows operstate, which the
        /// kernel's linkwatch may update up to a second later: not used for decisions.
        public var flags: UInt32
        public var isUp: Bool { flags & 0x1 != 0 }              // IFF_UP
        public var hasCarrier: Bool { flags & 0x10000 != 0 } // IFF_LOWER_UP (not in Glibc's enum)
    }

    /// One IPv6 address of RTM_GETADDR.
    public struct Address: Sendable, Equatable {
        public var ifindex: UInt32
        public var address: IPv6Address
        public var prefixLength: UInt8
        /// IFA_F_* (from IFA_FLAGS when present: the 8-bit ifa_flags lacks the high bits).
        public var flags: UInt32
        public var isTentative: Bool { flags & UInt32(IFA_F_TENTATIVE) != 0 }
        public var isOptimistic: Bool { flags & UInt32(IFA_F_OPTIMISTIC) != 0 }
        public var dadFailed: Bool { flags & UInt32(IFA_F_DADFAILED) != 0 }
        public var isDeprecated: Bool { flags & UInt32(IFA_F_DEPRECATED) != 0 }
    }

    /// Every link in this network namespace.
    public static func links() throws(SystemError) -> [Link] {
        // struct ifinfomsg: family, pad, type, index, flags, change (16 bytes, all zero).
        try dump(type: UInt16(RTM_GETLINK), family: [UInt8](repeating: 0, count: 16)) { type, body -> Link? in
            guard type == UInt16(RTM_NEWLINK), body.count >= 16 else { return nil }
            let index = UInt32(bitPattern: body.loadLE(Int32.self, at: 4))
            let flags = body.loadLE(UInt32.self, at: 8)
            var name = ""
            attributes(body, from: 16) { t, v in
                if t == UInt16(IFLA_IFNAME) { name = String(decoding: v.prefix { $0 != 0 }, as: UTF8.self) }
            }
            return Link(index: index, name: name, flags: flags)
        }
    }

    /// Every IPv6 address in this network namespace.
    public static func ipv6Addresses() throws(SystemError) -> [Address] {
        // struct ifaddrmsg: family, prefixlen, flags, scope, index (8 bytes).
        try dump(type: UInt16(RTM_GETADDR), family: [UInt8(AF_INET6), 0, 0, 0, 0, 0, 0, 0]) { type, body -> Address? in
            guard type == UInt16(RTM_NEWADDR), body.count >= 8, body[0] == UInt8(AF_INET6) else { return nil }
            var flags = UInt32(body[2])
            var address: [UInt8]?, local: [UInt8]?
            attributes(body, from: 8) { t, v in
                switch t {
                case UInt16(IFA_ADDRESS): address = Array(v)
                case UInt16(IFA_LOCAL): local = Array(v)
                case UInt16(IFA_FLAGS) where v.count >= 4: flags = v.loadLE(UInt32.self, at: 0)
                default: break
                }
            }
            // IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS otherwise.
            guard let bytes = local ?? address, bytes.count == 16 else { return nil }
            return Address(ifindex: body.loadLE(UInt32.self, at: 4), address: IPv6Address(bytes: bytes),
                           prefixLength: body[1], flags: flags)
        }
    }

    /// Sends one NLM_F_DUMP request and collects what `parse` makes of each reply message.
    static func dump<T>(type: UInt16, family: [UInt8],
                        _ parse: (UInt16, [UInt8]) -> T?) throws(SystemError) -> [T] {
        let fd = try open(groups: 0)
        let sequence = UInt32.random(in: 1...UInt32.max)
        try send(fd, type, flags: UInt16(NLM_F_DUMP), sequence: sequence, body: family, what: "netlink dump \(type)")

        var out: [T] = []
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            var pfd = [pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)]
            guard try Syscall.poll(&pfd, timeoutMilliseconds: 2000) == 1 else {
                throw SystemError("netlink dump \(type)", errno: ETIMEDOUT)
            }
            let n = try Syscall.call("recv(netlink dump)") { buffer.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) } }
            var offset = 0
            while offset + 16 <= n {
                let length = Int(buffer.loadLE(UInt32.self, at: offset))
                let msgType = buffer.loadLE(UInt16.self, at: offset + 4)
                let msgSequence = buffer.loadLE(UInt32.self, at: offset + 8)
                guard length >= 16, offset + length <= n else {
                    throw SystemError("netlink dump \(type)", errno: EPROTO, "truncated message")
                }
                if msgSequence == sequence {
                    switch msgType {
                    case UInt16(NLMSG_DONE): return out
                    case UInt16(NLMSG_ERROR):
                        let err = length >= 20 ? buffer.loadLE(Int32.self, at: offset + 16) : -EPROTO
                        // EINTR: the table changed under the dump (NLM_F_DUMP_INTR); the caller retries on the next event.
                        throw SystemError("netlink dump \(type)", errno: err < 0 ? -err : EPROTO)
                    default:
                        if let item = parse(msgType, Array(buffer[(offset + 16)..<(offset + length)])) { out.append(item) }
                    }
                }
                offset += (length + 3) & ~3
            }
        }
    }

    /// Calls `body` with the type and value of each rtattr from `start` in `message`.
    static func attributes(_ message: [UInt8], from start: Int, _ body: (UInt16, ArraySlice<UInt8>) -> Void) {
        var offset = start
        while offset + 4 <= message.count {
            let length = Int(message.loadLE(UInt16.self, at: offset))
            let type = message.loadLE(UInt16.self, at: offset + 2) & 0x3fff // NLA_TYPE_MASK
            guard length >= 4, offset + length <= message.count else { return }
            body(type, message[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
    }
}

extension Collection where Element == UInt8, Index == Int {
    /// A little-endian (host order on every machine we run on) integer at `offset` from the start.
    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(self[startIndex + offset + i]) << (8 * i) }
        return v
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        self += Swift.withUnsafeBytes(of: v.littleEndian, Array.init)
    }
}
