import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension MobileNodeDaemon {
    /// RFC 6275 §11.5.1 movement detection: after any link or address event, one rtnetlink
    /// dump of links and addresses (the state that event announced, with carrier and DAD
    /// flags) and CareOfSelection's choice. A failed dump leaves everything as it was: the
    /// next event tries again.
    func rescan() {
        let links: [Netlink.Link], addresses: [Netlink.Address]
        do {
            links = try Netlink.links()
            addresses = try Netlink.ipv6Addresses()
        } catch {
            logger.warning("link/address dump failed; the next link or address event tries again",
                           metadata: ["mip6.error": "\(error)"])
            return
        }
        var views: [CareOfSelection.Interface] = []
        owner = [:]
        for name in options.interfaces {
            guard let link = links.first(where: { $0.name == name }), let i = interface(named: name, index: link.index) else { continue }
            let mine = addresses.filter { $0.ifindex == link.index && $0.address.isUnicastRoutable }
            for a in mine { owner[a.address] = i }
            views.append(.init(name: name, isUp: link.isUp, hasCarrier: link.hasCarrier, addresses: mine.map {
                .init($0.address, tentative: $0.isTentative, optimistic: $0.isOptimistic, dadFailed: $0.dadFailed,
                      deprecated: $0.isDeprecated)
            }))
        }
        let chosen = CareOfSelection.choose(views, current: core.status.careOfAddress,
                                            homeAddress: options.homeAddress, homePrefix: options.homePrefix)
        if owner[options.homeAddress] == nil, chosen == options.homeAddress,
           let home = views.first(where: { v in v.isUp && v.hasCarrier && v.addresses.contains { $0.isUsable && options.homePrefix.contains($0.address) } }) {
            owner[options.homeAddress] = interfaces.first { $0.name == home.name } ?? (try? NetworkInterface(named: home.name))
        }
        perform(core.careOfAddressChanged(chosen))
    }

    /// The interface's static facts (MAC, MTU) from the start-up scan; read again only when
    /// the interface was re-created (a new ifindex under the same name).
    private func interface(named name: String, index: UInt32) -> NetworkInterface? {
        if let i = interfaces.first(where: { $0.name == name && $0.index == index }) { return i }
        guard let fresh = try? NetworkInterface(named: name) else { return nil }
        interfaces.removeAll { $0.name == name }
        interfaces.append(fresh)
        return fresh
    }
}
