import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension MobileNodeDaemon {
    /// RFC 2473 §7.1(b), §3.2: tunnel packets from the home agent that came in fragments (a
    /// packet of 1280 bytes or less on a path to the care-of address whose MTU is below 1320).
    /// The ingress program cannot reassemble, so it passes the fragments; the kernel reassembles
    /// them for the tunnel socket (and, a raw socket of protocol 41 being open, sends the home
    /// agent no Parameter Problem for a next header it does not know). The inner packet is
    /// checked as the program checks an unfragmented one (against the data plane's own config)
    /// and delivered to the home address on lo. At most `drainLimit` a turn.
    func drainTunnel() {
        var exitPoint: FragmentedTunnel.ExitPoint?
        for _ in 0..<Self.drainLimit {
            let received: TunnelSocket.Received
            do {
                guard let r = try tunnel.receive() else { return }
                received = r
            } catch {
                countTunnel("receive_failed", "\(error)")
                return
            }
            if exitPoint == nil { exitPoint = currentExitPoint() }
            guard let payload = received.payload, let exit = exitPoint else {
                countTunnel("drop_malformed", "")
                continue
            }
            switch FragmentedTunnel.decapsulate(payload, outerSource: received.source,
                                                outerDestination: received.destination, at: exit) {
            case let .deliver(inner):
                do {
                    try loopback.send(inner)
                    countTunnel("delivered", "")
                } catch {
                    countTunnel("deliver_failed", "\(error)")
                }
            case let .signaling(inner):
                countTunnel("signaling", "")
                perform(core.handlePacket(inner))
            case let .drop(reason):
                countTunnel("drop_\(reason.rawValue)", "")
            }
        }
    }

    static let drainLimit = 256

    /// What the data plane decapsulates for now (mip6_mn_config): the same addresses, the
    /// same moment's care-of address. Nil when the map cannot be read.
    func currentExitPoint() -> FragmentedTunnel.ExitPoint? {
        guard let c = try? maps.readConfig() else { return nil }
        let pending = IPv6Address(cAddress: c.pending_coa)
        return FragmentedTunnel.ExitPoint(homeAddress: IPv6Address(cAddress: c.hoa), homeAgent: IPv6Address(cAddress: c.ha),
                                          careOf: c.flags & UInt32(MIP6_MN_TUNNEL_UP) != 0 ? IPv6Address(cAddress: c.coa) : nil,
                                          pendingCareOf: pending == .unspecified ? nil : pending)
    }

    /// Counts one reassembled tunnel packet's fate; the first of each failure or drop is logged,
    /// the rest only counted (`mip6 mn status`).
    func countTunnel(_ what: String, _ detail: String) {
        reassembledTunnel[what, default: 0] += 1
        if what != "delivered" && what != "signaling" && reassembledTunnel[what] == 1 {
            logger.warning("reassembled tunnel packet not delivered (further ones of this kind are only counted: mip6 mn status)",
                           metadata: ["mip6.reason": "\(what)", "mip6.error": "\(detail)"])
        }
    }
}
