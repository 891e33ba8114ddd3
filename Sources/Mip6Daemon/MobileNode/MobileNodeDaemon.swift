import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// The `mip6 mn` daemon on the shared EventLoop: the BA ring buffer, netlink (movement), the
/// tunnel socket, wake-ups (stop) and the state machine's next timer. Start-up is in
/// MobileNodeStartup.swift, movement in MobileNodeMovement.swift, what the state machine
/// asks for (BUs, tunnel up/down, coming home) in MobileNodeActions.swift, fragmented tunnel
/// packets in MobileNodeTunnel.swift.
public final class MobileNodeDaemon: LoopDaemon {
    let options: MobileNodeOptions
    let logger: Logger
    let clock = SystemMonotonicClock()
    let loop = EventLoop()

    /// The --bpffs single-instance lock, held for the daemon's life.
    var pinLock: OwnedFD?
    /// Where the pins go: --bpffs, or the host's view of it (BPFFS.prepare).
    var pins = ""
    var object: BPFObject!
    var maps: MobileNodeMaps!
    var attachments: [TCAttachment] = []
    var ring: RingBuffer!
    var watcher: Netlink.Watcher!
    var core: MobileNodeCore!
    var senders: [String: RawIPv6Sender] = [:]
    /// Tunnel packets from the home agent that the kernel reassembled (RFC 2473 §7.1(b)), and
    /// the socket that delivers their inner packets to the home address. MobileNodeTunnel.swift.
    var tunnel: TunnelSocket!
    var loopback: RawIPv6Sender!
    var reassembledTunnel: [String: UInt64] = [:]
    var interfaces: [NetworkInterface] = []
    /// Which interface holds which of our addresses, from the last scan.
    var owner: [IPv6Address: NetworkInterface] = [:]
    var addedHoAToLoopback = false
    var lastState = ""
    var lastStatusWrite: UInt64 = 0
    /// Unsolicited NAs for the home address still to send after coming home, and when.
    var homeAnnouncementsLeft = 0
    var nextHomeAnnouncement: UInt64 = 0
    static let statusWriteIntervalNs: UInt64 = 1_000_000_000

    public init(options: MobileNodeOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// SIGTERM/SIGINT: de-register, then return from `serve()`. Thread-safe.
    public func requestStop() {
        loop.requestStop()
    }

    /// SIGHUP: the mobile node reads its key once, at start. Thread-safe.
    public func requestReload() {
        logger.info("SIGHUP: nothing to reload (restart to read a new --key-file)")
    }

    func setUpLoop() {
        loop.watch(ring.pollFD) { [unowned self] in try ring.consume() }
        loop.watch(watcher.pollFD) { [unowned self] in if watcher.drain() { rescan() } }
        loop.watch(tunnel.pollFD) { [unowned self] in drainTunnel() }
        loop.onWake = { [unowned self] in
            guard loop.stopRequested else { return }
            logger.notice("stopping: de-registering")
            deregister()
        }
        loop.timer(deadline: { [unowned self] in core.nextDeadline }) { [unowned self] in perform(core.tick()) }
        loop.timer(deadline: { [unowned self] in homeAnnouncementsLeft > 0 ? nextHomeAnnouncement : nil }) { [unowned self] in
            sendHomeAnnouncement()
        }
        loop.timer(deadline: { [unowned self] in lastStatusWrite + Self.statusWriteIntervalNs }) { [unowned self] in writeStatus() }
    }

    public func serve() throws {
        try loop.run()
    }

    /// One de-registration BU, then up to a second for its BA (§11.5.5 is for coming
    /// home; on shutdown a lost BA just lets the binding expire at the HA).
    func deregister() {
        perform(core.shutdown())
        let deadline = clock.nanoseconds() + 1_000_000_000
        var pfd = [pollfd(fd: ring.pollFD, events: Int16(POLLIN), revents: 0)]
        while core.status.state != "home" && clock.nanoseconds() < deadline {
            if ((try? Syscall.poll(&pfd, timeoutMilliseconds: 100)) ?? 0) > 0 { _ = try? ring.consume() }
        }
    }

    /// After the loop: the TC filters, the home address on lo and its route go with the daemon.
    public func shutdown() {
        writeStatus()
        for a in attachments { try? a.detach() }
        attachments.removeAll()
        removeSourceRule()
        if addedHoAToLoopback {
            _ = try? Netlink.changeAddress(add: false, options.homeAddress, prefixLength: 128, ifindex: if_nametoindex("lo"))
        }
        logger.notice("detached")
    }
}
