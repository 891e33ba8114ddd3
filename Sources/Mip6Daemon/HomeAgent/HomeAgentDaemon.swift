import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// The `mip6 ha` daemon on the shared EventLoop: the signaling ring buffer, netlink (next-hop
/// cache), the tunnel socket, wake-ups from other threads (stop, reload) and timers (binding
/// expiry, DAD, the state file). Nothing blocks per BU. Start-up is in HomeAgentStartup.swift,
/// BU handling in HomeAgentSignaling.swift, DAD and NAs in HomeAgentNeighborDiscovery.swift,
/// fragmented tunnel packets in HomeAgentTunnel.swift.
public final class HomeAgentDaemon: ProbedDaemon {
    let options: HomeAgentOptions
    let logger: Logger
    let clock = SystemMonotonicClock()
    let loop = EventLoop()

    /// The --bpffs single-instance lock, held for the daemon's life.
    var pinLock: OwnedFD?
    /// Where the pins go: --bpffs, or the host's view of it (BPFFS.prepare).
    var pins = ""
    // Set up by start(); the loop runs between start() and shutdown.
    var object: BPFObject!
    var maps: HomeAgentMaps!
    /// Interface name -> how our program sits there, recorded at attach time for readiness.
    var attachments: [String: AttachedProgram] = [:]
    var ring: RingBuffer!
    var routing: Netlink.Watcher!
    var core: HomeAgentCore!
    var rawSender: RawIPv6Sender!
    /// Next header 41 from the home agent address: fragmented tunnel packets (RFC 2473 §7.1(b)),
    /// and the ICMPv6 errors about every tunnel packet of ours (path MTU). HomeAgentTunnel.swift.
    var tunnel: TunnelSocket!
    var fragmented = FragmentedTunnelCounters()
    var homeLink: NetworkInterface!
    var packetSender: PacketSender!
    var localAddresses: Set<IPv6Address> = []
    var dadPending: [IPv6Address: UInt64] = [:]  // HoA -> deadline (monotonic ns)
    /// Link-local addresses probed with their home address (L flag) -> that home address.
    var dadLinkLocal: [IPv6Address: IPv6Address] = [:]
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
    /// Unsolicited NAs of the current ring drain (new home addresses), sent after the map write.
    var pendingAnnouncements: [(hoa: IPv6Address, linkLocal: IPv6Address?)] = []
    /// The shared binding store's side (--store), and what the loop knows of it.
    var replica: StoreReplica?
    var storeState = StoreState()
    /// Bindings de-registered in the current ring drain (the store deletes them before the BA).
    var pendingRemovals: [IPv6Address: Binding] = [:]
    /// A graceful stop has begun: withdrawn, no new announcement.
    var stopping = false
    /// Called with BU-received-by-the-data-plane -> BA-sent, seconds (metrics).
    public var onAckLatency: ((Double) -> Void)?
    static let flushEvery = 64
    static let stateWriteDelayNs: UInt64 = 200_000_000
    let startedAt = Date()

    // Shared with other threads (the HTTP endpoint, the service wrapper).
    let shared = Locked(Shared())
    struct Shared {
        var reloadRequested = false
        var state: ControlPlaneState?
    }

    public init(options: HomeAgentOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Asks the loop to answer what is already in the signaling ring and return (SIGTERM).
    /// Thread-safe. BUs arriving afterwards wait in the pinned ring for the next daemon.
    public func requestStop() {
        if loop.requestStop() {
            logger.notice("stopping: answering the BUs already received, then exiting; the data plane keeps forwarding")
        }
    }

    /// SIGHUP: re-read --auth-keys on the loop's thread. Thread-safe.
    public func requestReload() {
        shared.write { $0.reloadRequested = true }
        loop.wakeUp()
    }

    /// CLOCK_MONOTONIC ns of the loop's last turn (liveness); 0 before it started.
    public var lastLoopTurnNanoseconds: UInt64 { loop.lastTurnNanoseconds }

    /// The control plane's counters as of the loop's last state write.
    public var publishedState: ControlPlaneState? { shared.read { $0.state } }

    /// Wires the loop (after start()): the signaling ring, routing events (the next-hop cache
    /// is invalidated on any route, neighbour or link change), reload and stop, and timers.
    func setUpLoop() {
        loop.watch(ring.pollFD) { [unowned self] in try drainSignaling() }
        loop.watch(tunnel.pollFD) { [unowned self] in drainTunnel() }
        loop.watch(routing.pollFD) { [unowned self] in
            guard routing.drain() else { return }
            do { try maps.bumpNextHopGeneration() } catch {
                logger.error("cannot invalidate the next-hop cache", metadata: ["mip6.error": "\(error)"])
            }
            do { try syncLocalAddresses() } catch {
                logger.error("cannot update the local addresses", metadata: ["mip6.error": "\(error)"])
            }
        }
        loop.onWake = { [unowned self] in
            let reload = shared.write { s -> Bool in
                defer { s.reloadRequested = false }
                return s.reloadRequested
            }
            if reload {
                reconcileWithMaps()
                reloadKeys()
            }
            drainStore()
            if loop.stopRequested { try drainSignaling() } // the BUs in flight get their answers
        }
        if options.announce != nil || options.store != nil {
            // Lag and store health change without an event: look every 100 ms.
            loop.timer(deadline: { [unowned self] in clock.nanoseconds() + 100_000_000 }) { [unowned self] in
                updateAnnouncement()
                stateDirty = true // the lag in the state file (readiness) stays current
            }
        }
        loop.timer(deadline: { [unowned self] in core.nextDeadline }) { [unowned self] in perform(core.expire()) }
        loop.timer(deadline: { [unowned self] in nextDADDeadline }) { [unowned self] in finishDueDADs() }
        loop.timer(deadline: { [unowned self] in stateDirty ? lastStateWrite + Self.stateWriteDelayNs : nil }) { [unowned self] in
            writeState()
        }
    }

    /// The event loop; returns after a stop request, having drained the ring once more.
    public func serve() throws {
        try loop.run()
    }

    public func shutdown() {
        withdrawAndSettle()
        writeState()
        ring = nil
        logger.notice("stopped; the data plane keeps forwarding from the pinned state (mip6 dataplane detach removes it)",
                      metadata: ["mip6.bpffs": "\(options.bpffs)"])
    }
}
