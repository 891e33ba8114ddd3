import ControlPlane
import DataPlane
import Logging

extension MobileNodeDaemon {
    /// Packets from the home address leave through the link of the registered care-of
    /// address (where the TC program tunnels them from), not through whatever default route
    /// the main table prefers: a preferred link that just came back up may not carry
    /// anything yet (its addresses, link-local included, are tentative during DAD, so the
    /// kernel cannot even resolve the router) and is not registered until its BA. A rule
    /// "from HoA lookup --route-table" and that table's one default route do it; with no
    /// registered care-of address the table is empty and the main table decides.
    func installSourceRule() throws {
        do {
            try Netlink.setSourceRule(add: true, source: options.homeAddress, table: options.routeTable,
                                      priority: options.rulePriority)
        } catch {
            throw StartupError("cannot add the rule 'from \(options.homeAddress) lookup \(options.routeTable)': \(error)")
        }
    }

    /// Makes the data plane's next hop to the home agent and the table's default route
    /// follow the tunnel: through the care-of address's interface, via the gateway of the
    /// main table's best route on it (to the home agent; to anywhere). After every action
    /// and every link, address or route event.
    func syncRoutes() {
        do {
            guard let coa = core.status.tunnelCareOf, let i = owner[coa] else {
                // The registered care-of address went with its link: until the BA of the next
                // one, the FIB finds whatever link still reaches the home agent.
                if try maps.setGateway(nil) { logger.info("next hop to the home agent: FIB (the care-of link is gone)") }
                return try syncTable(nil)
            }
            let main = try Netlink.routes()
            let gateway = Netlink.bestRoute(to: options.homeAgent, through: i.index, in: main)?.gateway
            if try maps.setGateway(gateway) {
                logger.info("next hop to the home agent", metadata: [
                    "mip6.coa": "\(coa)", "mip6.interface": "\(i.name)", "mip6.gateway": "\(gateway.map { "\($0)" } ?? "FIB")"])
            }
            try syncTable(main.filter { $0.ifindex == i.index && $0.destination.length == 0 }.min { $0.metric < $1.metric })
        } catch {
            logger.warning("cannot update the home address's routes", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// The table's one default route: `desired`, or none. Compared without the metric (the
    /// kernel gives ours its default): an update only on a real change, or our own route
    /// event would bring us back here for ever.
    private func syncTable(_ desired: Netlink.Route?) throws {
        let present = try Netlink.routes(table: options.routeTable).filter { $0.destination.length == 0 }
            .map { [$0.ifindex: $0.gateway] }
        if present == (desired.map { [[$0.ifindex: $0.gateway]] } ?? []) { return }
        try Netlink.setDefaultRoute(table: options.routeTable, ifindex: desired?.ifindex, gateway: desired?.gateway)
        logger.info("home address traffic routed", metadata: [
            "mip6.table": "\(options.routeTable)",
            "mip6.via": "\(desired.map { "\($0.gateway.map { "\($0) " } ?? "")ifindex \($0.ifindex)" } ?? "main table")"])
    }

    /// At shutdown: the route and the rule go with the daemon.
    func removeSourceRule() {
        try? Netlink.setDefaultRoute(table: options.routeTable, ifindex: nil, gateway: nil)
        try? Netlink.setSourceRule(add: false, source: options.homeAddress, table: options.routeTable, priority: options.rulePriority)
    }
}
