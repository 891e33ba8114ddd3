import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension HomeAgentDaemon {
    public func start() throws {
        try DaemonStartup.checkCapabilities()
        let ifaces = try DaemonStartup.interfaces(options.interfaces)
        let home: NetworkInterface
        if options.virtualHome {
            // RFC 6275 §3.1: a virtual home network; the address is ours on any interface (lo,
            // for an anycast address every replica holds).
            // Absent: we put it on lo ourselves (a pod has nobody else to do it), and leave it.
            let all = (try? NetworkInterface(named: "lo")).map { [$0] } ?? []
            if !(all + ifaces).contains(where: { $0.ipv6Addresses().contains(options.address) }) {
                do {
                    try Netlink.changeAddress(add: true, options.address, prefixLength: 128, ifindex: if_nametoindex("lo"))
                } catch {
                    throw StartupError("--address \(options.address) is not configured here and adding it to lo failed: \(error) "
                                       + "(ip -6 addr add \(options.address)/128 dev lo)")
                }
                logger.notice("home agent address added to lo (virtual home network)", metadata: ["mip6.address": "\(options.address)"])
            }
            home = ifaces[0]
        } else {
            guard let h = ifaces.first(where: { $0.ipv6Addresses().contains(options.address) }) else {
                throw StartupError("--address \(options.address) is not configured on \(options.interfaces.joined(separator: ", ")) "
                                   + "(add it first: ip -6 addr add \(options.address)/\(options.homePrefix.length) dev \(options.interfaces[0]))")
            }
            home = h
        }
        homeLink = home
        if !options.homePrefix.contains(options.address) {
            logger.warning("home agent address is outside the home prefix", metadata: ["mip6.address": "\(options.address)", "mip6.prefix": "\(options.homePrefix)"])
        }
        for i in ifaces where !i.isUp {
            logger.warning("interface is down", metadata: ["mip6.interface": "\(i.name)"])
        }

        // bpf_fib_lookup answers FWD_DISABLED without forwarding, and we are a router for the HoAs.
        if Sysctl.read("net.ipv6.conf.all.forwarding") != "1" {
            do { try Sysctl.write("net.ipv6.conf.all.forwarding", "1") } catch {
                throw StartupError("cannot enable IPv6 forwarding (net.ipv6.conf.all.forwarding): \(error)")
            }
            logger.info("enabled IPv6 forwarding in this network namespace (net.ipv6.conf.all.forwarding=1)")
        }
        let retrans = options.dadTimeoutMilliseconds ?? UInt32(Sysctl.read("net.ipv6.neigh.\(home.name).retrans_time_ms") ?? "") ?? 1000
        dadTimeoutNs = UInt64(retrans) * 1_000_000

        (pins, pinLock) = try DaemonStartup.prepareDirectories(bpffs: options.bpffs, stateDir: options.stateDir, logger: logger)
        DaemonStartup.routeLibBPFLog(to: logger)
        let (obj, adopting, capacity) = try DaemonStartup.loadHomeAgentObject(programObject: options.programObject, maxBindings: options.maxBindings,
                                                                    pins: pins, logger: logger)
        object = obj
        maps = try HomeAgentMaps(object: obj)
        if adopting { logger.notice("adopting the pinned data plane", metadata: ["mip6.bpffs": "\(options.bpffs)"]) }

        // Bindings already pinned (a restart): adopt the live ones, drop the expired.
        table = BPFBindingTable(maps: maps, homeLinkIfindex: home.index)
        let cache = BindingCache(capacity: Int(capacity), dataPlane: table)
        table.current = { [unowned cache] in cache[$0] }
        let adopted = try maps.adoptLiveBindings(now: clock.nanoseconds(), homePrefix: options.homePrefix)
        cache.restore(adopted)
        if !adopted.isEmpty { logger.info("adopted pinned bindings", metadata: ["mip6.count": "\(adopted.count)"]) }
        // Their link-local entries (L flag): exactly those of the adopted bindings.
        let (llAdded, llRemoved) = try maps.syncLinkLocal(adopted)
        if llAdded + llRemoved > 0 {
            logger.info("link-local entries made to match the bindings", metadata: ["mip6.added": "\(llAdded)", "mip6.removed": "\(llRemoved)"])
        }

        var configuration = HomeAgentConfiguration(homeAgentAddress: options.address, homePrefix: options.homePrefix,
                                                   maxLifetime: options.maxLifetime, capacity: options.maxBindings,
                                                   duplicateAddressDetection: options.duplicateAddressDetection)
        if let path = options.authKeysPath {
            let keys: KeyStore
            do { keys = try KeyFiles.keyStore(path, logger: logger) } catch { throw StartupError("--auth-keys \(error)") }
            configuration.authentication = HomeAgentAuthenticationPolicy(keys: keys, allowedSkew: options.allowedSkew)
            logger.info("bindings are authenticated (RFC 4285 MN-HA)", metadata: ["mip6.keys": "\(keys.count)", "mip6.file": "\(path)"])
        } else {
            logger.warning("BINDINGS ARE NOT AUTHENTICATED: anyone who can reach the home agent can redirect any home address's traffic; use --auth-keys FILE")
        }
        core = HomeAgentCore(configuration: configuration, cache: cache, clock: clock, logger: logger)

        try maps.writeConfig(homeAgent: options.address, homePrefix: options.homePrefix, flags: UInt32(MIP6_CFG_ENABLED),
                             limits: options.puntLimits)
        try syncLocalAddresses()

        rawSender = try RawIPv6Sender()
        tunnel = try TunnelSocket(source: options.address, hopLimit: UInt8(MIP6_TUNNEL_HOP_LIMIT), reportErrors: true)
        packetSender = try PacketSender(interface: home)
        ring = try RingBuffer(map: obj.map(MIP6_MAP_PUNT)) { [unowned self] record in self.handlePunt(record) }
        // Route, neighbour and link changes invalidate the data plane's next-hop cache.
        routing = try Netlink.Watcher(groups: Netlink.rtmgrpLink | Netlink.rtmgrpNeigh | Netlink.rtmgrpIPv6Route | Netlink.rtmgrpIPv6IfAddr)

        try attachPrograms(ifaces)
        setUpLoop()
        if let s = options.store {
            // The maps keep forwarding what they hold; the first list replaces it (readiness and
            // the announcement wait for it).
            storeState.startedNs = clock.nanoseconds()
            replica = StoreReplica(options: s, logger: logger, wake: loop.waker)
            replica?.start()
            logger.notice("binding store", metadata: ["mip6.endpoints": "\(s.endpoints.joined(separator: ","))",
                                                      "mip6.prefix": "\(s.prefix)", "mip6.replica": "\(s.replicaID)"])
        }
        updateAnnouncement()
        writeState()
        if options.duplicateAddressDetection == false {
            logger.notice("duplicate address detection for home addresses is off")
        }
        logger.notice("home agent ready", metadata: [
            "mip6.address": "\(options.address)", "mip6.prefix": "\(options.homePrefix)",
            "mip6.interfaces": "\(options.interfaces.joined(separator: ","))", "mip6.bpffs": "\(options.bpffs)",
            "mip6.max_lifetime": "\(options.maxLifetime)", "mip6.max_bindings": "\(options.maxBindings)",
        ])
    }

    /// Puts the program on every --interface (replacing, without a gap, what an earlier
    /// daemon left) and takes it off interfaces an earlier daemon had that are not ours now.
    func attachPrograms(_ ifaces: [NetworkInterface]) throws {
        attachments = try ProgramAttachment.attach(object: object, maps: maps, interfaces: ifaces, mode: options.attachMode,
                                                   pins: pins, logger: logger)
    }

    /// Our addresses in the home prefix on the --interfaces (and the home agent address): the
    /// data plane punts their Mobility Headers and decapsulates tunnels to them, and the core
    /// refuses them as home addresses. Other addresses on the same interfaces are not the home
    /// agent's: an LMA co-located on the node (RFC 6612) takes its PBUs and tunnels there. At
    /// start (pins of an earlier daemon may list addresses gone since) and on every address event.
    func syncLocalAddresses() throws {
        var now: Set<IPv6Address> = [options.address]
        for name in options.interfaces {
            guard let i = try? NetworkInterface(named: name) else { continue }
            now.formUnion(i.ipv6Addresses().filter { options.homePrefix.contains($0) })
        }
        let (added, removed) = try maps.setLocalAddresses(now)
        if (added > 0 || removed > 0) && !localAddresses.isEmpty {
            logger.info("local addresses changed", metadata: ["mip6.added": "\(added)", "mip6.removed": "\(removed)"])
        }
        localAddresses = now
    }
}
