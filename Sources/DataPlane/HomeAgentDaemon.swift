import CMip6
import ControlPlane
import Foundation
import Glibc
import Logging

/// What `mip6 ha` was asked to do.
public struct HomeAgentOptions: Sendable {
    public var interfaces: [String]
    public var address: IPv6Address
    public var homePrefix: IPv6Prefix
    public var maxLifetime: UInt32
    public var maxBindings: Int
    public var bpffs: String
    public var stateDir: String
    public var attachMode: AttachMode
    /// RFC 4862 RetransTimer for DAD; nil reads the interface's retrans_time_ms.
    public var dadTimeoutMilliseconds: UInt32?
    public var duplicateAddressDetection: Bool
    /// RFC 4285 key file; nil runs unauthenticated (and says so loudly).
    public var authKeysPath: String?
    public var allowedSkew: UInt32 = 7
    public var puntLimits: PuntLimits = .default
    /// Load the home-agent BPF object from this file instead of the one built into the
    /// binary (a rebuilt data plane swapped in without a new control plane); nil: built in.
    public var programObject: String?

    public init(interfaces: [String], address: IPv6Address, homePrefix: IPv6Prefix, maxLifetime: UInt32 = 3600,
                maxBindings: Int = 65536, bpffs: String = "/sys/fs/bpf/mip6", stateDir: String = "/run/mip6",
                attachMode: AttachMode = .auto, dadTimeoutMilliseconds: UInt32? = nil, duplicateAddressDetection: Bool = true) {
        self.interfaces = interfaces
        self.address = address
        self.homePrefix = homePrefix
        self.maxLifetime = maxLifetime
        self.maxBindings = maxBindings
        self.bpffs = bpffs
        self.stateDir = stateDir
        self.attachMode = attachMode
        self.dadTimeoutMilliseconds = dadTimeoutMilliseconds
        self.duplicateAddressDetection = duplicateAddressDetection
    }
}

/// A prerequisite the daemon cannot run without: printed as one line, exit non-zero.
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Writes bindings through to the BPF maps (ControlPlane's BindingDataPlane). While
/// `deferring` (the daemon drains its signaling ring), installs are staged and written by
/// `flush()` in one bpf_map_update_batch, before any BA of that drain leaves.
final class BPFBindingTable: BindingDataPlane {
    let maps: HomeAgentMaps
    let homeLinkIfindex: UInt32
    var deferring = false
    private var staged: [(Binding, createStats: Bool)] = []

    init(maps: HomeAgentMaps, homeLinkIfindex: UInt32) {
        self.maps = maps
        self.homeLinkIfindex = homeLinkIfindex
    }

    func install(_ binding: Binding) throws { try install(binding, isNew: true) }
    /// A refresh or move is one map update; only a new binding also gets its counters entry.
    func install(_ binding: Binding, isNew: Bool) throws {
        if deferring {
            staged.append((binding, isNew))
            return
        }
        try maps.install(binding, ifindex: homeLinkIfindex, createStats: isNew)
    }

    func remove(homeAddress: IPv6Address) throws {
        // Order matters: a removal after a staged install of the same address must win.
        staged.removeAll { $0.0.homeAddress == homeAddress }
        try maps.remove(homeAddress)
    }

    var stagedCount: Int { staged.count }

    /// Writes what was staged; returns the bindings that could not be written.
    func flush() -> [(IPv6Address, Error)] {
        guard !staged.isEmpty else { return [] }
        defer { staged.removeAll(keepingCapacity: true) }
        return maps.installBatch(staged, ifindex: homeLinkIfindex)
    }
}

/// The `mip6 ha` daemon: one thread, one poll loop over the signaling ring buffer,
/// netlink (next-hop cache), a wake pipe (stop, reload) and the nearest timer (binding
/// expiry, DAD). Nothing blocks per BU.
public final class HomeAgentDaemon {
    let options: HomeAgentOptions
    let logger: Logger
    let clock = SystemMonotonicClock()

    // Set up by start(); the loop runs between start() and shutdown.
    var object: BPFObject!
    var maps: HomeAgentMaps!
    /// Interface name -> how our program sits there, recorded at attach time for readiness.
    var attachments: [String: (how: Attachment, ifindex: UInt32, programID: UInt32)] = [:]
    var ring: RingBuffer!
    var routing: Netlink.Watcher!
    var core: HomeAgentCore!
    var rawSender: RawIPv6Sender!
    var homeLink: NetworkInterface!
    var packetSender: PacketSender!
    var localAddresses: Set<IPv6Address> = []
    var dadPending: [IPv6Address: UInt64] = [:]  // HoA -> deadline (monotonic ns)
    var dadTimeoutNs: UInt64 = 1_000_000_000
    var stateDirty = true
    var lastStateWrite: UInt64 = 0
    var sendFailures: UInt64 = 0
    var loggedSendFailures: Set<String> = []
    var puntsMalformed: UInt64 = 0
    var mapUpdateFailures: UInt64 = 0
    var table: BPFBindingTable!
    /// BAs (and other answers) of the current ring drain, sent after the map writes they confirm.
    var pendingSends: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)] = []
    var currentPunt: (hoa: IPv6Address?, receivedNs: UInt64)?
    /// Called with BU-received-by-the-data-plane -> BA-sent, seconds (metrics).
    public var onAckLatency: ((Double) -> Void)?
    static let flushEvery = 64
    let startedAt = Date()

    public init(options: HomeAgentOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    // Cross-thread: the HTTP endpoint and the service wrapper talk to the loop through these.
    private let wake = WakePipe()
    private let shared = Locked(Shared())
    struct Shared {
        var stopRequested = false
        var reloadRequested = false
        var lastTurnNs: UInt64 = 0
        var state: ControlPlaneState?
    }

    /// Asks the loop to answer what is already in the signaling ring and return (SIGTERM).
    /// Thread-safe. BUs arriving afterwards wait in the pinned ring for the next daemon.
    public func requestStop(signal: Int32? = nil) {
        let first = shared.write { s -> Bool in
            defer { s.stopRequested = true }
            return !s.stopRequested
        }
        if first {
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            logger.notice("stopping: answering the BUs already received, then exiting; the data plane keeps forwarding",
                          metadata: ["mip6.signal": "\(name)"])
        }
        wake.signal()
    }

    /// SIGHUP: re-read --auth-keys on the loop's thread. Thread-safe.
    public func requestReload() {
        shared.write { $0.reloadRequested = true }
        wake.signal()
    }

    /// CLOCK_MONOTONIC ns of the loop's last turn (liveness); 0 before it started.
    public var lastLoopTurnNanoseconds: UInt64 { shared.read { $0.lastTurnNs } }

    /// The control plane's counters as of the loop's last state write.
    public var publishedState: ControlPlaneState? { shared.read { $0.state } }

    // MARK: health (called from other threads, after start())

    public struct Check: Sendable {
        public let name: String
        public let ok: Bool
        public let detail: String
    }

    /// Liveness: the loop turned within `maxAge` seconds (it wakes at least once a second).
    public func livenessCheck(maxAge: Double = 5) -> Check {
        let last = lastLoopTurnNanoseconds
        let age = last == 0 ? Double.infinity : Double(clock.nanoseconds() &- last) / 1e9
        return Check(name: "loop", ok: age <= maxAge, detail: last == 0 ? "not started" : String(format: "last turn %.1f s ago", age))
    }

    /// Readiness: our programs are the ones attached, the maps answer, the signaling loop turns.
    public func readinessChecks() -> [Check] {
        var checks: [Check] = []
        var wrong: [String] = []
        for name in options.interfaces {
            guard let a = attachments[name] else {
                wrong.append("\(name): not attached")
                continue
            }
            let found = HomeAgentPins.attachedProgramID(ifindex: a.ifindex, attachment: a.how)
            if found != a.programID {
                wrong.append("\(name): \(a.how.label) program \(found.map { "\($0)" } ?? "none"), expected \(a.programID)")
            }
        }
        checks.append(Check(name: "programs", ok: wrong.isEmpty,
                            detail: wrong.isEmpty ? attachments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.how.label)" }.joined(separator: ",")
                                                  : wrong.joined(separator: "; ")))
        let config = try? maps.readConfig()
        checks.append(Check(name: "maps", ok: config.map { $0.flags & UInt32(MIP6_CFG_ENABLED) != 0 } ?? false,
                            detail: config == nil ? "mip6_config unreadable" : "mip6_config enabled"))
        let live = livenessCheck(maxAge: 2)
        let stopping = shared.read { $0.stopRequested }
        checks.append(Check(name: "signaling", ok: live.ok && !stopping, detail: stopping ? "stopping" : live.detail))
        return checks
    }

    /// Per-binding traffic counters (one map scan; for /metrics).
    public func bindingTraffic() -> [(IPv6Address, mip6_binding_stats)] { (try? maps.readBindingStats()) ?? [] }

    /// Data-plane counters by name.
    public func dataPlaneCounters() -> [(name: String, value: UInt64)] { (try? maps.readCounters()) ?? [] }

    // MARK: start-up

    public func start() throws {
        let missing = Capabilities.current().missingForDaemon()
        if !missing.isEmpty {
            throw StartupError("missing \(missing.joined(separator: ", ")): run as root, or grant these capabilities to the container")
        }
        var ifaces: [NetworkInterface] = []
        for name in options.interfaces {
            guard let i = try? NetworkInterface(named: name) else {
                throw StartupError("--interface \(name): no such interface in this network namespace")
            }
            ifaces.append(i)
        }
        guard let home = ifaces.first(where: { $0.ipv6Addresses().contains(options.address) }) else {
            throw StartupError("--address \(options.address) is not configured on \(options.interfaces.joined(separator: ", ")) "
                               + "(add it first: ip -6 addr add \(options.address)/\(options.homePrefix.length) dev \(options.interfaces[0]))")
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

        do { try BPFFS.prepare(options.bpffs) } catch { throw StartupError("--bpffs \(options.bpffs): \(error)") }
        try FileManager.default.createDirectory(atPath: options.stateDir, withIntermediateDirectories: true)

        let log = logger
        LibBPFLog.route { level, msg in
            switch level {
            case 0: log.warning("libbpf: \(msg)")
            case 1: log.debug("libbpf: \(msg)")
            default: log.trace("libbpf: \(msg)")
            }
        }
        let obj = try HomeAgentPins.openProgramObject(path: options.programObject, logger: logger)
        // Pins left by an earlier daemon are adopted only if this version can read them.
        let fingerprint = HomeAgentPins.fingerprint(mapSpecs: obj.mapSpecs)
        let adopting: Bool
        do { adopting = try HomeAgentPins.checkCompatible(directory: options.bpffs, fingerprint: fingerprint) != nil } catch {
            throw StartupError("\(error)")
        }
        var capacity = UInt32(options.maxBindings)
        if adopting, let pinned = try? BPFMapHandle(pinned: "\(options.bpffs)/\(MIP6_MAP_BINDINGS)").maxEntries(), pinned != capacity {
            logger.warning("--max-bindings differs from the pinned binding table's size; keeping the pinned size (detach to resize)",
                           metadata: ["mip6.pinned": "\(pinned)", "mip6.requested": "\(capacity)"])
            capacity = pinned
        }
        try obj.setMaxEntries(map: MIP6_MAP_BINDINGS, capacity)
        try obj.setMaxEntries(map: MIP6_MAP_BINDING_STATS, capacity)
        try obj.pinMaps(under: options.bpffs)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error)")
        }
        try HomeAgentPins.writeMetaIfAbsent(directory: options.bpffs, fingerprint: fingerprint)
        object = obj
        maps = try HomeAgentMaps(object: obj)
        if adopting { logger.notice("adopting the pinned data plane", metadata: ["mip6.bpffs": "\(options.bpffs)"]) }

        // Bindings already pinned (a restart): adopt the live ones, drop the expired.
        table = BPFBindingTable(maps: maps, homeLinkIfindex: home.index)
        let cache = BindingCache(capacity: Int(capacity), dataPlane: table)
        let now = clock.nanoseconds()
        var adopted: [Binding] = []
        for (hoa, v) in try maps.readBindings() {
            if v.expires_ns <= now || !options.homePrefix.contains(hoa) {
                try maps.remove(hoa)
                continue
            }
            adopted.append(Binding(homeAddress: hoa, careOfAddress: IPv6Address(cAddress: v.coa), sequence: v.seq,
                                   flags: BUFlags(rawValue: v.flags), lifetime: v.lifetime_s,
                                   registeredAt: v.registered_ns, expiresAt: v.expires_ns))
        }
        cache.restore(adopted)
        if !adopted.isEmpty { logger.info("adopted pinned bindings", metadata: ["mip6.count": "\(adopted.count)"]) }

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
        for i in ifaces {
            for a in i.ipv6Addresses() {
                try maps.addLocalAddress(a)
                localAddresses.insert(a)
            }
        }
        localAddresses.insert(options.address)

        rawSender = try RawIPv6Sender()
        packetSender = try PacketSender(interface: home)
        ring = try RingBuffer(map: obj.map(MIP6_MAP_PUNT)) { [unowned self] record in self.handlePunt(record) }
        // Route, neighbour and link changes invalidate the data plane's next-hop cache.
        routing = try Netlink.Watcher(groups: Netlink.rtmgrpLink | Netlink.rtmgrpNeigh | Netlink.rtmgrpIPv6Route | Netlink.rtmgrpIPv6IfAddr)

        try attachPrograms(ifaces)
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
        let xdp = try object.program(MIP6_PROG_HA_XDP)
        let tc = try object.program(MIP6_PROG_HA_TC)
        var previous: [UInt32: Attachment] = [:]
        for (ifindex, v) in try maps.readInterfaces() { previous[ifindex] = Attachment(rawValue: v.attach) }
        for i in ifaces {
            var want: Attachment
            var why: String
            switch options.attachMode {
            case .xdp: (want, why) = (.xdpNative, "--attach-mode xdp")
            case .xdpGeneric: (want, why) = (.xdpGeneric, "--attach-mode xdp-generic")
            case .tc: (want, why) = (.tc, "--attach-mode tc")
            case .auto: (want, why) = HomeAgentPins.autoAttachment(interface: i.name)
            }
            var got: Attachment
            do {
                got = try HomeAgentPins.attach(xdp: xdp, tc: tc, interface: i, want: want, previous: previous[i.index],
                                               directory: options.bpffs, logger: logger)
            } catch let error as SystemError where options.attachMode == .auto && want == .xdpNative
                && [EOPNOTSUPP, EINVAL, ENOTSUP].contains(error.errno) {
                // The driver has no native XDP after all: TC keeps GSO, generic XDP would not.
                logger.notice("native XDP refused; using TC", metadata: ["mip6.interface": "\(i.name)", "mip6.error": "\(error)"])
                (want, why) = (.tc, "native XDP refused by the driver")
                got = try HomeAgentPins.attach(xdp: xdp, tc: tc, interface: i, want: want, previous: previous[i.index],
                                               directory: options.bpffs, logger: logger)
            } catch let error as SystemError {
                switch error.errno {
                case EBUSY, EEXIST:
                    throw StartupError("\(i.name) already has an XDP program that is not ours; detach it first (ip link set dev \(i.name) xdp off)")
                case EOPNOTSUPP, EINVAL:
                    throw StartupError("cannot attach in \(want.label) mode to \(i.name): \(error) (try --attach-mode tc)")
                default:
                    throw error
                }
            }
            previous[i.index] = nil
            attachments[i.name] = (got, i.index, got == .tc ? tc.id : xdp.id)
            try maps.setInterface(ifindex: i.index, mac: i.mac, mtu: i.mtu, attachment: got)
            logger.info("program attached", metadata: ["mip6.interface": "\(i.name)", "mip6.attach": "\(got.label)", "mip6.why": "\(why)",
                                                       "mip6.program_tag": "\(got == .tc ? tc.tag : xdp.tag)"])
        }
        for (ifindex, old) in previous { // an earlier daemon's interface we no longer serve
            try HomeAgentPins.detach(directory: options.bpffs, ifindex: ifindex, attachment: old)
            try maps.removeInterface(ifindex: ifindex)
            logger.notice("detached from an interface no longer configured", metadata: ["mip6.ifindex": "\(ifindex)"])
        }
    }

    // MARK: the loop

    /// The poll loop: signaling ring, routing events, the wake pipe (stop, reload) and the
    /// nearest timer. Returns after a stop request, having drained the ring once more.
    public func serve() throws {
        var fds = [pollfd(fd: ring.pollFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: routing.pollFD, events: Int16(POLLIN), revents: 0)]
        while true {
            shared.write { $0.lastTurnNs = clock.nanoseconds() }
            let timeout = pollTimeoutMilliseconds()
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 && errno != EINTR { throw SystemError("poll", errno: errno) }
            if fds[0].revents != 0 { try drainSignaling() }
            if fds[2].revents != 0 && routing.drain() {
                do { try maps.bumpNextHopGeneration() } catch {
                    logger.error("cannot invalidate the next-hop cache", metadata: ["mip6.error": "\(error)"])
                }
            }
            if fds[1].revents != 0 {
                wake.drain()
                let (stop, reload) = shared.write { s -> (Bool, Bool) in
                    defer { s.reloadRequested = false }
                    return (s.stopRequested, s.reloadRequested)
                }
                if reload { reloadKeys() }
                if stop {
                    try drainSignaling() // the BUs in flight get their answers
                    return
                }
            }
            runTimers()
            if stateDirty && clock.nanoseconds() - lastStateWrite > 200_000_000 { writeState() }
        }
    }

    /// Everything waiting in the signaling ring, with the map writes of each 64 BUs batched
    /// (one bpf_map_update_batch) and their BAs sent after them (one sendmmsg): a BA never
    /// confirms a binding the data plane does not have yet.
    func drainSignaling() throws {
        table.deferring = true
        defer {
            flushSignaling()
            table.deferring = false
        }
        try ring.consume()
    }

    func flushSignaling() {
        let failed = table.flush()
        var dropped: Set<IPv6Address> = []
        for (hoa, error) in failed {
            // The BA that would confirm it is not sent; the MN retransmits its BU (RFC 6275 §11.8).
            mapUpdateFailures += 1
            dropped.insert(hoa)
            logger.error("cannot write the binding to the data plane; its BA is withheld",
                         metadata: ["mip6.hoa": "\(hoa)", "mip6.error": "\(error)"])
            _ = try? core.cache.remove(hoa)
        }
        guard !pendingSends.isEmpty else { return }
        let sends = dropped.isEmpty ? pendingSends : pendingSends.filter { $0.hoa.map { !dropped.contains($0) } ?? true }
        pendingSends.removeAll(keepingCapacity: true)
        for (i, error) in rawSender.send(batch: sends.map(\.packet)) {
            sendFailed(sends[i].description, error)
        }
        if let observe = onAckLatency {
            let now = clock.nanoseconds()
            for s in sends where s.receivedNs > 0 && s.receivedNs <= now { observe(Double(now - s.receivedNs) / 1e9) }
        }
        stateDirty = true
    }

    /// SIGHUP: re-read --auth-keys; bindings stay. A broken file keeps the old keys.
    func reloadKeys() {
        guard let path = options.authKeysPath else {
            logger.info("SIGHUP: no --auth-keys file to reload")
            return
        }
        do {
            let keys = try KeyFiles.keyStore(path, logger: logger)
            core.replaceKeys(keys)
            logger.notice("SIGHUP: keys reloaded, bindings kept", metadata: ["mip6.keys": "\(keys.count)"])
        } catch {
            logger.error("SIGHUP: keeping the previous keys", metadata: ["mip6.error": "\(error)"])
        }
    }

    func pollTimeoutMilliseconds() -> Int32 {
        let now = clock.nanoseconds()
        var next = now + 1_000_000_000
        if let d = core.nextDeadline { next = min(next, d) }
        for d in dadPending.values { next = min(next, d) }
        if stateDirty { next = min(next, lastStateWrite + 200_000_000) }
        if next <= now { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, 1000))
    }

    func runTimers() {
        let now = clock.nanoseconds()
        if let d = core.nextDeadline, d <= now { perform(core.expire()) }
        let due = dadPending.filter { $0.value <= now }.map(\.key)
        for hoa in due {
            dadPending[hoa] = nil
            perform(core.dadFinished(homeAddress: hoa, duplicate: false))
        }
        if !due.isEmpty { updateNACopy() }
    }

    // MARK: punted packets

    func handlePunt(_ record: UnsafeRawBufferPointer) {
        let hdrSize = MemoryLayout<mip6_punt_hdr>.size
        guard record.count >= hdrSize else { puntsMalformed += 1; return }
        let hdr = record.loadUnaligned(as: mip6_punt_hdr.self)
        let len = Int(hdr.len)
        guard len <= record.count - hdrSize, hdr.len == hdr.orig_len else {
            puntsMalformed += 1 // truncated by the data plane: never half-parsed
            stateDirty = true
            return
        }
        let packet = Array(record[hdrSize..<hdrSize + len])
        switch Int32(hdr.kind) {
        case Int32(MIP6_PUNT_MH.rawValue):
            let actions = core.handlePacket(packet, localAddresses: localAddresses)
            let installed = actions.lazy.compactMap { if case let .bindingInstalled(b) = $0 { b.homeAddress } else { nil } }.first
            currentPunt = (installed, hdr.tstamp_ns)
            perform(actions)
            currentPunt = nil
            if table.stagedCount >= Self.flushEvery || pendingSends.count >= Self.flushEvery { flushSignaling() }
        case Int32(MIP6_PUNT_NA.rawValue):
            // RFC 4862 §5.4.4: an NA for a tentative home address means it is in use.
            if let na = IPv6PacketParser.parseNeighborAdvertisement(packet), dadPending[na.target] != nil {
                dadPending[na.target] = nil
                logger.warning("duplicate address detected for home address", metadata: ["mip6.hoa": "\(na.target)", "mip6.from": "\(na.source)"])
                perform(core.dadFinished(homeAddress: na.target, duplicate: true))
                updateNACopy()
            }
        default:
            puntsMalformed += 1
        }
        stateDirty = true
    }

    func perform(_ actions: [HomeAgentAction]) {
        for action in actions {
            switch action {
            case let .send(packet, description):
                if let punt = currentPunt, table.deferring {
                    pendingSends.append((packet, description, punt.hoa, punt.receivedNs))
                } else {
                    do { try rawSender.send(packet) } catch {
                        sendFailed(description, error)
                    }
                }
            case let .startDAD(hoa):
                startDAD(hoa)
            case let .sendUnsolicitedNA(hoa):
                sendUnsolicitedNA(hoa)
            case .bindingInstalled, .bindingRemoved:
                break
            }
            stateDirty = true
        }
    }

    // MARK: neighbour discovery

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

    /// Counts a failed send; logs the first failure of each kind only (a BU flood with
    /// unroutable care-of addresses must not become a log flood).
    func sendFailed(_ what: String, _ error: Error) {
        sendFailures += 1
        let kind = (error as? SystemError).map { "\($0.call):\($0.errno)" } ?? "\(error)"
        if loggedSendFailures.insert(kind).inserted {
            logger.warning("sending failed (further failures of this kind are only counted: mip6 stats)",
                           metadata: ["mip6.what": "\(what)", "mip6.error": "\(error)"])
        }
    }

    /// NAs are copied to us only while a DAD runs.
    func updateNACopy() {
        do { try maps.setConfigFlag(UInt32(MIP6_CFG_PUNT_NA), !dadPending.isEmpty) } catch {
            logger.error("cannot update data-plane config", metadata: ["mip6.error": "\(error)"])
        }
    }

    // MARK: state file (control-plane counters for `mip6 stats`)

    func writeState() {
        lastStateWrite = clock.nanoseconds()
        stateDirty = false
        let c = core.counters
        var drops: [String: UInt64] = [:]
        for (k, v) in c.drops { drops[k.rawValue] = v }
        var acks: [String: UInt64] = [:]
        for (k, v) in c.acksByStatus { acks[String(k)] = v }
        let state = ControlPlaneState(
            pid: getpid(), startedAt: startedAt, bindings: core.cache.count, dadInProgress: dadPending.count,
            bindingUpdates: c.bindingUpdates, acksByStatus: acks, bindingErrorsSent: c.bindingErrorsSent,
            deregistrations: c.deregistrations, expirations: c.expirations, drops: drops,
            sendFailures: sendFailures, mapUpdateFailures: mapUpdateFailures, puntsMalformed: puntsMalformed,
            authenticatedBindingUpdates: c.authenticatedBindingUpdates,
            authRefusals: Dictionary(uniqueKeysWithValues: c.authRefusals.map { ("\($0.key)", $0.value) }))
        shared.write { $0.state = state }
        do { try state.write(stateDir: options.stateDir) } catch {
            logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
        }
    }

    public func shutdown() {
        writeState()
        ring = nil
        logger.notice("stopped; the data plane keeps forwarding from the pinned state (mip6 dataplane detach removes it)",
                      metadata: ["mip6.bpffs": "\(options.bpffs)"])
    }
}

/// The control plane's counters, written to `<state-dir>/controlplane.json` for `mip6 stats`.
public struct ControlPlaneState: StateFile, Sendable {
    public var pid: Int32
    public var startedAt: Date
    public var bindings: Int
    public var dadInProgress: Int
    public var bindingUpdates: UInt64
    public var acksByStatus: [String: UInt64]
    public var bindingErrorsSent: UInt64
    public var deregistrations: UInt64
    public var expirations: UInt64
    public var drops: [String: UInt64]
    public var sendFailures: UInt64
    /// Bindings the data plane refused (their BAs withheld).
    public var mapUpdateFailures: UInt64 = 0
    public var puntsMalformed: UInt64
    /// RFC 4285: BUs that passed authentication, and refusals by reason (silent ones included).
    public var authenticatedBindingUpdates: UInt64 = 0
    public var authRefusals: [String: UInt64] = [:]

    public static let fileName = "controlplane.json"
}

/// A daemon's status file under --state-dir: JSON, written atomically (rename), read by the CLI.
public protocol StateFile: Codable {
    static var fileName: String { get }
}

extension StateFile {
    public static func path(stateDir: String) -> String { "\(stateDir)/\(fileName)" }

    func write(stateDir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.dateEncodingStrategy = .iso8601
        try enc.encode(self).write(to: URL(fileURLWithPath: Self.path(stateDir: stateDir)), options: .atomic)
    }

    public static func read(stateDir: String) throws -> Self {
        let dec = JSONDecoder()
        dec.dateDecodingStrategy = .iso8601
        return try dec.decode(Self.self, from: Data(contentsOf: URL(fileURLWithPath: path(stateDir: stateDir))))
    }
}
