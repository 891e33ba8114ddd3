import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension MobileNodeDaemon {
    func handlePunt(_ record: UnsafeRawBufferPointer) {
        guard let punt = PuntRecord(record) else { return } // short or truncated: never half-parsed
        perform(core.handlePacket(punt.packet))
    }

    func perform(_ actions: [MobileNodeAction]) {
        for action in actions {
            switch action {
            case let .send(packet, description):
                // A BU from a care-of address: the HA may tunnel to it before its BA reaches us.
                let source = IPv6Address(bytes: packet[8..<24])
                if source != options.homeAddress {
                    do { try maps.setPendingCareOf(source) } catch {
                        logger.error("cannot update the data-plane config", metadata: ["mip6.error": "\(error)"])
                    }
                }
                send(packet, description)
            case let .tunnelUp(coa):
                guard let i = owner[coa] else {
                    logger.warning("care-of address vanished before its tunnel came up", metadata: ["mip6.coa": "\(coa)"])
                    continue
                }
                let gateway = (try? Netlink.routes()).flatMap { Netlink.bestRoute(to: options.homeAgent, through: i.index, in: $0) }?.gateway
                do { try maps.tunnelUp(careOf: coa, ifindex: i.index, gateway: gateway) } catch {
                    logger.error("cannot program the tunnel", metadata: ["mip6.error": "\(error)"])
                }
            case .tunnelDown:
                do {
                    try maps.tunnelDown()
                    if core.status.careOfAddress == nil { try maps.setPendingCareOf(nil) }
                } catch {
                    logger.error("cannot take the tunnel down", metadata: ["mip6.error": "\(error)"])
                }
            case let .registered(coa, lifetime):
                logger.debug("binding accepted", metadata: ["mip6.coa": "\(coa)", "mip6.lifetime": "\(lifetime)"])
            case let .registrationFailed(status):
                logger.warning("registration failed", metadata: ["mip6.status": "\(status)"])
            }
        }
        syncRoutes()
        let state = core.status.state
        if state != lastState {
            if state == "home" && lastState == "deregistering" { announceHome() }
            lastState = state
        }
        writeStatus()
    }

    /// Sends a BU from the interface its source address belongs to.
    func send(_ packet: [UInt8], _ description: String) {
        let source = IPv6Address(bytes: packet[8..<24])
        let interface = owner[source]
        let sender = interface.flatMap { senders[$0.name] }
        do {
            guard let interface, let sender else { throw SystemError("send", errno: EADDRNOTAVAIL, "no interface holds \(source)") }
            clearNextHop(towards: IPv6Address(bytes: packet[24..<40]), through: interface.index)
            try sender.send(packet)
        } catch {
            logger.debug("sending failed", metadata: ["mip6.what": "\(description)", "mip6.error": "\(error)"])
        }
    }

    /// The BU's next hop on its link may be an entry the kernel cannot resolve in time: made
    /// while the link was down or its addresses tentative, it sends no solicitation and
    /// drops what it queued when it gives up (`Netlink.deleteUnresolvedNeighbour`). Cleared,
    /// the BU resolves its own next hop at once.
    func clearNextHop(towards destination: IPv6Address, through ifindex: UInt32) {
        do {
            let nextHop = Netlink.bestRoute(to: destination, through: ifindex, in: try Netlink.routes())?.gateway ?? destination
            if try Netlink.deleteUnresolvedNeighbour(nextHop, ifindex: ifindex) {
                // Once per return to a link at most: logged, as the move itself is.
                logger.info("unresolved neighbour entry of the next hop cleared before the BU",
                            metadata: ["mip6.next_hop": "\(nextHop)", "mip6.ifindex": "\(ifindex)"])
            }
        } catch {
            logger.debug("cannot check the next hop's neighbour entry", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// RFC 6275 §11.5.5: back on the home link and de-registered, tell the link that the
    /// home address is ours again (the router still points it at the home agent). Link-local
    /// multicast is not reliable, so the NA goes out MAX_NEIGHBOR_ADVERTISEMENT times,
    /// RetransTimer apart (RFC 4861 §7.2.6, §10), while the node stays home.
    func announceHome() {
        homeAnnouncementsLeft = Self.maxNeighborAdvertisement
        sendHomeAnnouncement()
    }

    static let maxNeighborAdvertisement = 3
    static let retransTimerNs: UInt64 = 1_000_000_000

    func sendHomeAnnouncement() {
        guard homeAnnouncementsLeft > 0, core.status.state == "home", let home = owner[options.homeAddress] else {
            homeAnnouncementsLeft = 0
            return
        }
        homeAnnouncementsLeft -= 1
        nextHomeAnnouncement = clock.nanoseconds() + Self.retransTimerNs
        let allNodes = IPv6Address("ff02::1")!
        let na = PacketBuilder.neighborAdvertisement(target: options.homeAddress, source: options.homeAddress, destination: allNodes,
                                                     flags: (router: false, solicited: false, override: true),
                                                     targetLinkLayer: home.mac)
        do {
            try PacketSender(interface: home).send(ipv6: na, to: PacketSender.multicastMAC(allNodes))
            logger.info("home: unsolicited NA sent", metadata: [
                "mip6.interface": "\(home.name)", "mip6.nth": "\(Self.maxNeighborAdvertisement - homeAnnouncementsLeft)"])
        } catch {
            logger.warning("home: unsolicited NA failed", metadata: ["mip6.error": "\(error)"])
        }
    }

    func writeStatus() {
        lastStatusWrite = clock.nanoseconds()
        let report = MobileNodeReport(status: core.status, pid: getpid(), updatedAt: Date(), interfaces: options.interfaces,
                                      reassembledTunnel: reassembledTunnel)
        do { try report.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }
}
