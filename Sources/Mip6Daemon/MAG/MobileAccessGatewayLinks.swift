import ControlPlane
import DataPlane
import Foundation
import Logging

extension MobileAccessGatewayDaemon {
    /// Every access link gets the shared MAC and link-local address (RFC 5213 §6.8, §6.9.3):
    /// a host that moves between MAGs keeps its default router and neighbour entry, so it sees
    /// no movement and does no DAD. The kernel owns the address (answers NS for it); it must
    /// not take RAs from the access side.
    func prepareAccessLinks(_ links: [NetworkInterface]) throws {
        if Sysctl.read("net.ipv6.conf.all.forwarding") != "1" {
            do { try Sysctl.write("net.ipv6.conf.all.forwarding", "1") } catch {
                throw StartupError("cannot enable IPv6 forwarding (net.ipv6.conf.all.forwarding): \(error)")
            }
            logger.info("enabled IPv6 forwarding in this network namespace (net.ipv6.conf.all.forwarding=1)")
        }
        for link in links {
            if link.mac != options.mac {
                do { try Netlink.setLinkAddress(ifindex: link.index, mac: options.mac) } catch {
                    throw StartupError("--access \(link.name): cannot set its MAC to \(formatMAC(options.mac)): \(error)")
                }
                logger.info("access link takes the shared MAC", metadata: ["mip6.link": "\(link.name)", "mip6.was": "\(formatMAC(link.mac))"])
            }
            do {
                try Sysctl.write("net.ipv6.conf.\(link.name).accept_ra", "0")
                try Netlink.changeAddress(add: true, options.linkLocal, prefixLength: 64, ifindex: link.index)
                access[link.index] = try PacketSender(interface: NetworkInterface(named: link.name))
            } catch {
                throw StartupError("--access \(link.name): \(error)")
            }
        }
    }

    /// rtnetlink said a link changed: compare each access link's carrier with what we saw last.
    /// Carrier up: solicit, so whoever is there shows its MAC at once. Carrier down: every node
    /// on that link has left (§6.9.1.4 detach; the core releases their MACs at once, so that a
    /// return before the de-registration is answered is an attach trigger again).
    func linksChanged() {
        let dump: [Netlink.Link]
        do { dump = try Netlink.links() } catch {
            logger.warning("link dump failed; the next link event tries again", metadata: ["mip6.error": "\(error)"])
            return
        }
        try? maps.bumpNextHopGeneration() // the core side's next hop may have changed too
        for (index, _) in access {
            let now = dump.first { $0.index == index }.map { $0.isUp && $0.hasCarrier } ?? false
            let before = carrier[index] ?? false
            carrier[index] = now
            if now && !before {
                counters.carrierUp += 1
                solicit(index)
            } else if !now && before {
                counters.carrierDown += 1
                for mac in core.macs(onAccessLink: index) { perform(core.detach(mac: mac)) }
            }
        }
        stateDirty = true
    }

    /// An Echo Request from the shared link-local address to all-nodes on one access link: each
    /// host answers from its own MAC, which the access program punts as an attach trigger.
    func solicit(_ ifindex: UInt32) {
        guard let link = access[ifindex] else { return }
        counters.solicitations += 1
        let packet = PacketBuilder.echoRequest(source: options.linkLocal, destination: IPv6Address("ff02::1")!,
                                               identifier: UInt16(truncatingIfNeeded: getpid()),
                                               sequence: UInt16(truncatingIfNeeded: counters.solicitations))
        do { try link.send(ipv6: packet, to: PacketSender.multicastMAC(IPv6Address("ff02::1")!)) } catch {
            counters.sendFailures += 1
            logger.warning("cannot solicit on an access link", metadata: ["mip6.ifindex": "\(ifindex)", "mip6.error": "\(error)"])
        }
    }
}
