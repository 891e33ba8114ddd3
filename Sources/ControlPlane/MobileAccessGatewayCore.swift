import Logging

// The mobile access gateway (RFC 5213 §6) without I/O: attach/detach events, the Proxy Binding
// Acknowledgements the data plane punts and `tick()` go in; packets to send and data-plane
// changes come out, in order. Same shape as `MobileNodeCore`: the daemon's event loop (one
// thread) owns it and calls `tick()` at `nextDeadline`.

/// Mobile access gateway settings (RFC 5213 §6, §9 configuration variables; timers of RFC 6275
/// §12/§13, which §6.9.4 applies to PBUs).
public struct MobileAccessGatewayConfiguration: Sendable {
    /// Proxy-CoA: the MAG's egress address, source of every PBU and the tunnel's outer source
    /// (RFC 5213 §2.2).
    public var proxyCareOf: IPv6Address
    /// The LMA for mobile nodes whose policy entry names none.
    public var defaultLMA: IPv6Address
    /// FixedMAGLinkLocalAddressOnAllAccessLinks (§9.3, §6.8): the Router Advertisements' source
    /// on every access link of every MAG, so a node never sees its default router change.
    public var linkLocalAddress: IPv6Address
    /// FixedMAGLinkLayerAddressOnAllAccessLinks (§9.3, §6.9.3): the MAC in the RAs' Source
    /// Link-Layer Address option (and the downlink frames' source), the same on every MAG.
    public var linkLayerAddress: [UInt8]
    /// Access Technology Type option value (§8.5): 3 = IEEE 802.3.
    public var accessTechnologyType: UInt8
    /// Lifetime asked for in each PBU, seconds; sent in 4-second units, rounded down, at least
    /// one unit (RFC 6275 §6.1.7).
    public var requestedLifetime: UInt32
    /// MTU of the access links. The RAs advertise 40 bytes less (the IPv6-in-IPv6 tunnel to
    /// the LMA), never below 1280 (RFC 5213 §6.9.5 path MTU; RFC 8200 §5).
    public var accessLinkMTU: UInt32
    /// Period of the unsolicited unicast RA to each registered mobile node, nanoseconds (OPMIP
    /// sends one every 3 s). 0: no periodic RAs.
    public var routerAdvertisementPeriod: UInt64
    /// RA Router Lifetime, seconds (RFC 4861 §4.2, at most 9000).
    public var routerLifetime: UInt16
    /// Prefix Information option lifetimes, seconds (RFC 4861 §4.6.2).
    public var prefixValidLifetime: UInt32
    public var prefixPreferredLifetime: UInt32
    /// Cur Hop Limit advertised to the mobile nodes.
    public var advertisedHopLimit: UInt8
    /// Who may attach, with which NAI, prefixes and LMA (RFC 5213 §6.2 policy profile).
    public var policy: ProxyPolicy
    /// CLOCK_REALTIME, for the PBU Timestamp option (§5.5, §8.8).
    public var wallClock: any WallClock
    /// InitialBindackTimeoutFirstReg (RFC 6275 §13, 1.5 s), ns: first retransmission timeout
    /// while the LMA holds no binding for the node (RFC 5213 §6.9.4).
    public var initialBindackTimeoutFirstReg: UInt64
    /// INITIAL_BINDACK_TIMEOUT (RFC 6275 §12, 1 s), ns: otherwise.
    public var initialBindackTimeout: UInt64
    /// MAX_BINDACK_TIMEOUT (RFC 6275 §12, 32 s), ns: the timeout stops doubling here; also
    /// the back-off after a rejection.
    public var maxBindackTimeout: UInt64
    /// Refresh after this fraction of the granted lifetime (clamped to 0.1 ... 0.95).
    public var refreshFraction: Double
    /// Status 135 answers in a row followed by a re-synchronised PBU (RFC 6275 §11.7.1, for
    /// an LMA on the sequence number approach, RFC 5213 §5.5); the next one is a failure.
    public var maxConsecutiveResyncs: Int
    /// De-registration PBUs sent before the entry is dropped unanswered (OPMIP: 3).
    public var deregistrationAttempts: Int
    /// Handoff Indicator of the first PBU for a node this MAG holds no entry for (§8.4).
    /// 4 (handoff state unknown) by default: a MAG cannot tell a node that roamed in from
    /// another MAG from a new one, and with 1 (attachment over a new interface) a strict LMA
    /// (§5.4.1) starts a new mobility session with a new prefix, so a host roaming in would
    /// lose its addresses. Our LMA keeps a node's prefix either way.
    public var newAttachmentHandoffIndicator: UInt8
    /// Hop limit of the PBUs.
    public var hopLimit: UInt8

    public init(proxyCareOf: IPv6Address, defaultLMA: IPv6Address, linkLayerAddress: [UInt8], policy: ProxyPolicy,
                linkLocalAddress: IPv6Address = IPv6Address("fe80::1")!,
                accessTechnologyType: UInt8 = MobilityOption.AccessTechnology.ethernet,
                requestedLifetime: UInt32 = 60,
                accessLinkMTU: UInt32 = 1500,
                routerAdvertisementPeriod: UInt64 = 3_000_000_000,
                routerLifetime: UInt16 = 1800,
                prefixValidLifetime: UInt32 = 7200,
                prefixPreferredLifetime: UInt32 = 1800,
                advertisedHopLimit: UInt8 = 64,
                wallClock: any WallClock = SystemWallClock(),
                initialBindackTimeoutFirstReg: UInt64 = 1_500_000_000,
                initialBindackTimeout: UInt64 = 1_000_000_000,
                maxBindackTimeout: UInt64 = 32_000_000_000,
                refreshFraction: Double = 0.75,
                maxConsecutiveResyncs: Int = 3,
                deregistrationAttempts: Int = 3,
                newAttachmentHandoffIndicator: UInt8 = MobilityOption.HandoffIndicator.unknown,
                hopLimit: UInt8 = 64) {
        self.proxyCareOf = proxyCareOf
        self.defaultLMA = defaultLMA
        self.linkLayerAddress = linkLayerAddress
        self.policy = policy
        self.linkLocalAddress = linkLocalAddress
        self.accessTechnologyType = accessTechnologyType
        self.requestedLifetime = requestedLifetime
        self.accessLinkMTU = accessLinkMTU
        self.routerAdvertisementPeriod = routerAdvertisementPeriod
        self.routerLifetime = routerLifetime
        self.prefixValidLifetime = prefixValidLifetime
        self.prefixPreferredLifetime = prefixPreferredLifetime
        self.advertisedHopLimit = advertisedHopLimit
        self.wallClock = wallClock
        self.initialBindackTimeoutFirstReg = initialBindackTimeoutFirstReg
        self.initialBindackTimeout = initialBindackTimeout
        self.maxBindackTimeout = maxBindackTimeout
        self.refreshFraction = refreshFraction
        self.maxConsecutiveResyncs = maxConsecutiveResyncs
        self.deregistrationAttempts = deregistrationAttempts
        self.newAttachmentHandoffIndicator = newAttachmentHandoffIndicator
        self.hopLimit = hopLimit
    }

    /// `requestedLifetime` in the 4-second units of the PBU's Lifetime field.
    public var requestedLifetimeUnits: UInt16 {
        max(1, UInt16(clamping: requestedLifetime / 4))
    }

    /// The MTU the RAs advertise: the access link's less the 40-byte outer IPv6 header of the
    /// tunnel to the LMA, so that nothing the node sends needs fragmenting; at least 1280.
    public var advertisedMTU: UInt32 {
        max(NeighborDiscovery.minimumMTU, accessLinkMTU > 40 ? accessLinkMTU - 40 : 0)
    }
}

/// What brought a mobile node to the MAG's attention (design doc §2.2, fastest first).
public enum MobileAccessGatewayTrigger: String, Sendable, Codable {
    /// Carrier came up on a dedicated access port (or an L2 association hook).
    case carrierUp
    /// The access data plane punted a frame from a MAC it has no entry for.
    case unknownMAC
    /// A Router Solicitation (RFC 5213 §6.9.2).
    case routerSolicitation
}

/// The data-plane state for one attached mobile node: uplink from `mac` on `ifindex` with a
/// source in one of the prefixes is tunnelled from `proxyCareOf` to `lma`; downlink to the
/// prefixes from `lma` is decapsulated and sent to `mac` on `ifindex` (design doc §3.2).
public struct MobileAccessGatewayForwarding: Equatable, Hashable, Sendable, Codable {
    public var mac: [UInt8]
    public var ifindex: UInt32
    /// The node's MN-Identifier (NAI).
    public var identifier: String
    /// The home network prefixes the LMA assigned (from the PBA, RFC 5213 §6.9.1.2).
    public var homeNetworkPrefixes: [IPv6Prefix]
    public var lma: IPv6Address
    public var proxyCareOf: IPv6Address

    public init(mac: [UInt8], ifindex: UInt32, identifier: String, homeNetworkPrefixes: [IPv6Prefix],
                lma: IPv6Address, proxyCareOf: IPv6Address) {
        self.mac = mac
        self.ifindex = ifindex
        self.identifier = identifier
        self.homeNetworkPrefixes = homeNetworkPrefixes
        self.lma = lma
        self.proxyCareOf = proxyCareOf
    }
}

/// What the daemon must do after a call into `MobileAccessGatewayCore`, in order.
public enum MobileAccessGatewayAction: Equatable, Sendable {
    /// Send this complete IPv6 packet (a Proxy Binding Update to an LMA) out of the core side.
    case send(packet: [UInt8], description: String)
    /// Program the data plane for this node (replaces any state for the same MAC) until
    /// `expiresAt` (monotonic ns: the LMA's binding ends then, so forwarding stops by itself
    /// without a daemon). Sent on every accepted registration, refreshes included.
    case install(MobileAccessGatewayForwarding, expiresAt: UInt64)
    /// Remove this node's data-plane state. Idempotent.
    case remove(MobileAccessGatewayForwarding)
    /// Send this Router Advertisement (IPv6 packet, destination ff02::1) in a frame addressed
    /// to `mac` on `ifindex`, from the shared MAG MAC.
    case sendRouterAdvertisement(packet: [UInt8], mac: [UInt8], ifindex: UInt32)
    /// The LMA rejected the node's registration (status >= 128); the MAG retries after
    /// MAX_BINDACK_TIMEOUT. No prefix is advertised and no state installed meanwhile.
    case registrationFailed(mac: [UInt8], status: BAStatus)
    /// The MAG now handles `mac` on access link `ifindex` (a Binding Update List entry exists):
    /// its frames there are no attach trigger any more; frames from it elsewhere are.
    case track(mac: [UInt8], ifindex: UInt32)
    /// The MAG no longer handles `mac` (entry dropped): its next frame is an attach trigger.
    case untrack(mac: [UInt8])
    /// The MAC is not in the policy store (RFC 5213 §6.5: a node is served only once it is
    /// identified and authorised). Nothing was sent.
    case notAuthorized(mac: [UInt8], ifindex: UInt32)
}

public struct MobileAccessGatewayCounters: Codable, Sendable, Equatable {
    /// Proxy Binding Updates sent, retransmissions and de-registrations included.
    public var pbusSent: UInt64 = 0
    /// PBUs sent because the retransmission timer ran out (RFC 6275 §11.8, RFC 5213 §6.9.4).
    public var retransmissions: UInt64 = 0
    /// PBAs matched to an outstanding PBU with status < 128.
    public var pbasAccepted: UInt64 = 0
    /// PBAs matched to an outstanding PBU with status >= 128.
    public var pbasRejected: UInt64 = 0
    /// Binding Acknowledgements ignored: no P flag, not from the node's LMA, no matching
    /// outstanding PBU, bad checksum or options, timestamp not echoed.
    public var pbasIgnored: UInt64 = 0
    /// Attach events for nodes the policy knows.
    public var attaches: UInt64 = 0
    /// Detach events for nodes with an entry.
    public var detaches: UInt64 = 0
    /// Attach events for MACs the policy does not know.
    public var unknownMobileNodes: UInt64 = 0
    /// Accepted registrations of a node on an access link (first, or after a move or expiry).
    public var registrations: UInt64 = 0
    /// Accepted lifetime extensions (RFC 5213 §6.9.1.3).
    public var refreshes: UInt64 = 0
    /// Bindings whose granted lifetime ran out before a refresh was accepted.
    public var expirations: UInt64 = 0
    /// Router Advertisements sent (on registration, on a new attach trigger and periodic).
    public var rasSent: UInt64 = 0
    /// De-registrations the LMA answered (any status).
    public var deregistrations: UInt64 = 0
    /// De-registrations given up unanswered after `deregistrationAttempts` PBUs.
    public var deregistrationTimeouts: UInt64 = 0
    /// Status 156 answers followed by one immediate PBU with a fresh timestamp.
    public var timestampRetries: UInt64 = 0
    /// Status 135 answers followed by a PBU with the LMA's sequence number + 1.
    public var resyncs135: UInt64 = 0
    /// Other packets handed in that were not Binding Acknowledgements for us.
    public var packetsIgnored: UInt64 = 0
    /// First PBU of the last accepted registration → its PBA, milliseconds.
    public var lastRegistrationMs: UInt64?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case pbusSent, retransmissions, pbasAccepted, pbasRejected, pbasIgnored, attaches, detaches,
             unknownMobileNodes, registrations, refreshes, expirations, rasSent, deregistrations,
             deregistrationTimeouts, timestampRetries, resyncs135, packetsIgnored, lastRegistrationMs
    }

    /// Missing counters decode as 0, so that a status file written before a counter existed
    /// still reads.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> UInt64 { try c.decodeIfPresent(UInt64.self, forKey: key) ?? 0 }
        pbusSent = try count(.pbusSent)
        retransmissions = try count(.retransmissions)
        pbasAccepted = try count(.pbasAccepted)
        pbasRejected = try count(.pbasRejected)
        pbasIgnored = try count(.pbasIgnored)
        attaches = try count(.attaches)
        detaches = try count(.detaches)
        unknownMobileNodes = try count(.unknownMobileNodes)
        registrations = try count(.registrations)
        refreshes = try count(.refreshes)
        expirations = try count(.expirations)
        rasSent = try count(.rasSent)
        deregistrations = try count(.deregistrations)
        deregistrationTimeouts = try count(.deregistrationTimeouts)
        timestampRetries = try count(.timestampRetries)
        resyncs135 = try count(.resyncs135)
        packetsIgnored = try count(.packetsIgnored)
        lastRegistrationMs = try c.decodeIfPresent(UInt64.self, forKey: .lastRegistrationMs)
    }
}

/// Binding Update List entry states (RFC 5213 §6.1; OPMIP's requested/ack/detach).
public enum MobileAccessGatewayEntryState: String, Sendable, Codable {
    /// A registration PBU is outstanding (or backing off after a rejection); nothing advertised.
    case pending
    /// The LMA accepted; forwarding installed, RAs sent. A refresh may be outstanding.
    case registered
    /// Detached: a de-registration PBU is outstanding; forwarding already removed.
    case deregistering
}

/// One Binding Update List entry, for `mip6 mag status --json`.
public struct MobileAccessGatewayEntryStatus: Codable, Sendable, Equatable {
    public var identifier: String
    /// "02:00:00:00:0a:01"
    public var mac: String
    public var ifindex: UInt32
    public var lma: IPv6Address
    /// What the PBUs ask for: the policy's prefixes, `::/0` for a pool node, then the assignment.
    public var requestedPrefixes: [IPv6Prefix]
    /// What the LMA assigned in the last accepted PBA (empty before one).
    public var homeNetworkPrefixes: [IPv6Prefix]
    public var state: MobileAccessGatewayEntryState
    /// Forwarding state is installed in the data plane.
    public var installed: Bool
    /// Sequence number and Timestamp of the last PBU sent.
    public var sequence: UInt16?
    public var timestamp: String?
    /// Seconds granted by the last accepted PBA still in force; 0 without one.
    public var grantedLifetime: UInt32
    public var secondsToRefresh: UInt32?
    public var secondsToExpiry: UInt32?
    /// Transmissions of the outstanding PBU so far (retries + 1); 0 with none outstanding.
    public var transmissions: Int
    /// Milliseconds until the outstanding PBU is retransmitted (or given up).
    public var millisecondsToRetransmission: UInt64?
    /// Status of the last matched PBA.
    public var lastStatus: UInt8?
}

/// A snapshot for `mip6 mag status`.
public struct MobileAccessGatewayStatus: Codable, Sendable, Equatable {
    public var proxyCareOf: IPv6Address
    public var defaultLMA: IPv6Address
    public var entries: [MobileAccessGatewayEntryStatus]
    public var counters: MobileAccessGatewayCounters

    public init(proxyCareOf: IPv6Address, defaultLMA: IPv6Address, entries: [MobileAccessGatewayEntryStatus],
                counters: MobileAccessGatewayCounters) {
        self.proxyCareOf = proxyCareOf
        self.defaultLMA = defaultLMA
        self.entries = entries
        self.counters = counters
    }
}

/// A copy of the Binding Update List (`MobileAccessGatewayCore.snapshot`), taken on the loop
/// and turned into a `MobileAccessGatewayStatus` on another thread.
public struct MobileAccessGatewaySnapshot: Sendable {
    public let proxyCareOf: IPv6Address
    public let defaultLMA: IPv6Address
    let entries: [MobileAccessGatewayCore.Entry]
    public let counters: MobileAccessGatewayCounters
    /// The core's clock when the copy was taken: the times to expiry are as of then.
    let takenAt: UInt64

    public var count: Int { entries.count }

    /// The entries sorted by MAC, as `mip6 mag status` lists them.
    public func status() -> MobileAccessGatewayStatus {
        MobileAccessGatewayStatus(proxyCareOf: proxyCareOf, defaultLMA: defaultLMA,
                                  entries: entries.sorted { $0.mac.lexicographicallyPrecedes($1.mac) }
                                      .map { MobileAccessGatewayCore.entryStatus($0, now: takenAt) },
                                  counters: counters)
    }
}

/// The MAG's Binding Update List and signalling (RFC 5213 §6.9): one entry per attached mobile
/// node, keyed by its MAC. Per-packet events are counted, not logged.
public final class MobileAccessGatewayCore {
    public private(set) var configuration: MobileAccessGatewayConfiguration
    public private(set) var counters = MobileAccessGatewayCounters()

    private let clock: any MonotonicClock
    private let logger: Logger
    /// Events logged once at their level; later ones at debug (a MAG with thousands of mobile
    /// nodes must not log each attach): `mip6 mag status` counts them.
    private var loggedEvents: Set<String> = []
    /// Every new entry's first sequence number; nil: random per entry (OPMIP seeds each entry
    /// separately too, since a new MAG cannot know the number the last one used, §1.6).
    private let initialSequence: UInt16?

    /// The outstanding PBU of an entry and its retransmission state (RFC 6275 §11.8).
    struct Transaction {
        enum Kind: Equatable {
            case register(handoff: UInt8)
            case deregister
        }
        var kind: Kind
        var lifetimeUnits: UInt16
        /// Wait after the latest transmission before the next one (or before giving up).
        var timeout: UInt64
        /// When the next transmission (or giving up) is due.
        var deadline: UInt64
        var transmissions = 0
        var sentSequence: UInt16?
        var sentTimestamp: ProxyTimestamp?
        var sentAt: UInt64?
        var firstSentAt: UInt64?
        /// The last answer was a rejection: backing off at MAX_BINDACK_TIMEOUT.
        var failed = false
        var consecutiveResyncs = 0
        /// A 156 has been answered with a fresh timestamp already.
        var timestampRetried = false
    }

    /// What the LMA granted (RFC 5213 §6.9.1.2).
    struct Granted {
        var lifetime: UInt32
        var refreshAt: UInt64
        var expiresAt: UInt64
    }

    /// A Binding Update List entry (RFC 5213 §6.1).
    struct Entry {
        var identifier: String
        var mac: [UInt8]
        var ifindex: UInt32
        var lma: IPv6Address
        /// The policy's fixed prefixes, or `::/0` for a pool node (§6.9.1.1).
        var policyPrefixes: [IPv6Prefix]
        /// The LMA's assignment from the last accepted PBA; what later PBUs carry (§6.9.1.3).
        var assignedPrefixes: [IPv6Prefix] = []
        var state: MobileAccessGatewayEntryState = .pending
        var transaction: Transaction?
        var granted: Granted?
        var installed: MobileAccessGatewayForwarding?
        var nextRouterAdvertisement: UInt64?
        var nextSequence: UInt16
        var lastSequence: UInt16?
        /// Each PBU's timestamp is newer than the last (§5.5: the LMA refuses older ones, 157).
        var lastTimestamp: ProxyTimestamp?
        var lastStatus: UInt8?
        /// The LMA may hold a binding for this node: picks the first retransmission timeout and
        /// the Handoff Indicator of a new registration.
        var lmaMayHaveBinding = false
        /// The deadline this entry is filed under in the timer heap.
        var scheduled: UInt64?

        var requestedPrefixes: [IPv6Prefix] { assignedPrefixes.isEmpty ? policyPrefixes : assignedPrefixes }
    }

    private var entries: [[UInt8]: Entry] = [:]
    /// NAI → MACs with an entry (the policy may give a node several interfaces).
    private var byIdentifier: [String: [[UInt8]]] = [:]
    /// Each entry's earliest deadline, keyed by its MAC as an integer (`macKey`); an item counts
    /// only while its entry is still filed under that deadline.
    private var timers = ExpiryHeap<UInt64>()

    private static let allNodes = IPv6Address("ff02::1")!
    private static let allZeroPrefix = IPv6Prefix(address: .unspecified, length: 0)!

    public init(configuration: MobileAccessGatewayConfiguration, clock: any MonotonicClock, logger: Logger,
                initialSequence: UInt16? = nil) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.initialSequence = initialSequence
    }

    /// A reloaded policy store (SIGHUP). Applies to the next attach and PBU; existing entries
    /// keep their LMA and prefixes.
    public func updatePolicy(_ policy: ProxyPolicy) {
        configuration.policy = policy
    }

    public var entryCount: Int { entries.count }
    /// Entries by state (states with none left out), kept as entries change (the daemon publishes it after every drain
    /// of its ring; `status` would build and sort every entry).
    public private(set) var entriesByState: [MobileAccessGatewayEntryState: Int] = [:]

    /// The MACs of the entries on access link `ifindex` (when its carrier goes, they all left).
    public func macs(onAccessLink ifindex: UInt32) -> [[UInt8]] {
        entries.values.filter { $0.ifindex == ifindex && $0.state != .deregistering }.map(\.mac)
    }

    // MARK: Attach and detach

    /// A mobile node showed up on access link `ifindex` (RFC 5213 §6.9.1.1).
    public func attach(mac: [UInt8], ifindex: UInt32, trigger: MobileAccessGatewayTrigger) -> [MobileAccessGatewayAction] {
        let now = clock.nanoseconds()
        guard let node = configuration.policy.node(linkLayerAddress: mac) else {
            // §6.5: only nodes the policy profile identifies and authorises get service.
            counters.unknownMobileNodes += 1
            return [.notAuthorized(mac: mac, ifindex: ifindex)]
        }
        counters.attaches += 1

        if var e = entries[mac] {
            if e.ifindex == ifindex {
                switch e.state {
                case .registered:
                    // Already served here (an RS, a repeated trigger): answer with an RA at once
                    // (§6.9.2) and restart the periodic timer; no new PBU.
                    let ra = routerAdvertisement(&e, now: now)
                    store(e)
                    return [ra]
                case .pending:
                    // The registration (or its back-off) runs on; an RS must not speed it up.
                    return []
                case .deregistering:
                    break
                }
            }
            // Moved to another access link of this MAG, or back before the de-registration
            // finished: the old link's forwarding goes at once (anti-spoofing would drop the
            // node's frames there anyway) and the node registers again, keeping its prefixes.
            var actions: [MobileAccessGatewayAction] = []
            if let old = e.installed {
                actions.append(.remove(old))
                e.installed = nil
            }
            let previous = e.ifindex
            e.ifindex = ifindex
            actions.append(.track(mac: mac, ifindex: ifindex))
            e.state = .pending
            e.nextRouterAdvertisement = nil
            // §8.4: 3 = the same interface handed off to another access link; only if the LMA
            // may know the node, otherwise this still is a new attachment.
            let handoff = e.lmaMayHaveBinding ? MobilityOption.HandoffIndicator.handoffBetweenMAGsSameInterface
                                              : configuration.newAttachmentHandoffIndicator
            start(&e, .register(handoff: handoff), now: now)
            actions.append(transmit(&e, now: now))
            store(e)
            logOnce(.info, "mobile node re-attached, registering",
                        metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(mac))",
                                   "mip6.ifindex": "\(ifindex)", "mip6.previousIfindex": "\(previous)",
                                   "mip6.trigger": "\(trigger.rawValue)"])
            return actions
        }

        // §6.9.1.1: a new node → PBU to its LMA with its policy prefixes, or one all-zero HNP
        // option asking the LMA to assign one.
        let prefixes = node.prefixes.isEmpty ? [Self.allZeroPrefix] : node.prefixes
        var e = Entry(identifier: node.identifier, mac: mac, ifindex: ifindex, lma: node.lma ?? configuration.defaultLMA,
                      policyPrefixes: prefixes, nextSequence: initialSequence ?? UInt16.random(in: 0...UInt16.max))
        start(&e, .register(handoff: configuration.newAttachmentHandoffIndicator), now: now)
        let action = transmit(&e, now: now)
        byIdentifier[e.identifier, default: []].append(mac)
        store(e)
        logOnce(.info, "mobile node attached, registering",
                    metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(mac))",
                               "mip6.ifindex": "\(ifindex)", "mip6.lma": "\(e.lma)", "mip6.trigger": "\(trigger.rawValue)"])
        return [.track(mac: mac, ifindex: ifindex), action]
    }

    /// The node left its access link (RFC 5213 §6.9.1.4, §6.13): forwarding and the MAC's hold go
    /// at once, and a de-registration PBU (Lifetime 0) tells the LMA. The entry is dropped on the PBA or after
    /// `deregistrationAttempts` unanswered PBUs.
    public func detach(mac: [UInt8]) -> [MobileAccessGatewayAction] {
        guard var e = entries[mac], e.state != .deregistering else { return [] }
        counters.detaches += 1
        let now = clock.nanoseconds()
        var actions: [MobileAccessGatewayAction] = []
        if let old = e.installed {
            actions.append(.remove(old))
            e.installed = nil
        }
        e.nextRouterAdvertisement = nil
        e.granted = nil
        // A de-registration must name the binding: without an assignment, a pool node's PBUs
        // only ever asked for `::/0`, which identifies nothing; the LMA's entry (if any) then
        // simply expires.
        guard e.lastSequence != nil, !e.requestedPrefixes.contains(Self.allZeroPrefix) else {
            actions.append(drop(e))
            logOnce(.info, "mobile node detached before registering",
                        metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(mac))"])
            return actions
        }
        e.state = .deregistering
        start(&e, .deregister, now: now)
        actions.append(transmit(&e, now: now))
        // The node has left the link: its next frame there (it came straight back before the
        // de-registration was answered) is an attach trigger again.
        actions.append(.untrack(mac: mac))
        store(e)
        logOnce(.info, "mobile node detached, de-registering",
                    metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(mac))"])
        return actions
    }

    // MARK: Packets

    /// A packet the data plane punted from the core side, starting at its IPv6 header. Proxy
    /// Binding Acknowledgements for an outstanding PBU are acted on; everything else is
    /// counted and ignored.
    public func handlePacket(_ ipv6Packet: [UInt8]) -> [MobileAccessGatewayAction] {
        guard let packet = try? IPv6PacketParser.parseMobility(ipv6Packet) else {
            counters.packetsIgnored += 1
            return []
        }
        let isBA = MobilityHeaderCodec.peekType(packet.mh) == MHType.bindingAcknowledgement.rawValue
        // RFC 5213 §6.9.1.2: a PBA comes straight to the Proxy-CoA, with no Type 2 Routing
        // Header and no Home Address option (§5.3.6); the checksum covers those addresses.
        guard packet.destination == configuration.proxyCareOf, packet.routingType2Address == nil,
              packet.homeAddressOption == nil,
              case .bindingAcknowledgement(let ba)? = try? MobilityHeaderCodec.decode(
                  packet.mh, source: packet.source, destination: packet.destination)
        else {
            if isBA { counters.pbasIgnored += 1 } else { counters.packetsIgnored += 1 }
            return []
        }
        // §8.2: a PBA has the P flag; a plain BA is not for us.
        guard ba.isProxy, var e = matchingEntry(ba, from: packet.source), var t = e.transaction,
              let sent = t.sentSequence, let sentAt = t.sentAt
        else {
            counters.pbasIgnored += 1
            return []
        }
        let now = clock.nanoseconds()

        if ba.status == .sequenceOutOfWindow {
            // RFC 6275 §11.7.1 (an LMA using sequence numbers, RFC 5213 §5.5): the PBA carries
            // the last number the LMA accepted; continue from the next one. It must explain the
            // outstanding PBU: ours must not be newer than the LMA's (a stale 135 otherwise).
            guard !SequenceNumber.isNewer(sent, than: ba.sequence) else {
                counters.pbasIgnored += 1
                return []
            }
            counters.pbasRejected += 1
            e.lastStatus = ba.status.rawValue
            t.consecutiveResyncs += 1
            e.transaction = t
            guard t.consecutiveResyncs <= configuration.maxConsecutiveResyncs else {
                return fail(&e, status: ba.status, now: now)
            }
            counters.resyncs135 += 1
            e.nextSequence = ba.sequence &+ 1
            let action = transmit(&e, now: now)
            store(e)
            return [action]
        }

        // RFC 6275 §11.7.3: the sequence number matches the outstanding PBU; RFC 5213 §5.3.6:
        // a PBA echoes the PBU's Timestamp, except with 156, where it carries the LMA's clock.
        let timestamps = ba.proxyOptions.timestamps
        guard ba.sequence == sent,
              ba.status == .timestampMismatch || timestamps.isEmpty || t.sentTimestamp.map({ timestamps == [$0] }) == true
        else {
            counters.pbasIgnored += 1
            return []
        }
        e.lastStatus = ba.status.rawValue

        if case .deregister = t.kind {
            // §6.9.1.4: whatever the answer, there is nothing more to do for this node.
            if ba.status.isAccepted { counters.pbasAccepted += 1 } else { counters.pbasRejected += 1 }
            counters.deregistrations += 1
            logger.debug("de-registration acknowledged", metadata: ["mip6.mn": "\(e.identifier)",
                                                                   "mip6.status": "\(ba.status.rawValue)"])
            return [drop(e)]
        }

        guard ba.status.isAccepted else {
            counters.pbasRejected += 1
            if ba.status == .timestampMismatch, !timestamps.isEmpty, !t.timestampRetried {
                // §5.5: our timestamp was outside the LMA's TimestampValidityWindow (a PBU held
                // up in a queue, or clocks apart). One immediate retry with a fresh timestamp
                // settles the first; the second 156 is a failure (check NTP).
                counters.timestampRetries += 1
                t.timestampRetried = true
                e.transaction = t
                let action = transmit(&e, now: now)
                store(e)
                return [action]
            }
            return fail(&e, status: ba.status, now: now)
        }

        // §6.9.1.2: accepted. Never count on more than was asked for; the lifetime runs from
        // when the acknowledged PBU left.
        let granted = min(ba.lifetimeSeconds, UInt32(t.lifetimeUnits) * 4)
        // §5.3.6: the PBA lists the prefixes the LMA assigned; `::/0` or none means nothing to
        // advertise.
        let assigned = ba.proxyOptions.homeNetworkPrefixes.filter { $0.length > 0 && !$0.address.isUnspecified }
        guard granted > 0, !assigned.isEmpty else {
            counters.pbasIgnored += 1
            logOnce(.warning, "LMA accepted a registration with no lifetime or no home network prefix",
                           metadata: ["mip6.mn": "\(e.identifier)", "mip6.lifetime": "\(granted)"])
            return []
        }
        counters.pbasAccepted += 1
        let lifetimeNs = UInt64(granted) * 1_000_000_000
        let fraction = min(max(configuration.refreshFraction, 0.1), 0.95)
        e.granted = Granted(lifetime: granted, refreshAt: sentAt + UInt64(Double(lifetimeNs) * fraction),
                            expiresAt: sentAt + lifetimeNs)
        e.assignedPrefixes = assigned
        e.lmaMayHaveBinding = true
        e.transaction = nil
        let wasRegistered = e.state == .registered
        e.state = .registered

        var actions: [MobileAccessGatewayAction] = []
        let forwarding = MobileAccessGatewayForwarding(mac: e.mac, ifindex: e.ifindex, identifier: e.identifier,
                                                       homeNetworkPrefixes: assigned, lma: e.lma,
                                                       proxyCareOf: configuration.proxyCareOf)
        // Forwarding first, then the RA: the node may send as soon as it has the prefix
        // (§6.9.1.2, design doc §1.5 item 3). Every acceptance moves the data plane's expiry.
        actions.append(.install(forwarding, expiresAt: sentAt + lifetimeNs))
        if e.installed != forwarding {
            e.installed = forwarding
            actions.append(routerAdvertisement(&e, now: now))
        }
        if wasRegistered {
            counters.refreshes += 1
        } else {
            counters.registrations += 1
            let elapsed = now - min(now, t.firstSentAt ?? sentAt)
            counters.lastRegistrationMs = elapsed / 1_000_000
            logOnce(.info, "mobile node registered",
                        metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(e.mac))",
                                   "mip6.hnp": "\(assigned.map(\.description).joined(separator: ","))",
                                   "mip6.lifetime": "\(granted)", "mip6.ms": "\(elapsed / 1_000_000)"])
        }
        store(e)
        return actions
    }

    /// The entry an answer is for: by the MN-Identifier when the PBA carries one (§5.3.6 copies
    /// it from the PBU), else by the outstanding sequence number; narrowed by the MN Link-layer
    /// Identifier when present. It must come from that entry's LMA and be unambiguous.
    private func matchingEntry(_ ba: BindingAcknowledgement, from source: IPv6Address) -> Entry? {
        let options = ba.proxyOptions
        var candidates: [Entry]
        if !options.mobileNodeIdentifiers.isEmpty {
            guard let nai = options.networkAccessIdentifier else { return nil }
            candidates = (byIdentifier[nai] ?? []).compactMap { entries[$0] }
        } else {
            // No MN-ID: only a number that is outstanding can tell (a 135 cannot echo ours).
            guard ba.status != .sequenceOutOfWindow else { return nil }
            candidates = entries.values.filter { $0.transaction?.sentSequence == ba.sequence }
        }
        if let lli = options.linkLayerIdentifiers.first {
            candidates.removeAll { $0.mac != lli }
        }
        candidates.removeAll { $0.lma != source || $0.transaction?.sentSequence == nil }
        if candidates.count > 1 && ba.status != .sequenceOutOfWindow {
            candidates.removeAll { $0.transaction?.sentSequence != ba.sequence }
        }
        return candidates.count == 1 ? candidates[0] : nil
    }

    /// RFC 5213 §6.9.1.2 / RFC 6275 §11.7.3: a rejection. No prefix is advertised, nothing is
    /// installed; retry slowly (MAX_BINDACK_TIMEOUT), with a new sequence number and timestamp.
    /// A binding already granted stays in force until it expires.
    private func fail(_ e: inout Entry, status: BAStatus, now: UInt64) -> [MobileAccessGatewayAction] {
        if var t = e.transaction {
            t.failed = true
            t.consecutiveResyncs = 0
            t.timeout = configuration.maxBindackTimeout
            t.deadline = now + configuration.maxBindackTimeout
            e.transaction = t
        }
        store(e)
        logOnce(.warning, "LMA rejected the proxy binding update",
                       metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(e.mac))",
                                  "mip6.status": "\(status.rawValue)"])
        return [.registrationFailed(mac: e.mac, status: status)]
    }

    private func logOnce(_ level: Logger.Level, _ event: String, metadata: Logger.Metadata) {
        if loggedEvents.insert(event).inserted {
            logger.log(level: level, "\(event) (first of its kind; further ones are logged at debug and counted)", metadata: metadata)
        } else {
            logger.debug("\(event)", metadata: metadata)
        }
    }

    // MARK: Timers

    /// A 6-byte MAC as an integer (the timer heap's key) and back.
    static func macKey(_ mac: [UInt8]) -> UInt64 { mac.reduce(0) { $0 << 8 | UInt64($1) } }
    static func mac(_ key: UInt64) -> [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: key >> UInt64(8 * (5 - $0))) } }

    /// When `tick()` should next run: a retransmission, refresh, expiry or periodic RA.
    public var nextDeadline: UInt64? {
        while let top = timers.top {
            if let e = entries[Self.mac(top.key)], e.scheduled == top.expiresAt { return top.expiresAt }
            timers.pop() // superseded or dropped
        }
        return nil
    }

    /// Runs everything due: retransmissions (RFC 6275 §11.8, RFC 5213 §6.9.4), refreshes at
    /// `refreshFraction` of the granted lifetime (§6.9.1.3), expiries, periodic RAs.
    public func tick() -> [MobileAccessGatewayAction] {
        let now = clock.nanoseconds()
        var actions: [MobileAccessGatewayAction] = []
        while let deadline = nextDeadline, deadline <= now, let top = timers.pop(), var e = entries[Self.mac(top.key)] {
            e.scheduled = nil
            actions += run(&e, now: now)
        }
        return actions
    }

    /// One entry's due work; leaves every deadline of the entry in the future (or drops it).
    private func run(_ e: inout Entry, now: UInt64) -> [MobileAccessGatewayAction] {
        var actions: [MobileAccessGatewayAction] = []
        if let g = e.granted, now >= g.expiresAt {
            // The LMA has dropped the binding by now: stop forwarding and advertising. A
            // registration keeps going (the node is still attached as far as we know).
            e.granted = nil
            counters.expirations += 1
            if let old = e.installed {
                actions.append(.remove(old))
                e.installed = nil
            }
            e.nextRouterAdvertisement = nil
            if e.state == .registered { e.state = .pending }
            logOnce(.warning, "proxy binding expired before a refresh was accepted",
                           metadata: ["mip6.mn": "\(e.identifier)", "mip6.mac": "\(formatMAC(e.mac))"])
            if e.transaction == nil {
                start(&e, .register(handoff: MobilityOption.HandoffIndicator.notChanged), now: now)
                actions.append(transmit(&e, now: now))
            }
        }
        if e.state == .registered, e.transaction == nil, let g = e.granted, now >= g.refreshAt {
            // §6.9.1.3: extend the lifetime before it runs out, with the assigned prefixes and
            // Handoff Indicator 5 (handoff state not changed).
            start(&e, .register(handoff: MobilityOption.HandoffIndicator.notChanged), now: now)
            actions.append(transmit(&e, now: now))
        }
        if var t = e.transaction, now >= t.deadline {
            if case .deregister = t.kind, t.transmissions >= configuration.deregistrationAttempts {
                counters.deregistrationTimeouts += 1
                actions.append(drop(e))
                logger.debug("de-registration unanswered, entry dropped", metadata: ["mip6.mn": "\(e.identifier)"])
                return actions
            }
            // RFC 6275 §11.8: the timeout doubles with each retransmission up to
            // MAX_BINDACK_TIMEOUT, then stays there; a new sequence number and (RFC 5213 §5.5,
            // §6.9.4) a fresh timestamp each time, else the LMA would answer 156.
            if !t.failed { t.timeout = min(t.timeout * 2, configuration.maxBindackTimeout) }
            e.transaction = t
            counters.retransmissions += 1
            actions.append(transmit(&e, now: now))
        }
        if e.installed != nil, let at = e.nextRouterAdvertisement, now >= at {
            actions.append(routerAdvertisement(&e, now: now))
        }
        store(e)
        return actions
    }

    // MARK: Status

    public var status: MobileAccessGatewayStatus { snapshot.status() }

    /// The Binding Update List as it is now, for a list built on another thread: the loop
    /// copies the entries only; sorting and formatting (`status()`) happen off it.
    public var snapshot: MobileAccessGatewaySnapshot {
        MobileAccessGatewaySnapshot(proxyCareOf: configuration.proxyCareOf, defaultLMA: configuration.defaultLMA,
                                    entries: Array(entries.values), counters: counters, takenAt: clock.nanoseconds())
    }

    /// The Binding Update List entry for `mac`, if any.
    public func entry(mac: [UInt8]) -> MobileAccessGatewayEntryStatus? {
        entries[mac].map { Self.entryStatus($0, now: clock.nanoseconds()) }
    }

    static func entryStatus(_ e: Entry, now: UInt64) -> MobileAccessGatewayEntryStatus {
        func seconds(until t: UInt64) -> UInt32 { t > now ? UInt32(clamping: (t - now) / 1_000_000_000) : 0 }
        let t = e.transaction
        return MobileAccessGatewayEntryStatus(
            identifier: e.identifier, mac: formatMAC(e.mac), ifindex: e.ifindex, lma: e.lma,
            requestedPrefixes: e.requestedPrefixes, homeNetworkPrefixes: e.assignedPrefixes, state: e.state,
            installed: e.installed != nil, sequence: e.lastSequence, timestamp: e.lastTimestamp?.description,
            grantedLifetime: e.granted?.lifetime ?? 0,
            secondsToRefresh: e.state == .registered ? e.granted.map { seconds(until: $0.refreshAt) } : nil,
            secondsToExpiry: e.granted.map { seconds(until: $0.expiresAt) },
            transmissions: t?.transmissions ?? 0,
            millisecondsToRetransmission: t.map { $0.deadline > now ? ($0.deadline - now) / 1_000_000 : 0 },
            lastStatus: e.lastStatus)
    }

    // MARK: Transmission

    /// A new outstanding PBU, replacing any other. RFC 6275 §11.8 via RFC 5213 §6.9.4:
    /// InitialBindackTimeoutFirstReg while the LMA holds no binding, INITIAL_BINDACK_TIMEOUT
    /// otherwise.
    private func start(_ e: inout Entry, _ kind: Transaction.Kind, now: UInt64) {
        let timeout = e.lmaMayHaveBinding ? configuration.initialBindackTimeout : configuration.initialBindackTimeoutFirstReg
        let lifetime: UInt16 = kind == .deregister ? 0 : configuration.requestedLifetimeUnits
        e.transaction = Transaction(kind: kind, lifetimeUnits: lifetime, timeout: timeout, deadline: now)
    }

    /// Builds and records one PBU (RFC 5213 §6.9.1.5): A and P set, no Home Address option,
    /// a new sequence number and a fresh Timestamp on every transmission, options MN-ID (NAI),
    /// one HNP per prefix, Handoff Indicator, Access Technology Type, MN Link-layer Identifier,
    /// Timestamp. Sets the retransmission deadline.
    private func transmit(_ e: inout Entry, now: UInt64) -> MobileAccessGatewayAction {
        guard var t = e.transaction else { preconditionFailure("transmit without a transaction") }
        let sequence = e.nextSequence
        e.nextSequence &+= 1
        // §5.5: the LMA accepts only a timestamp newer than the last it accepted for the
        // binding; keep ours strictly increasing even if the wall clock stands still or steps back.
        var timestamp = ProxyTimestamp(ntp: configuration.wallClock.ntpTimestamp())
        if let last = e.lastTimestamp, timestamp <= last { timestamp = ProxyTimestamp(rawValue: last.rawValue &+ 1) }
        e.lastTimestamp = timestamp

        let handoff: UInt8
        switch t.kind {
        case .register(let value): handoff = value
        // The MAG cannot know where a node that left went: "handoff state unknown" (§8.4).
        case .deregister: handoff = MobilityOption.HandoffIndicator.unknown
        }
        var options: [MobilityOption] = [
            .mobileNodeIdentifier(subtype: MobilityOption.IdentifierSubtype.nai, identifier: Array(e.identifier.utf8)),
        ]
        options += e.requestedPrefixes.map { .homeNetworkPrefix($0) }
        options += [.handoffIndicator(handoff),
                    .accessTechnologyType(configuration.accessTechnologyType),
                    .mobileNodeLinkLayerIdentifier(e.mac),
                    .timestamp(timestamp)]
        let pbu = BindingUpdate(sequence: sequence, flags: [.ack, .proxy], lifetime: t.lifetimeUnits, options: options)
        let packet = PacketBuilder.proxyBindingUpdate(pbu, from: configuration.proxyCareOf, to: e.lma,
                                                      hopLimit: configuration.hopLimit)
        t.transmissions += 1
        t.sentSequence = sequence
        t.sentTimestamp = timestamp
        t.sentAt = now
        if t.firstSentAt == nil { t.firstSentAt = now }
        t.deadline = now + t.timeout
        e.transaction = t
        e.lastSequence = sequence
        counters.pbusSent += 1
        let what = t.lifetimeUnits == 0 ? "de-registration PBU" : "PBU"
        return .send(packet: packet,
                     description: "\(what) seq \(sequence) HI \(handoff) for \(e.identifier) (\(formatMAC(e.mac))) to \(e.lma)")
    }

    /// A unicast RA with the node's assigned prefixes; restarts the periodic timer.
    private func routerAdvertisement(_ e: inout Entry, now: UInt64) -> MobileAccessGatewayAction {
        let c = configuration
        let packet = PacketBuilder.routerAdvertisement(
            source: c.linkLocalAddress, destination: Self.allNodes, curHopLimit: c.advertisedHopLimit,
            routerLifetime: c.routerLifetime, prefixes: e.assignedPrefixes, validLifetime: c.prefixValidLifetime,
            preferredLifetime: c.prefixPreferredLifetime, mtu: c.advertisedMTU, sourceLinkLayer: c.linkLayerAddress)
        e.nextRouterAdvertisement = c.routerAdvertisementPeriod > 0 ? now + c.routerAdvertisementPeriod : nil
        counters.rasSent += 1
        return .sendRouterAdvertisement(packet: packet, mac: e.mac, ifindex: e.ifindex)
    }

    // MARK: Entry bookkeeping

    /// Writes the entry back and files its earliest deadline in the timer heap.
    private func store(_ entry: Entry) {
        var e = entry
        var deadline: UInt64?
        func consider(_ t: UInt64?) { if let t { deadline = min(deadline ?? t, t) } }
        consider(e.transaction?.deadline)
        consider(e.granted?.expiresAt)
        if e.state == .registered, e.transaction == nil { consider(e.granted?.refreshAt) }
        if e.installed != nil { consider(e.nextRouterAdvertisement) }
        if let deadline, deadline != e.scheduled {
            timers.push(ExpiryHeap.Entry(expiresAt: deadline, key: Self.macKey(e.mac)))
        }
        e.scheduled = deadline
        if let old = entries.updateValue(e, forKey: e.mac) { count(old.state, -1) }
        count(e.state, 1)
        // Superseded heap items are skipped lazily; rebuild when they pile up.
        if timers.count > 2 * entries.count + 1024 {
            timers = ExpiryHeap(entries.values.compactMap { v in v.scheduled.map { ExpiryHeap.Entry(expiresAt: $0, key: Self.macKey(v.mac)) } })
        }
    }

    /// `entriesByState`, with no key for a state no entry is in.
    private func count(_ state: MobileAccessGatewayEntryState, _ delta: Int) {
        let n = (entriesByState[state] ?? 0) + delta
        entriesByState[state] = n == 0 ? nil : n
    }

    private func drop(_ e: Entry) -> MobileAccessGatewayAction {
        if let old = entries.removeValue(forKey: e.mac) { count(old.state, -1) }
        byIdentifier[e.identifier]?.removeAll { $0 == e.mac }
        if byIdentifier[e.identifier]?.isEmpty == true { byIdentifier[e.identifier] = nil }
        return .untrack(mac: e.mac)
    }
}
