// IPv6 neighbour entries over rtnetlink: a mobile node clears an unresolved entry for its
// next hop before a Binding Update goes out (see `deleteUnresolvedNeighbour`).
import CMip6
import ControlPlane
import Glibc

extension Netlink {
    static let rtmNewNeigh: UInt16 = 28, rtmDelNeigh: UInt16 = 29, rtmGetNeigh: UInt16 = 30
    static let nudIncomplete: UInt16 = 0x01, nudFailed: UInt16 = 0x20

    /// One IPv6 entry of RTM_GETNEIGH.
    public struct Neighbour: Sendable, Equatable {
        public var ifindex: UInt32
        public var address: IPv6Address
        /// NUD_* (ndm_state).
        public var state: UInt16
        /// Still being resolved, or given up on: a packet sent to it now is queued or dropped.
        public var isUnresolved: Bool { state & (Netlink.nudIncomplete | Netlink.nudFailed) != 0 }
    }

    /// Every IPv6 neighbour entry in this network namespace (multicast NOARP ones included).
    public static func neighbours() throws(SystemError) -> [Neighbour] {
        // struct ndmsg: family, pad1, pad2 (u16), ifindex (s32), state (u16), flags, type (12 bytes).
        let ndmsg: [UInt8] = [UInt8(AF_INET6), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        return try dump(type: rtmGetNeigh, family: ndmsg) { type, body -> Neighbour? in
            guard type == rtmNewNeigh, body.count >= 12, body[0] == UInt8(AF_INET6) else { return nil }
            var address: IPv6Address?
            attributes(body, from: 12) { t, v in
                if t == 1 /* NDA_DST */ && v.count == 16 { address = IPv6Address(bytes: Array(v)) }
            }
            guard let address else { return nil }
            return Neighbour(ifindex: body.loadLE(UInt32.self, at: 4), address: address, state: body.loadLE(UInt16.self, at: 8))
        }
    }

    /// RTM_DELNEIGH; false when the entry was already gone.
    @discardableResult
    public static func deleteNeighbour(_ address: IPv6Address, ifindex: UInt32) throws(SystemError) -> Bool {
        var body: [UInt8] = [UInt8(AF_INET6), 0, 0, 0]
        body.appendLE(ifindex)
        body += [0, 0, 0, 0] // state, flags, type
        body.appendAttribute(1 /* NDA_DST */, address.bytes)
        let err = try transact(rtmDelNeigh, flags: 0, body: body, what: "RTM_DELNEIGH")
        if err == 0 { return true }
        if err == ENOENT || err == ESRCH { return false }
        throw SystemError("RTM_DELNEIGH", errno: err, "\(address) on ifindex \(ifindex)")
    }

    /// Deletes the entry for `address` on link `ifindex` if it is INCOMPLETE or FAILED;
    /// returns whether it did.
    ///
    /// Why: an entry that went INCOMPLETE while the link had no usable address sends no
    /// Neighbor Solicitation at all (the kernel needs a source that is not tentative: RFC
    /// 4862 §5.4), so it only retries on its 1 s timer and drops what it queued when its
    /// probes run out. One made while the link was down (a packet redirected there before
    /// the daemon heard of the loss) lives on for MAX_MULTICAST_SOLICIT seconds after the
    /// link is back. A BU sent into it waits for that timer or is dropped with it: a second
    /// lost in a handover. Deleted, the BU makes a fresh entry and its own solicitation,
    /// from the care-of address the BU comes from (RFC 4861 §7.2.2).
    @discardableResult
    public static func deleteUnresolvedNeighbour(_ address: IPv6Address, ifindex: UInt32) throws(SystemError) -> Bool {
        guard try neighbours().contains(where: { $0.ifindex == ifindex && $0.address == address && $0.isUnresolved }) else { return false }
        return try deleteNeighbour(address, ifindex: ifindex)
    }
}
