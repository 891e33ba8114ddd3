import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// `mip6 mag` (issue 13): the mobile access gateway on the shared EventLoop. Attach triggers
/// (carrier up on an access link, a frame from an unknown MAC, a Router Solicitation) and PBAs
/// come from the data plane's punt ring and rtnetlink; MobileAccessGatewayCore decides; its
/// forwarding is written to the BPF maps before the RA that lets the host use its prefix.
///
/// As at the LMA, nothing on the loop grows with the number of attached nodes but the core's
/// own work: the state file (`mag.json`, every 200 ms while something changed) holds counters
/// and entry counts by state, and the Binding Update List (`mag-nodes.json`) is written when
/// `mip6 mag status` asks for it (SIGUSR1) and at shutdown, from a copy encoded on another thread.
public final class MobileAccessGatewayDaemon: ProbedDaemon, ListDumpingDaemon {
    let options: MobileAccessGatewayOptions
    let logger: Logger
    let clock = SystemMonotonicClock()
    let loop = EventLoop()

    var pinLock: OwnedFD?
    var pins = ""
    var object: BPFObject!
    var maps: MobileAccessGatewayMaps!
    var ring: RingBuffer!
    var core: MobileAccessGatewayCore!
    var sender: RawIPv6Sender!
    var links: Netlink.Watcher!
    /// AF_PACKET senders by access ifindex (RAs and solicitations leave from the shared MAC).
    var access: [UInt32: PacketSender] = [:]
    var coreIndex: UInt32 = 0
    /// Carrier of each access link as last seen: an up edge solicits, a down edge detaches.
    var carrier: [UInt32: Bool] = [:]
    var attachments: [TCAttachment] = []
    var counters = MobileAccessGatewayDaemonCounters()
    var stateDirty = true
    var lastStateWrite: UInt64 = 0
    let reload = Locked(false)
    let dumpRequested = Locked(false)
    /// Encodes and writes the Binding Update List off the loop (one at a time, in order).
    let dumpQueue = DispatchQueue(label: "mip6.mag.node-list")
    /// Called with each registration's first PBU -> accepted PBA time, seconds (metrics). Set before start().
    public var onRegistration: ((Double) -> Void)?
    var registrationsSeen: UInt64 = 0

    // Shared with other threads (the HTTP endpoint): what the loop last published.
    let shared = Locked(Shared())
    struct Shared {
        var status: MobileAccessGatewayPublished?
        /// Interface name -> (ifindex, program id) of our filter, set once at start.
        var attached: [String: (ifindex: UInt32, programID: UInt32)] = [:]
    }
    static let stateWriteDelayNs: UInt64 = 200_000_000
    static let tcHandle = UInt32(MIP6_MAG_TC_HANDLE), tcPriority = UInt32(MIP6_MAG_TC_PRIORITY)

    public init(options: MobileAccessGatewayOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    public func requestStop() { _ = loop.requestStop() }

    /// SIGHUP: the policy file again; a file that does not parse leaves the previous policy.
    public func requestReload() {
        reload.write { $0 = true }
        loop.wakeUp()
    }

    /// SIGUSR1 (`mip6 mag status`): write the Binding Update List. Thread-safe.
    public func requestListDump() {
        dumpRequested.write { $0 = true }
        loop.wakeUp()
    }

    public func start() throws {
        try DaemonStartup.checkCapabilities()
        let accessLinks = try DaemonStartup.interfaces(options.accessInterfaces)
        guard let coreLink = try? NetworkInterface(named: options.coreInterface) else {
            throw StartupError("--core \(options.coreInterface): no such interface in this network namespace")
        }
        if accessLinks.contains(where: { $0.index == coreLink.index }) {
            throw StartupError("--core \(options.coreInterface) is also an --access link")
        }
        coreIndex = coreLink.index
        let policy = try ProxyPolicy.read(options.policyPath)
        if !coreLink.ipv6Addresses().contains(options.proxyCareOf) {
            throw StartupError("--proxy-coa \(options.proxyCareOf) is not an address of --core \(options.coreInterface)")
        }
        try prepareAccessLinks(accessLinks)

        (pins, pinLock) = try DaemonStartup.prepareDirectories(bpffs: options.bpffs, stateDir: options.stateDir, logger: logger)
        DaemonStartup.routeLibBPFLog(to: logger)
        let obj = try BPFObject(.mobileAccessGateway)
        try obj.pinMaps(under: pins)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error). If \(options.bpffs) holds maps pinned by another version, "
                               + "remove them (rm -r \(options.bpffs)) and start again")
        }
        object = obj
        maps = try MobileAccessGatewayMaps(object: obj)
        try maps.forgetNodes()
        try maps.setConfig(proxyCareOf: options.proxyCareOf, linkLocal: options.linkLocal, mac: options.mac,
                           coreIfindex: coreIndex, enabled: true)
        ring = try RingBuffer(map: maps.punt) { [unowned self] record in handlePunt(record) }
        sender = try RawIPv6Sender(boundTo: options.coreInterface)
        links = try Netlink.Watcher(groups: Netlink.rtmgrpLink)

        // The RAs advertise what fits the tunnel: the smaller of the access and core MTUs, less 40.
        let mtu = min(accessLinks.map(\.mtu).min() ?? coreLink.mtu, coreLink.mtu)
        let configuration = MobileAccessGatewayConfiguration(
            proxyCareOf: options.proxyCareOf, defaultLMA: options.lma, linkLayerAddress: options.mac, policy: policy,
            linkLocalAddress: options.linkLocal, requestedLifetime: options.lifetime, accessLinkMTU: mtu,
            routerAdvertisementPeriod: UInt64(options.raPeriod * 1e9))
        core = MobileAccessGatewayCore(configuration: configuration, clock: clock, logger: logger)

        let accessProgram = try obj.program(MIP6_PROG_MAG_ACCESS), coreProgram = try obj.program(MIP6_PROG_MAG_CORE)
        for (link, program) in accessLinks.map({ ($0, accessProgram) }) + [(coreLink, coreProgram)] {
            do {
                attachments.append(try TCAttachment(program: program, ifindex: link.index, direction: .ingress, handle: Self.tcHandle,
                                                    priority: Self.tcPriority, mayReplace: { $0.hasPrefix("mip6_mag") }))
            } catch {
                throw StartupError("cannot attach the TC program to \(link.name): \(error)")
            }
        }
        let names = options.accessInterfaces + [options.coreInterface]
        shared.write { s in
            for (name, a) in zip(names, attachments) { s.attached[name] = (a.ifindex, a.programID) }
        }
        setUpLoop()
        // Hosts already on an access link when we start: every link with carrier is an up edge
        // (none was seen before), so they are asked to show themselves.
        linksChanged()
        writeState()
        publish()
        logger.notice("mobile access gateway ready", metadata: [
            "mip6.proxy_coa": "\(options.proxyCareOf)", "mip6.lma": "\(options.lma)",
            "mip6.access": "\(options.accessInterfaces.joined(separator: ","))", "mip6.core": "\(options.coreInterface)",
            "mip6.mac": "\(formatMAC(options.mac))", "mip6.link_local": "\(options.linkLocal)",
            "mip6.advertised_mtu": "\(configuration.advertisedMTU)", "mip6.mobile_nodes": "\(policy.mobileNodes.count)",
            "mip6.bpffs": "\(options.bpffs)",
        ])
    }

    func setUpLoop() {
        loop.watch(ring.pollFD) { [unowned self] in
            try ring.consume()
            publish()
        }
        loop.watch(links.pollFD) { [unowned self] in
            if links.drain() { linksChanged() }
            publish()
        }
        loop.onWake = { [unowned self] in
            if reload.write({ let r = $0; $0 = false; return r }) {
                reloadPolicy()
                publish()
            }
            if dumpRequested.write({ let r = $0; $0 = false; return r }) { dumpNodes() }
        }
        loop.timer(deadline: { [unowned self] in core.nextDeadline }) { [unowned self] in
            perform(core.tick())
            publish()
        }
        loop.timer(deadline: { [unowned self] in stateDirty ? lastStateWrite + Self.stateWriteDelayNs : nil }) { [unowned self] in
            writeState()
        }
    }

    func reloadPolicy() {
        do {
            let policy = try ProxyPolicy.read(options.policyPath)
            core.updatePolicy(policy)
            logger.notice("SIGHUP: policy reloaded, attached nodes kept", metadata: ["mip6.mobile_nodes": "\(policy.mobileNodes.count)"])
        } catch {
            logger.error("SIGHUP: keeping the previous policy", metadata: ["mip6.error": "\(error)"])
        }
    }

    func handlePunt(_ record: UnsafeRawBufferPointer) {
        stateDirty = true
        // An attach trigger carries only its packet's first bytes (who, on which link, is in
        // the header); signaling must be whole: never half-parsed.
        guard let punt = PuntRecord(record, head: true), punt.isWhole || punt.kind == MIP6_PUNT_ATTACH.rawValue else {
            counters.puntsMalformed += 1
            return
        }
        switch punt.kind {
        case MIP6_PUNT_MH.rawValue:
            perform(core.handlePacket(punt.packet))
        case MIP6_PUNT_ATTACH.rawValue:
            guard access[punt.ifindex] != nil else { counters.puntsMalformed += 1; return }
            perform(core.attach(mac: punt.sourceMAC, ifindex: punt.ifindex, trigger: .unknownMAC))
        case MIP6_PUNT_RS.rawValue:
            // RFC 4861 §6.1.1: a valid RS only (hop limit 255, checksum, options); the frame's
            // source MAC names the node, whatever its Source Link-Layer Address option says.
            guard access[punt.ifindex] != nil, IPv6PacketParser.parseRouterSolicitation(punt.packet) != nil else {
                counters.invalidRouterSolicitations += 1
                return
            }
            perform(core.attach(mac: punt.sourceMAC, ifindex: punt.ifindex, trigger: .routerSolicitation))
        default:
            counters.puntsMalformed += 1
        }
    }

    func perform(_ actions: [MobileAccessGatewayAction]) {
        for action in actions {
            do {
                switch action {
                case let .send(packet, description):
                    do { try sender.send(packet) } catch {
                        counters.sendFailures += 1
                        if counters.sendFailures == 1 { // the first; the rest are counted
                            logger.warning("cannot send a PBU", metadata: ["mip6.what": "\(description)", "mip6.error": "\(error)"])
                        }
                    }
                case let .install(forwarding, expiresAt):
                    try maps.install(forwarding, expiresAt: expiresAt)
                case let .remove(forwarding):
                    try maps.remove(forwarding)
                case let .track(mac, ifindex):
                    try maps.hold(mac: mac, ifindex: ifindex)
                case let .untrack(mac):
                    try maps.release(mac: mac)
                case let .sendRouterAdvertisement(packet, mac, ifindex):
                    guard let link = access[ifindex] else { continue }
                    do { try link.send(ipv6: packet, to: mac) } catch {
                        counters.sendFailures += 1
                        if counters.sendFailures == 1 {
                            logger.warning("cannot send an RA", metadata: ["mip6.ifindex": "\(ifindex)", "mip6.error": "\(error)"])
                        }
                    }
                case .registrationFailed, .notAuthorized:
                    break // the core counts and logs them
                }
            } catch {
                // A map write that failed leaves the node without forwarding (or with stale
                // forwarding until its expiry); the next PBA or detach writes again.
                counters.dataPlaneFailures += 1
                logger.error("data-plane write failed", metadata: ["mip6.action": "\(action)", "mip6.error": "\(error)"])
            }
        }
    }

    public func serve() throws { try loop.run() }

    /// The filters go with the daemon; the pinned maps stay for inspection. The LMA's bindings
    /// expire on their own; a restarted MAG registers its nodes again on their next frame.
    public func shutdown() {
        writeState()
        dumpNodes()
        dumpQueue.sync {} // the list is on disk before the process exits
        for a in attachments { try? a.detach() }
        attachments.removeAll()
        logger.notice("stopped", metadata: ["mip6.bpffs": "\(options.bpffs)"])
    }

    /// The counters as they are now, for other threads (`publishedStatus`): copies of a few
    /// counters, after every ring drain; and each new registration's time for the histogram.
    func publish() {
        let c = core.counters
        if c.registrations != registrationsSeen {
            registrationsSeen = c.registrations
            if let ms = c.lastRegistrationMs { onRegistration?(Double(ms) / 1000) }
        }
        let published = MobileAccessGatewayPublished(
            nodes: MobileAccessGatewayReport.nodes(core.entriesByState),
            policyMobileNodes: core.configuration.policy.mobileNodes.count, core: c, daemon: counters)
        shared.write { $0.status = published }
    }

    /// The state file (`mag.json`): counters and entry counts by state, the same few hundred
    /// bytes whatever the number of nodes, so it stays on the loop (written before the ready
    /// line, `mip6 mag status` finds this daemon's pid in it at once).
    func writeState() {
        lastStateWrite = clock.nanoseconds()
        stateDirty = false
        let report = MobileAccessGatewayReport(
            pid: getpid(), updatedAt: Date(), proxyCareOf: options.proxyCareOf, defaultLMA: options.lma,
            nodes: MobileAccessGatewayReport.nodes(core.entriesByState), counters: core.counters, daemon: counters,
            dataplane: (try? maps.counterValues()) ?? [:], accessInterfaces: options.accessInterfaces,
            coreInterface: options.coreInterface, mac: formatMAC(options.mac), linkLocal: options.linkLocal)
        do { try report.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// The Binding Update List (`mag-nodes.json`): the loop copies the entries, the queue
    /// sorts, formats, encodes and writes them.
    func dumpNodes() {
        let snapshot = core.snapshot
        let takenAt = realtimeNanoseconds()
        let (pid, stateDir, logger) = (getpid(), options.stateDir, logger)
        dumpQueue.async {
            let list = MobileAccessGatewayNodes(pid: pid, takenAtNanoseconds: takenAt, status: snapshot.status())
            do { try list.write(stateDir: stateDir) } catch {
                logger.warning("cannot write the Binding Update List", metadata: ["mip6.error": "\(error)"])
            }
        }
    }
}

/// The daemon's own counters (the core's are in its status).
public struct MobileAccessGatewayDaemonCounters: Codable, Sendable {
    public var puntsMalformed: UInt64 = 0
    public var invalidRouterSolicitations: UInt64 = 0
    public var sendFailures: UInt64 = 0
    public var dataPlaneFailures: UInt64 = 0
    public var carrierUp: UInt64 = 0
    public var carrierDown: UInt64 = 0
    public var solicitations: UInt64 = 0
}

/// The MAG's state file (counters, no entries), read by `mip6 mag status`.
public struct MobileAccessGatewayReport: StateFile {
    public static let fileName = "mag.json"
    public var pid: Int32
    public var updatedAt: Date
    public var proxyCareOf: IPv6Address
    public var defaultLMA: IPv6Address
    /// Binding Update List entries by state ("pending", "registered", "deregistering"); states
    /// with none left out.
    public var nodes: [String: Int]
    public var counters: MobileAccessGatewayCounters
    public var daemon: MobileAccessGatewayDaemonCounters
    public var dataplane: [String: UInt64]
    public var accessInterfaces: [String]
    public var coreInterface: String
    public var mac: String
    public var linkLocal: IPv6Address

    public static func nodes(_ byState: [MobileAccessGatewayEntryState: Int]) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: byState.map { ($0.key.rawValue, $0.value) })
    }

    /// What `mip6 mag status` shows, from this file and the list it got: the list's entries
    /// and counts by state (with no list: none, and this file's counts); the list's counters
    /// when it was written for this request (they go with its entries), else this file's, the
    /// newer.
    public func status(listed: MobileAccessGatewayNodes?, fresh: Bool) -> (status: MobileAccessGatewayStatus, nodes: [String: Int]) {
        var status = MobileAccessGatewayStatus(proxyCareOf: proxyCareOf, defaultLMA: defaultLMA,
                                               entries: listed?.status.entries ?? [], counters: counters)
        if fresh, let listed { status.counters = listed.status.counters }
        return (status, listed.map { Dictionary($0.status.entries.map { ($0.state.rawValue, 1) }, uniquingKeysWith: +) } ?? nodes)
    }
}

/// The MAG's Binding Update List, written when `mip6 mag status` asks (SIGUSR1) and at shutdown.
/// The core's counters come with it, as of the same moment as the entries.
public struct MobileAccessGatewayNodes: ListOnRequest {
    public static let fileName = "mag-nodes.json"
    public static let listName = "Binding Update List"
    public var pid: Int32
    public var takenAtNanoseconds: UInt64
    public var status: MobileAccessGatewayStatus

    public init(pid: Int32, takenAtNanoseconds: UInt64, status: MobileAccessGatewayStatus) {
        self.pid = pid
        self.takenAtNanoseconds = takenAtNanoseconds
        self.status = status
    }
}

/// What the loop last published, for the HTTP endpoint (a thread-safe copy).
public struct MobileAccessGatewayPublished: Sendable {
    /// Binding Update List entries by state.
    public var nodes: [String: Int]
    public var policyMobileNodes: Int
    public var core: MobileAccessGatewayCounters
    public var daemon: MobileAccessGatewayDaemonCounters

    /// The core's and the daemon's counters by field name (read at scrape time).
    public var events: [String: UInt64] {
        var out: [String: UInt64] = [:]
        for source in [Mirror(reflecting: core), Mirror(reflecting: daemon)] {
            for child in source.children {
                if let name = child.label, let v = child.value as? UInt64 { out[name] = v }
            }
        }
        return out
    }
}
