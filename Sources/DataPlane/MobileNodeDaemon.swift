import CMip6
import ControlPlane
import Foundation
import Glibc
import Logging

/// What `mip6 mn` was asked to do.
public struct MobileNodeOptions: Sendable {
    public var homeAddress: IPv6Address
    public var homeAgent: IPv6Address
    public var homePrefix: IPv6Prefix
    /// In order of preference: the care-of address comes from the first usable one.
    public var interfaces: [String]
    public var lifetime: UInt32
    public var bpffs: String
    public var stateDir: String
    public var initialSequence: UInt16?
    /// RFC 4285 credentials: all three, or none (unauthenticated).
    public var nai: String?
    public var spi: UInt32?
    public var keyPath: String?

    public init(homeAddress: IPv6Address, homeAgent: IPv6Address, homePrefix: IPv6Prefix, interfaces: [String],
                lifetime: UInt32 = 600, bpffs: String = "/sys/fs/bpf/mip6-mn", stateDir: String = "/run/mip6-mn",
                initialSequence: UInt16? = nil) {
        self.homeAddress = homeAddress
        self.homeAgent = homeAgent
        self.homePrefix = homePrefix
        self.interfaces = interfaces
        self.lifetime = lifetime
        self.bpffs = bpffs
        self.stateDir = stateDir
        self.initialSequence = initialSequence
    }
}

/// `mip6 mn status`: the state machine's view plus the data plane's counters.
public struct MobileNodeReport: StateFile, Sendable {
    public var status: MobileNodeStatus
    public var pid: Int32
    public var updatedAt: Date
    public var interfaces: [String]

    public static let fileName = "mobilenode.json"
}

/// The `mip6 mn` daemon: one thread polling the BA ring buffer, netlink (movement), a
/// wake pipe (stop) and the state machine's next timer.
public final class MobileNodeDaemon {
    let options: MobileNodeOptions
    let logger: Logger
    let clock = SystemMonotonicClock()

    var object: BPFObject!
    var maps: MobileNodeMaps!
    var attachments: [TCAttachment] = []
    var ring: RingBuffer!
    var watcher: Netlink.Watcher!
    var core: MobileNodeCore!
    var senders: [String: RawIPv6Sender] = [:]
    var interfaces: [NetworkInterface] = []
    /// Which interface holds which of our addresses, from the last scan.
    var owner: [IPv6Address: NetworkInterface] = [:]
    var addedHoAToLoopback = false
    var lastState = ""
    var lastStatusWrite: UInt64 = 0
    /// Unsolicited NAs for the home address still to send after coming home, and when.
    var homeAnnouncementsLeft = 0
    var nextHomeAnnouncement: UInt64 = 0

    public init(options: MobileNodeOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    private let wake = WakePipe()
    private let stopSignal = Locked<Int32?>(nil)

    /// Starts, runs the loop until `requestStop`, de-registers and detaches. Blocks: run it
    /// on a thread of its own (MNCommand does).
    public func run() throws {
        try start()
        defer { stop() }
        try loop()
    }

    /// SIGTERM/SIGINT: de-register and return from `run()`. Thread-safe.
    public func requestStop(signal: Int32) {
        stopSignal.write { $0 = $0 ?? signal }
        wake.signal()
    }

    func start() throws {
        let missing = Capabilities.current().missingForDaemon()
        if !missing.isEmpty {
            throw StartupError("missing \(missing.joined(separator: ", ")): run as root, or grant these capabilities")
        }
        for name in options.interfaces {
            guard let i = try? NetworkInterface(named: name) else {
                throw StartupError("--interface \(name): no such interface in this network namespace")
            }
            interfaces.append(i)
            senders[name] = try RawIPv6Sender(boundTo: name)
        }
        do { try BPFFS.prepare(options.bpffs) } catch { throw StartupError("--bpffs \(options.bpffs): \(error)") }
        try FileManager.default.createDirectory(atPath: options.stateDir, withIntermediateDirectories: true)

        // RFC 6275 §11.1: the home address stays configured wherever the node is; on lo
        // it is ours on every link and the kernel delivers decapsulated packets to it.
        addedHoAToLoopback = try Netlink.changeAddress(add: true, options.homeAddress, prefixLength: 128, ifindex: if_nametoindex("lo"))

        let log = logger
        LibBPFLog.route { level, msg in
            if level == 0 { log.warning("libbpf: \(msg)") } else { log.trace("libbpf: \(msg)") }
        }
        let obj = try BPFObject(.mobileNode)
        try obj.pinMaps(under: options.bpffs)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error). If \(options.bpffs) holds maps pinned by another version, "
                               + "remove them (rm -r \(options.bpffs)) and start again")
        }
        object = obj
        maps = try MobileNodeMaps(object: obj)
        try maps.configure(homeAddress: options.homeAddress, homeAgent: options.homeAgent)
        ring = try RingBuffer(map: maps.punt) { [unowned self] record in self.handlePunt(record) }
        watcher = try Netlink.Watcher()

        let ingress = try obj.program(MIP6_PROG_MN_INGRESS), egress = try obj.program(MIP6_PROG_MN_EGRESS)
        for i in interfaces {
            do {
                attachments.append(try TCAttachment(program: ingress, ifindex: i.index, direction: .ingress))
                attachments.append(try TCAttachment(program: egress, ifindex: i.index, direction: .egress))
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
        rescan()
    }

    // MARK: movement

    /// RFC 6275 §11.5.1 movement detection, simplified to what netlink tells us: the
    /// care-of address is the global address of the first listed interface that is up
    /// and running; an address inside the home prefix means we are home.
    func rescan() {
        var chosen: IPv6Address?
        owner = [:]
        for name in options.interfaces {
            guard let i = try? NetworkInterface(named: name) else { continue }
            let globals = i.ipv6Addresses().filter(\.isUnicastRoutable)
            for a in globals { owner[a] = i }
            if chosen == nil && i.isRunning, let a = globals.first(where: { $0 != options.homeAddress }) ?? globals.first {
                chosen = options.homePrefix.contains(a) ? options.homeAddress : a
            }
        }
        if owner[options.homeAddress] == nil, let home = options.interfaces.lazy.compactMap({ try? NetworkInterface(named: $0) })
            .first(where: { $0.isRunning && $0.ipv6Addresses().contains { self.options.homePrefix.contains($0) } }) {
            owner[options.homeAddress] = home
        }
        perform(core.careOfAddressChanged(chosen))
    }

    // MARK: the loop

    func loop() throws {
        var fds = [pollfd(fd: ring.pollFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: watcher.pollFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let now = clock.nanoseconds()
            var next = now + 1_000_000_000
            if let d = core.nextDeadline { next = min(next, d) }
            if homeAnnouncementsLeft > 0 { next = min(next, nextHomeAnnouncement) }
            let timeout = next <= now ? 0 : Int32(min((next - now + 999_999) / 1_000_000, 1000))
            if poll(&fds, nfds_t(fds.count), timeout) < 0 && errno != EINTR { throw SystemError("poll", errno: errno) }
            if fds[0].revents != 0 { try ring.consume() }
            if fds[2].revents != 0 && watcher.drain() { rescan() }
            if fds[1].revents != 0 {
                wake.drain()
                if let s = stopSignal.read({ $0 }) {
                    logger.notice("stopping: de-registering", metadata: ["mip6.signal": "\(s == SIGTERM ? "SIGTERM" : "SIGINT")"])
                    shutdown()
                    return
                }
            }
            if let d = core.nextDeadline, d <= clock.nanoseconds() { perform(core.tick()) }
            if homeAnnouncementsLeft > 0 && nextHomeAnnouncement <= clock.nanoseconds() { sendHomeAnnouncement() }
            if clock.nanoseconds() - lastStatusWrite > 1_000_000_000 { writeStatus() }
        }
    }

    /// One de-registration BU, then up to a second for its BA (§11.5.5 is for coming
    /// home; on shutdown a lost BA just lets the binding expire at the HA).
    func shutdown() {
        perform(core.shutdown())
        let deadline = clock.nanoseconds() + 1_000_000_000
        var pfd = pollfd(fd: ring.pollFD, events: Int16(POLLIN), revents: 0)
        while core.status.state != "home" && clock.nanoseconds() < deadline {
            if poll(&pfd, 1, 100) > 0 { _ = try? ring.consume() }
        }
    }

    func stop() {
        writeStatus()
        for a in attachments { try? a.detach() }
        attachments.removeAll()
        if addedHoAToLoopback {
            _ = try? Netlink.changeAddress(add: false, options.homeAddress, prefixLength: 128, ifindex: if_nametoindex("lo"))
        }
        logger.notice("detached")
    }

    func handlePunt(_ record: UnsafeRawBufferPointer) {
        let hdrSize = MemoryLayout<mip6_punt_hdr>.size
        guard record.count >= hdrSize else { return }
        let hdr = record.loadUnaligned(as: mip6_punt_hdr.self)
        guard Int(hdr.len) <= record.count - hdrSize, hdr.len == hdr.orig_len else { return }
        perform(core.handlePacket(Array(record[hdrSize..<hdrSize + Int(hdr.len)])))
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
                do { try maps.tunnelUp(careOf: coa, ifindex: i.index) } catch {
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
        let sender = owner[source].flatMap { senders[$0.name] }
        do {
            guard let sender else { throw SystemError("send", errno: EADDRNOTAVAIL, "no interface holds \(source)") }
            try sender.send(packet)
        } catch {
            logger.debug("sending failed", metadata: ["mip6.what": "\(description)", "mip6.error": "\(error)"])
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
        let report = MobileNodeReport(status: core.status, pid: getpid(), updatedAt: Date(), interfaces: options.interfaces)
        do { try report.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }
}
