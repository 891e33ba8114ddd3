import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging
import Mip6Store

/// `mip6 forwarder` (issue 12, the SDN variant; ../shared/design/no-spof.md §4): the home
/// agent's data plane alone, on the shared EventLoop. It loads the same `mip6_ha` object with
/// MIP6_CFG_FORWARDER (tunnel and decapsulate; signaling and ND go through the kernel to the
/// replicas, nothing is punted), writes the maps only from the store (list, then watch;
/// StoreReplica without its commits) and expires bindings itself, on time. MIP6_CFG_ENABLED
/// is set only while synced (ForwarderSync): otherwise every packet passes and is routed to
/// the replicas, so it never forwards from stale maps. The store side is in
/// ForwarderStore.swift, the state file and health in ForwarderState.swift.
public final class ForwarderDaemon: ProbedDaemon {
    let options: ForwarderOptions
    let logger: Logger
    let clock = SystemMonotonicClock()
    let loop = EventLoop()

    var pinLock: OwnedFD?
    var pins = ""
    var object: BPFObject!
    var maps: HomeAgentMaps!
    var table: BPFBindingTable!
    var cache: BindingCache!
    var attachments: [String: AttachedProgram] = [:]
    var feed: StoreReplica?
    var sync: ForwarderSync
    /// mod_revision of each home address's key, as last listed or watched.
    var revisions: [IPv6Address: Int64] = [:]
    var counters = ForwarderCounters()
    /// A replica accepted a BU -> its binding in our maps, ms (the last 4096; as the replicas measure it).
    var convergence = LatencySamples()
    /// MIP6_CFG_ENABLED as last written.
    var forwarding = false
    var notSynced: String? = "starting"
    var stopping = false
    var stateDirty = true
    var lastStateWrite: UInt64 = 0
    let startedAt = Date()
    var startedNs: UInt64 = 0
    /// Start -> first list in the maps, ms (the cold start).
    var firstSyncMilliseconds: Double?
    static let stateWriteDelayNs: UInt64 = 200_000_000

    /// Shared with other threads (the HTTP endpoint).
    let shared = Locked<ForwarderState?>(nil)

    public init(options: ForwarderOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        sync = ForwarderSync(maxLagMilliseconds: options.store.maxLagMilliseconds)
    }

    public func requestStop() {
        if loop.requestStop() { logger.notice("stopping: the data plane passes every packet to the replicas from now on") }
    }

    /// Nothing to re-read.
    public func requestReload() {}

    public var lastLoopTurnNanoseconds: UInt64 { loop.lastTurnNanoseconds }

    public func start() throws {
        startedNs = clock.nanoseconds()
        try DaemonStartup.checkCapabilities()
        let ifaces = try DaemonStartup.interfaces(options.interfaces)
        // bpf_fib_lookup answers FWD_DISABLED without forwarding.
        if Sysctl.read("net.ipv6.conf.all.forwarding") != "1" {
            do { try Sysctl.write("net.ipv6.conf.all.forwarding", "1") } catch {
                throw StartupError("cannot enable IPv6 forwarding (net.ipv6.conf.all.forwarding): \(error)")
            }
            logger.info("enabled IPv6 forwarding in this network namespace (net.ipv6.conf.all.forwarding=1)")
        }

        (pins, pinLock) = try DaemonStartup.prepareDirectories(bpffs: options.bpffs, stateDir: options.stateDir, logger: logger)
        DaemonStartup.routeLibBPFLog(to: logger)
        let (obj, adopting, capacity) = try DaemonStartup.loadHomeAgentObject(programObject: options.programObject, maxBindings: options.maxBindings,
                                                             pins: pins, logger: logger)
        object = obj
        maps = try HomeAgentMaps(object: obj)
        // Not ENABLED before the first list: pinned maps of an earlier run may be stale.
        try maps.writeConfig(homeAgent: options.address, homePrefix: options.homePrefix, flags: UInt32(MIP6_CFG_FORWARDER))
        _ = try maps.setLocalAddresses([options.address])

        // Pinned bindings (a restart) keep their slots and counters; the first list drops
        // what the store no longer has.
        table = BPFBindingTable(maps: maps, homeLinkIfindex: 0) // no proxy ND: no home link
        let cache = BindingCache(capacity: Int(capacity), dataPlane: table)
        table.current = { [unowned cache] in cache[$0] }
        let adopted = try maps.adoptLiveBindings(now: clock.nanoseconds(), homePrefix: options.homePrefix)
        cache.restore(adopted)
        self.cache = cache
        if adopting { logger.notice("adopting the pinned data plane", metadata: ["mip6.bpffs": "\(options.bpffs)", "mip6.bindings": "\(adopted.count)"]) }

        attachments = try ProgramAttachment.attach(object: obj, maps: maps, interfaces: ifaces, mode: options.attachMode,
                                                   pins: pins, logger: logger)
        setUpLoop()
        feed = StoreReplica(options: options.store, logger: logger, wake: loop.waker)
        feed?.start()
        writeState()
        logger.notice("forwarder started; passing every packet to the replicas until the store is listed", metadata: [
            "mip6.address": "\(options.address)", "mip6.prefix": "\(options.homePrefix)",
            "mip6.interfaces": "\(options.interfaces.joined(separator: ","))", "mip6.bpffs": "\(options.bpffs)",
            "mip6.endpoints": "\(options.store.endpoints.joined(separator: ","))", "mip6.store_prefix": "\(options.store.prefix)",
            "mip6.forwarder_id": "\(options.store.replicaID)",
        ])
    }

    func setUpLoop() {
        loop.onWake = { [unowned self] in drainStore() }
        // Staleness comes without an event (a silent store): look every 100 ms.
        loop.timer(deadline: { [unowned self] in clock.nanoseconds() + 100_000_000 }) { [unowned self] in
            updateForwarding()
            stateDirty = true
        }
        loop.timer(deadline: { [unowned self] in cache.nextExpiry }) { [unowned self] in expire() }
        loop.timer(deadline: { [unowned self] in stateDirty ? lastStateWrite + Self.stateWriteDelayNs : nil }) { [unowned self] in
            writeState()
        }
    }

    public func serve() throws { try loop.run() }

    /// The program stays attached (a restart has no gap) but passes everything: nobody keeps
    /// its maps current now.
    public func shutdown() {
        stopping = true
        feed?.stop()
        updateForwarding()
        writeState()
        logger.notice("stopped; the attached program passes every packet to the replicas (mip6 dataplane detach removes it)",
                      metadata: ["mip6.bpffs": "\(options.bpffs)"])
    }
}
