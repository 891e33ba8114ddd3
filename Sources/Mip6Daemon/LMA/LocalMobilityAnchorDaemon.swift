import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// `mip6 lma` (issue 13): the local mobility anchor on the shared EventLoop. PBUs come from the
/// data plane's punt ring, go through LocalMobilityAnchorCore, whose bindings are written to
/// the BPF maps (one entry per /64) before the PBA leaves; expiry runs on the core's heap and,
/// without a daemon, in the data plane itself (every entry carries its expiry).
///
/// Nothing on the loop grows with the number of bindings except the core's own work: the state
/// file (`lma.json`, every 200 ms while something changed) holds counters only, and the binding
/// list (`lma-bindings.json`) is written when `mip6 lma bindings` asks for it (SIGUSR1), from a
/// copy serialized on another thread. A list written on the loop every 200 ms took a third of
/// its CPU at 40,000 PBU/s and stalled it for 100 ms at 20,000 bindings (perf/README.md), long
/// enough for queued PBUs to age past the 300 ms Timestamp window (status 156).
public final class LocalMobilityAnchorDaemon: ProbedDaemon, ListDumpingDaemon {
    let options: LocalMobilityAnchorOptions
    let logger: Logger
    let clock = SystemMonotonicClock()
    let loop = EventLoop()

    var pinLock: OwnedFD?
    var pins = ""
    var object: BPFObject!
    var maps: LocalMobilityAnchorMaps!
    var ring: RingBuffer!
    var core: LocalMobilityAnchorCore!
    var sender: RawIPv6Sender!
    var attachments: [TCAttachment] = []
    var puntsMalformed: UInt64 = 0
    var sendFailures: UInt64 = 0
    /// Entries an earlier daemon installed, latest expiry first. They forward until they
    /// expire (the data plane checks it) and a MAG's refresh rewrites them; the ones nobody
    /// rewrote are deleted once expired, or they would pile up across restarts until the map
    /// is full.
    var inherited: [(prefix: IPv6Prefix, expiresNs: UInt64)] = []
    var inheritedRemoved: UInt64 = 0
    /// PBAs of the current ring drain, sent after it (or every `flushEvery`) in one sendmmsg.
    var pendingSends: [(packet: [UInt8], description: String, receivedNs: UInt64)] = []
    var draining = false
    static let flushEvery = 64
    /// Encodes and writes the state file and the binding list off the loop (one at a time, in order).
    let dumpQueue = DispatchQueue(label: "mip6.lma.state-files")
    var policyReloads: UInt64 = 0
    var policyReloadFailures: UInt64 = 0
    var stateDirty = true
    var lastStateWrite: UInt64 = 0
    /// CLOCK_MONOTONIC of the data plane's punt of the PBU being handled (0: none), for the latency.
    var currentPuntNs: UInt64 = 0
    let startedAt = Date()
    let reload = Locked(false)
    let dumpRequested = Locked(false)
    /// Called with PBU-punted-by-the-data-plane -> PBA-sent, seconds (metrics). Set before start().
    public var onAckLatency: ((Double) -> Void)?

    // Shared with other threads (the HTTP endpoint): what the loop last published.
    let shared = Locked(Shared())
    struct Shared {
        var status: LocalMobilityAnchorStatus?
        /// Interface name -> (ifindex, program id) of our filter, set once at start.
        var attached: [String: (ifindex: UInt32, programID: UInt32)] = [:]
    }
    static let stateWriteDelayNs: UInt64 = 200_000_000
    static let tcHandle = UInt32(MIP6_LMA_TC_HANDLE), tcPriority = UInt32(MIP6_LMA_TC_PRIORITY)

    public init(options: LocalMobilityAnchorOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    public func requestStop() { _ = loop.requestStop() }

    /// SIGHUP: the policy file again; a file that does not parse leaves the previous policy.
    public func requestReload() {
        reload.write { $0 = true }
        loop.wakeUp()
    }

    /// SIGUSR1 (`mip6 lma bindings`): write the binding list. Thread-safe.
    public func requestListDump() {
        dumpRequested.write { $0 = true }
        loop.wakeUp()
    }

    public func start() throws {
        try DaemonStartup.checkCapabilities()
        let ifaces = try DaemonStartup.interfaces(options.interfaces)
        let policy = try ProxyPolicy.read(options.policyPath)
        if Sysctl.read("net.ipv6.conf.all.forwarding") != "1" {
            do { try Sysctl.write("net.ipv6.conf.all.forwarding", "1") } catch {
                throw StartupError("cannot enable IPv6 forwarding (net.ipv6.conf.all.forwarding): \(error)")
            }
            logger.info("enabled IPv6 forwarding in this network namespace (net.ipv6.conf.all.forwarding=1)")
        }
        (pins, pinLock) = try DaemonStartup.prepareDirectories(bpffs: options.bpffs, stateDir: options.stateDir, logger: logger)
        DaemonStartup.routeLibBPFLog(to: logger)
        let obj = try BPFObject(.localMobilityAnchor)
        try obj.pinMaps(under: pins)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error). If \(options.bpffs) holds maps pinned by another version, "
                               + "remove them (rm -r \(options.bpffs)) and start again")
        }
        object = obj
        maps = try LocalMobilityAnchorMaps(object: obj)
        try maps.setConfig(lmaAddress: options.address, enabled: true, limits: options.puntLimits)
        inherited = try maps.readPrefixes().map { ($0.0, $0.1.expires_ns) }.sorted { $0.expiresNs > $1.expiresNs }
        if !inherited.isEmpty {
            logger.notice("forwarding for the prefixes an earlier daemon registered until their MAGs refresh them or they expire",
                          metadata: ["mip6.prefixes": "\(inherited.count)"])
        }
        ring = try RingBuffer(map: maps.punt) { [unowned self] record in handlePunt(record) }
        sender = try RawIPv6Sender()
        core = LocalMobilityAnchorCore(configuration: LocalMobilityAnchorConfiguration(address: options.address, maxLifetime: options.maxLifetime),
                                       policy: policy, dataPlane: maps, clock: clock, logger: logger)
        let program = try obj.program(MIP6_PROG_LMA_TC)
        for i in ifaces {
            do {
                attachments.append(try TCAttachment(program: program, ifindex: i.index, direction: .ingress, handle: Self.tcHandle,
                                                    priority: Self.tcPriority, mayReplace: { $0.hasPrefix("mip6_lma") }))
            } catch {
                throw StartupError("cannot attach the TC program to \(i.name): \(error)")
            }
        }
        shared.write { s in
            for (name, a) in zip(ifaces.map(\.name), attachments) { s.attached[name] = (a.ifindex, a.programID) }
        }
        setUpLoop()
        writeState()
        publish()
        logger.notice("local mobility anchor ready", metadata: [
            "mip6.address": "\(options.address)", "mip6.interfaces": "\(options.interfaces.joined(separator: ","))",
            "mip6.policy": "\(options.policyPath)", "mip6.mobile_nodes": "\(policy.mobileNodes.count)",
            "mip6.mags": "\(policy.mags.count)", "mip6.bpffs": "\(options.bpffs)",
        ])
    }

    func setUpLoop() {
        loop.timer(deadline: { [unowned self] in inherited.last.map { $0.expiresNs + 1_000_000_000 } }) { [unowned self] in
            sweepInherited()
        }
        loop.watch(ring.pollFD) { [unowned self] in try drainSignaling() }
        loop.onWake = { [unowned self] in
            if reload.write({ let r = $0; $0 = false; return r }) {
                reloadPolicy()
                publish()
            }
            if dumpRequested.write({ let r = $0; $0 = false; return r }) { dumpBindings() }
        }
        loop.timer(deadline: { [unowned self] in core.nextDeadline }) { [unowned self] in
            perform(core.expire())
            publish()
        }
        loop.timer(deadline: { [unowned self] in stateDirty ? lastStateWrite + Self.stateWriteDelayNs : nil }) { [unowned self] in
            writeState()
        }
    }

    func reloadPolicy() {
        do {
            let policy = try ProxyPolicy.read(options.policyPath)
            core.replacePolicy(policy)
            policyReloads += 1
            logger.notice("SIGHUP: policy reloaded, bindings kept", metadata: ["mip6.mobile_nodes": "\(policy.mobileNodes.count)"])
        } catch {
            policyReloadFailures += 1
            logger.error("SIGHUP: keeping the previous policy", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// Everything waiting in the punt ring; the PBAs leave in sendmmsg batches, each after the
    /// map writes it confirms (the core writes them before it returns the PBA).
    func drainSignaling() throws {
        draining = true
        defer {
            draining = false
            flushSends()
            publish()
        }
        try ring.consume()
    }

    func flushSends() {
        guard !pendingSends.isEmpty else { return }
        for (i, error) in sender.send(batch: pendingSends.map(\.packet)) { sendFailed(pendingSends[i].description, error) }
        if let observe = onAckLatency {
            let now = clock.nanoseconds()
            for s in pendingSends where s.receivedNs > 0 && s.receivedNs <= now { observe(Double(now - s.receivedNs) / 1e9) }
        }
        pendingSends.removeAll(keepingCapacity: true)
    }

    func sendFailed(_ description: String, _ error: Error) {
        sendFailures += 1
        if sendFailures == 1 { // the first; the rest are counted
            logger.warning("cannot send a PBA", metadata: ["mip6.what": "\(description)", "mip6.error": "\(error)"])
        }
    }

    func handlePunt(_ record: UnsafeRawBufferPointer) {
        stateDirty = true
        guard let punt = PuntRecord(record), punt.kind == MIP6_PUNT_MH.rawValue else {
            puntsMalformed += 1 // short, truncated or not signaling: never half-parsed
            return
        }
        currentPuntNs = punt.timestampNanoseconds
        defer { currentPuntNs = 0 }
        perform(core.handlePacket(punt.packet))
    }

    func perform(_ actions: [LocalMobilityAnchorAction]) {
        for action in actions {
            switch action {
            case let .send(packet, description):
                pendingSends.append((packet, description, currentPuntNs))
                if !draining || pendingSends.count >= Self.flushEvery { flushSends() }
            case .installed, .removed:
                stateDirty = true
            }
        }
    }

    public func serve() throws { try loop.run() }

    /// The inherited entries whose expiry passed: deleted unless a refresh rewrote them.
    func sweepInherited() {
        let now = clock.nanoseconds()
        while let e = inherited.last, e.expiresNs < now {
            inherited.removeLast()
            do {
                if try maps.removeIfExpired(e.prefix, now: now) { inheritedRemoved += 1 }
            } catch {
                logger.warning("cannot remove an expired entry", metadata: ["mip6.prefix": "\(e.prefix)", "mip6.error": "\(error)"])
            }
        }
        if inherited.isEmpty {
            logger.notice("the entries an earlier daemon left are refreshed or gone", metadata: ["mip6.removed": "\(inheritedRemoved)"])
        }
        stateDirty = true
    }

    /// The filters go with the daemon; the pinned maps stay (a restart reuses them, and their
    /// entries expire on time in the data plane).
    public func shutdown() {
        flushSends()
        writeState()
        dumpBindings()
        dumpQueue.sync {} // both files are on disk before the process exits
        for a in attachments { try? a.detach() }
        attachments.removeAll()
        logger.notice("stopped", metadata: ["mip6.bpffs": "\(options.bpffs)"])
    }

    /// The counters as they are now, for other threads (`publishedStatus`). Called after each
    /// ring drain, expiry and reload: a few reference-counted copies.
    func publish() {
        let status = LocalMobilityAnchorStatus(
            counters: core.counters, activeBindings: core.activeCount, deregisteredBindings: core.deregisteredCount,
            policyMobileNodes: core.policy.mobileNodes.count, policyMAGs: core.policy.mags.count,
            puntsMalformed: puntsMalformed, sendFailures: sendFailures,
            policyReloads: policyReloads, policyReloadFailures: policyReloadFailures)
        shared.write { $0.status = status }
    }

    /// The counters (`lma.json`): a few hundred bytes whatever the number of bindings. The loop
    /// takes the control plane's; the queue reads the data plane's (a system call per counter),
    /// encodes and writes, so the loop never waits for the file.
    func writeState() {
        lastStateWrite = clock.nanoseconds()
        stateDirty = false
        let report = LocalMobilityAnchorReport(
            pid: getpid(), updatedAt: Date(), address: options.address, policyPath: options.policyPath,
            activeBindings: core.activeCount, deregisteredBindings: core.deregisteredCount,
            counters: core.counters, dataplane: [:], puntsMalformed: puntsMalformed, sendFailures: sendFailures,
            inheritedEntries: inherited.count, inheritedEntriesRemoved: inheritedRemoved)
        let (maps, stateDir, logger) = (maps!, options.stateDir, logger)
        dumpQueue.async {
            var report = report
            report.dataplane = (try? maps.counterValues()) ?? [:]
            do { try report.write(stateDir: stateDir) } catch {
                logger.warning("cannot write state file", metadata: ["mip6.error": "\(error)"])
            }
        }
    }

    /// The binding list (`lma-bindings.json`): the loop copies the entries (one array), the
    /// queue sorts, encodes and writes them.
    func dumpBindings() {
        let bindings = core.snapshot
        let now = clock.nanoseconds()
        let takenAt = realtimeNanoseconds()
        let (pid, stateDir, logger) = (getpid(), options.stateDir, logger)
        dumpQueue.async {
            let dump = LocalMobilityAnchorBindings(
                pid: pid, takenAtNanoseconds: takenAt,
                bindings: bindings.sorted { $0.identifier < $1.identifier }.map { LocalMobilityAnchorBindings.Entry($0, now: now) })
            do { try dump.write(stateDir: stateDir) } catch {
                logger.warning("cannot write the binding list", metadata: ["mip6.error": "\(error)"])
            }
        }
    }
}

/// The control plane's counters as the loop last published them (thread-safe copy for the
/// HTTP endpoint).
public struct LocalMobilityAnchorStatus: Sendable {
    public var counters: LocalMobilityAnchorCounters
    public var activeBindings: Int
    public var deregisteredBindings: Int
    public var policyMobileNodes: Int
    public var policyMAGs: Int
    public var puntsMalformed: UInt64
    public var sendFailures: UInt64
    public var policyReloads: UInt64
    public var policyReloadFailures: UInt64
}

/// The LMA's state file (counters), read by `mip6 lma status` and `mip6 lma bindings`.
public struct LocalMobilityAnchorReport: StateFile, Sendable {
    public static let fileName = "lma.json"

    public var pid: Int32
    public var updatedAt: Date
    public var address: IPv6Address
    public var policyPath: String
    public var activeBindings: Int
    public var deregisteredBindings: Int
    public var counters: LocalMobilityAnchorCounters
    public var dataplane: [String: UInt64]
    public var puntsMalformed: UInt64
    public var sendFailures: UInt64
    /// Map entries an earlier daemon left that are not expired yet / deleted after expiring
    /// with no refresh.
    public var inheritedEntries: Int
    public var inheritedEntriesRemoved: UInt64
}

/// The LMA's binding list, written when `mip6 lma bindings` asks (SIGUSR1) and at shutdown.
public struct LocalMobilityAnchorBindings: ListOnRequest {
    public static let fileName = "lma-bindings.json"
    public static let listName = "binding list"

    public struct Entry: Codable, Sendable {
        public var identifier: String
        public var prefixes: [IPv6Prefix]
        public var mag: IPv6Address
        public var active: Bool
        public var lifetime: UInt32
        public var secondsToExpiry: UInt32
        public var accessTechnology: UInt8
        public var handoffIndicator: UInt8
        public var sequence: UInt16
        public var linkLayerIdentifier: String?

        init(_ b: ProxyBinding, now: UInt64) {
            identifier = b.identifier
            prefixes = b.prefixes
            mag = b.proxyCareOf
            active = b.isActive
            lifetime = b.lifetime
            secondsToExpiry = b.expiresAt > now ? UInt32(clamping: (b.expiresAt - now) / 1_000_000_000) : 0
            accessTechnology = b.accessTechnology
            handoffIndicator = b.handoffIndicator
            sequence = b.sequence
            linkLayerIdentifier = b.linkLayerIdentifier.map { $0.count == 6 ? formatMAC($0) : $0.map { String(format: "%02x", $0) }.joined() }
        }
    }

    public var pid: Int32
    /// CLOCK_REALTIME when the loop copied the entries, nanoseconds: the CLI tells a list
    /// written for its request from an older one by it.
    public var takenAtNanoseconds: UInt64
    public var bindings: [Entry]
}
