import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension HomeAgentDaemon {
    /// The earliest DAD deadline, for the event loop.
    var nextDADDeadline: UInt64? { dadPending.values.min() }

    /// DADs whose RetransTimer passed without an NA: the home address is ours to defend.
    func finishDueDADs() {
        let now = clock.nanoseconds()
        let due = dadPending.filter { $0.value <= now }.map(\.key)
        for hoa in due {
            dadPending[hoa] = nil
            perform(core.dadFinished(homeAddress: hoa, duplicate: false))
        }
        if !due.isEmpty { updateNACopy() }
    }

    /// RFC 6275 §10.3.1 / RFC 4862 §5.4.2: one NS from the unspecified address to the
    /// solicited-node group; an NA within RetransTimer means another node owns the HoA.
    func startDAD(_ hoa: IPv6Address) {
        dadPending[hoa] = clock.nanoseconds() + dadTimeoutNs
        updateNACopy()
        let group = hoa.solicitedNodeMulticast
        let ns = PacketBuilder.neighborSolicitation(target: hoa, source: .unspecified, destination: group, sourceLinkLayer: nil)
        do { try packetSender.send(ipv6: ns, to: PacketSender.multicastMAC(group)) } catch {
            sendFailed("DAD probe for \(hoa)", error)
        }
    }

    /// RFC 6275 §10.4.1: tell the link that the HoA now lives at our link-layer address.
    func sendUnsolicitedNA(_ hoa: IPv6Address) {
        let allNodes = IPv6Address("ff02::1")!
        let na = PacketBuilder.neighborAdvertisement(target: hoa, source: hoa, destination: allNodes,
                                                     flags: (router: false, solicited: false, override: true),
                                                     targetLinkLayer: homeLink.mac)
        do { try packetSender.send(ipv6: na, to: PacketSender.multicastMAC(allNodes)) } catch {
            sendFailed("unsolicited NA for \(hoa)", error)
        }
    }

    /// NAs are copied to us only while a DAD runs.
    func updateNACopy() {
        do { try maps.setConfigFlag(UInt32(MIP6_CFG_PUNT_NA), !dadPending.isEmpty) } catch {
            logger.error("cannot update data-plane config", metadata: ["mip6.error": "\(error)"])
        }
    }
}
