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
            endDAD(hoa)
            perform(core.dadFinished(homeAddress: hoa, duplicate: false))
        }
        if !due.isEmpty { updateNACopy() }
    }

    /// RFC 6275 §10.3.1 / RFC 4862 §5.4.2: one NS from the unspecified address to the
    /// solicited-node group, for the HoA and (L flag) its link-local address; an NA for either
    /// within RetransTimer means another node owns it.
    func startDAD(_ hoa: IPv6Address, linkLocal: IPv6Address?) {
        dadPending[hoa] = clock.nanoseconds() + dadTimeoutNs
        if let linkLocal { dadLinkLocal[linkLocal] = hoa }
        updateNACopy()
        for target in [hoa] + (linkLocal.map { [$0] } ?? []) {
            let group = target.solicitedNodeMulticast
            let ns = PacketBuilder.neighborSolicitation(target: target, source: .unspecified, destination: group, sourceLinkLayer: nil)
            do { try packetSender.send(ipv6: ns, to: PacketSender.multicastMAC(group)) } catch {
                sendFailed("DAD probe for \(target)", error)
            }
        }
    }

    /// The home address whose DAD probes `target` (itself, or its link-local address), if one runs.
    func dadHomeAddress(probing target: IPv6Address) -> IPv6Address? {
        if dadPending[target] != nil { return target }
        return dadLinkLocal[target].flatMap { dadPending[$0] != nil ? $0 : nil }
    }

    /// The DAD of `hoa` is over (its link-local address's with it).
    func endDAD(_ hoa: IPv6Address) {
        dadPending[hoa] = nil
        let ll = hoa.derivedLinkLocal
        if dadLinkLocal[ll] == hoa { dadLinkLocal[ll] = nil }
    }

    /// RFC 6275 §10.4.1: tell the link that the HoA (and, L flag, its link-local address) now
    /// lives at our link-layer address.
    func sendUnsolicitedNA(_ hoa: IPv6Address, linkLocal: IPv6Address? = nil) {
        let allNodes = IPv6Address("ff02::1")!
        for target in [hoa] + (linkLocal.map { [$0] } ?? []) {
            let na = PacketBuilder.neighborAdvertisement(target: target, source: target, destination: allNodes,
                                                         flags: (router: false, solicited: false, override: true),
                                                         targetLinkLayer: homeLink.mac)
            do { try packetSender.send(ipv6: na, to: PacketSender.multicastMAC(allNodes)) } catch {
                sendFailed("unsolicited NA for \(target)", error)
            }
        }
    }

    /// NAs are copied to us only while a DAD runs.
    func updateNACopy() {
        do { try maps.setConfigFlag(UInt32(MIP6_CFG_PUNT_NA), !dadPending.isEmpty) } catch {
            logger.error("cannot update data-plane config", metadata: ["mip6.error": "\(error)"])
        }
    }
}
