import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension MobileNodeDaemon {
    /// Loads and attaches the programs, puts the home address on lo, registers. Before the loop runs.
    public func start() throws {
        try DaemonStartup.checkCapabilities()
        interfaces = try DaemonStartup.interfaces(options.interfaces)
        for i in interfaces { senders[i.name] = try RawIPv6Sender(boundTo: i.name) }
        (pins, pinLock) = try DaemonStartup.prepareDirectories(bpffs: options.bpffs, stateDir: options.stateDir, logger: logger)

        // RFC 6275 §11.1: the home address stays configured wherever the node is; on lo
        // it is ours on every link and the kernel delivers decapsulated packets to it.
        addedHoAToLoopback = try Netlink.changeAddress(add: true, options.homeAddress, prefixLength: 128, ifindex: if_nametoindex("lo"))

        DaemonStartup.routeLibBPFLog(to: logger)
        let obj = try BPFObject(.mobileNode)
        try obj.pinMaps(under: pins)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error). If \(options.bpffs) holds maps pinned by another version, "
                               + "remove them (rm -r \(options.bpffs)) and start again")
        }
        object = obj
        maps = try MobileNodeMaps(object: obj)
        try maps.configure(homeAddress: options.homeAddress, homeAgent: options.homeAgent)
        ring = try RingBuffer(map: maps.punt) { [unowned self] record in self.handlePunt(record) }
        // RFC 2473 §7.1(b): what the home agent had to fragment reaches us reassembled here.
        tunnel = try TunnelSocket()
        loopback = try RawIPv6Sender(boundTo: "lo")
        // Route events too: a default route appearing on the care-of link moves the home route.
        watcher = try Netlink.Watcher(groups: Netlink.rtmgrpLink | Netlink.rtmgrpIPv6IfAddr | Netlink.rtmgrpIPv6Route)
        try installSourceRule()

        let ingress = try obj.program(MIP6_PROG_MN_INGRESS), egress = try obj.program(MIP6_PROG_MN_EGRESS)
        for i in interfaces {
            do {
                attachments.append(try TCAttachment.mobileNode(ingress, ifindex: i.index, direction: .ingress))
                attachments.append(try TCAttachment.mobileNode(egress, ifindex: i.index, direction: .egress))
            } catch {
                throw StartupError("cannot attach the TC programs to \(i.name): \(error)")
            }
        }

        var config = MobileNodeConfiguration(homeAddress: options.homeAddress, homeAgent: options.homeAgent,
                                             homePrefix: options.homePrefix)
        config.requestedLifetime = options.lifetime
        if let nai = options.nai, let spi = options.spi, let path = options.keyPath {
            let key: MobilityKey
            do { key = try KeyFiles.key(path, logger: logger) } catch { throw StartupError("--key-file \(error)") }
            config.credentials = MobileNodeCredentials(nai: nai, spi: spi, key: key)
            logger.info("binding updates are authenticated (RFC 4285 MN-HA)", metadata: ["mip6.nai": "\(nai)", "mip6.spi": "\(spi)"])
        }
        core = MobileNodeCore(configuration: config, clock: clock, logger: logger,
                              initialSequence: options.initialSequence ?? .random(in: 0...UInt16.max))
        logger.notice("mobile node ready", metadata: [
            "mip6.hoa": "\(options.homeAddress)", "mip6.ha": "\(options.homeAgent)",
            "mip6.interfaces": "\(options.interfaces.joined(separator: ","))", "mip6.bpffs": "\(options.bpffs)",
        ])
        setUpLoop()
        rescan()
    }
}
