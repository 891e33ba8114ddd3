import Logging

/// The mobile node's MN-HA credentials (RFC 4285 §5.1): its NAI, sent in the MN-ID option
/// (RFC 4283 §3.1), the Mobility SPI and key shared with the home agent, and the clock its
/// Replay Protection timestamps come from (RFC 4285 §6).
public struct MobileNodeCredentials: Sendable {
    public var association: MNHASecurityAssociation
    public var clock: any WallClock

    public init(nai: String, spi: UInt32, key: MobilityKey, clock: any WallClock = SystemWallClock()) {
        self.association = MNHASecurityAssociation(nai: nai, spi: spi, key: key)
        self.clock = clock
    }
}

/// Mobile node settings (RFC 6275 §11, timers of §12 and §13).
public struct MobileNodeConfiguration: Sendable {
    /// The mobile node's home address.
    public var homeAddress: IPv6Address
    /// The home agent that holds the home registration.
    public var homeAgent: IPv6Address
    /// The home subnet prefix: a care-of address inside it means the node is at home (§11.5.5).
    public var homePrefix: IPv6Prefix
    /// Lifetime asked for in each Binding Update, in seconds. Sent in 4-second units, rounded
    /// down, at least one unit (§6.1.7).
    public var requestedLifetime: UInt32
    /// InitialBindackTimeoutFirstReg (§13, default 1.5 s), in nanoseconds: the first
    /// retransmission timeout when the home agent holds no binding for us (§11.8).
    public var initialBindackTimeoutFirstReg: UInt64
    /// INITIAL_BINDACK_TIMEOUT (§12, 1 s), in nanoseconds: the first retransmission timeout
    /// otherwise (§11.8).
    public var initialBindackTimeout: UInt64
    /// MAX_BINDACK_TIMEOUT (§12, 32 s), in nanoseconds: the retransmission timeout stops
    /// doubling here (§11.8); also the back-off after a rejection.
    public var maxBindackTimeout: UInt64
    /// Refresh when this fraction of the granted lifetime has passed (or earlier when the
    /// Binding Acknowledgement carries a Binding Refresh Advice option, §6.2.4). Clamped to
    /// 0.1 ... 0.95 so that a refresh always has time before the binding expires.
    public var refreshFraction: Double
    /// Status 135 answers in a row followed by a re-synchronised Binding Update (§11.7.1);
    /// the next one counts as a failure and backs off. With credentials the same bound applies,
    /// separately, to status 144 clock re-synchronisations (RFC 4285 §6).
    public var maxConsecutiveResyncs: Int
    /// Hop limit of the Binding Updates.
    public var hopLimit: UInt8
    /// MN-HA authentication (RFC 4285). With credentials every Binding Update carries the MN-ID,
    /// Replay Protection and MN-HA authentication options, and only Binding Acknowledgements
    /// authenticated with the same key are believed. Nil: none of that (IPsec or trust).
    public var credentials: MobileNodeCredentials?

    public init(homeAddress: IPv6Address, homeAgent: IPv6Address, homePrefix: IPv6Prefix,
                requestedLifetime: UInt32 = 600,
                initialBindackTimeoutFirstReg: UInt64 = 1_500_000_000,
                initialBindackTimeout: UInt64 = 1_000_000_000,
                maxBindackTimeout: UInt64 = 32_000_000_000,
                refreshFraction: Double = 0.75,
                maxConsecutiveResyncs: Int = 3,
                hopLimit: UInt8 = 64,
                credentials: MobileNodeCredentials? = nil) {
        self.homeAddress = homeAddress
        self.homeAgent = homeAgent
        self.homePrefix = homePrefix
        self.requestedLifetime = requestedLifetime
        self.initialBindackTimeoutFirstReg = initialBindackTimeoutFirstReg
        self.initialBindackTimeout = initialBindackTimeout
        self.maxBindackTimeout = maxBindackTimeout
        self.refreshFraction = refreshFraction
        self.maxConsecutiveResyncs = maxConsecutiveResyncs
        self.hopLimit = hopLimit
        self.credentials = credentials
    }

    /// `requestedLifetime` in the 4-second units of the Binding Update's Lifetime field.
    public var requestedLifetimeUnits: UInt16 {
        max(1, UInt16(clamping: requestedLifetime / 4))
    }

    /// True when `address` means "at home": the home address itself or any address on the
    /// home subnet (§11.5.5).
    public func isAtHome(_ address: IPv6Address) -> Bool {
        address == homeAddress || homePrefix.contains(address)
    }
}

/// What the daemon must do after a call into `MobileNodeCore`, in order.
public enum MobileNodeAction: Equatable, Sendable {
    /// Send this complete IPv6 packet (a Binding Update to the home agent).
    case send(packet: [UInt8], description: String)
    /// Program the data plane: reverse-tunnel the home address's traffic from this care-of
    /// address to the home agent, and decapsulate what the home agent tunnels to it. Replaces
    /// any tunnel from another care-of address.
    case tunnelUp(careOf: IPv6Address)
    /// Remove the tunnel (at home, no usable interface, binding lost, shutdown). Idempotent.
    case tunnelDown
    /// The home agent accepted a registration for this care-of address, for `lifetime` seconds.
    case registered(careOf: IPv6Address, lifetime: UInt32)
    /// The home agent rejected the Binding Update; the node retries after MAX_BINDACK_TIMEOUT.
    case registrationFailed(status: BAStatus)
}

public struct MobileNodeCounters: Codable, Sendable, Equatable {
    /// Binding Updates sent, retransmissions included.
    public var busSent: UInt64 = 0
    /// Binding Updates sent because the retransmission timer ran out (§11.8).
    public var retransmissions: UInt64 = 0
    /// Binding Acknowledgements that passed validation (§11.7.3), any status.
    public var acksAccepted: UInt64 = 0
    /// Binding Acknowledgements ignored: not from the home agent, not for the home address,
    /// bad checksum, or no matching outstanding Binding Update.
    public var acksIgnored: UInt64 = 0
    /// Status 135 answers followed by a Binding Update with the home agent's sequence + 1.
    public var resyncs135: UInt64 = 0
    /// Accepted registrations of a new care-of address (first registration or a move).
    public var registrations: UInt64 = 0
    /// Accepted re-registrations of the same care-of address.
    public var refreshes: UInt64 = 0
    /// Accepted de-registrations (status < 128, or 133: the home agent had no binding).
    public var deregistrations: UInt64 = 0
    /// Rejections reported with `.registrationFailed`.
    public var rejections: UInt64 = 0
    /// Bindings whose granted lifetime ran out before a refresh was accepted.
    public var expirations: UInt64 = 0
    /// Valid Binding Refresh Requests from the home agent.
    public var refreshRequests: UInt64 = 0
    /// Other packets handed in that were not for us or not understood (no BA).
    public var packetsIgnored: UInt64 = 0
    /// First Binding Update of the last accepted registration or refresh → its acceptance, ms.
    public var lastRegistrationMs: UInt64?
    /// Binding Acknowledgements ignored because their MN-HA authentication failed (RFC 4285;
    /// also counted in `acksIgnored`).
    public var acksUnauthenticated: UInt64 = 0
    /// Status 144 answers followed by a Binding Update with the clock re-synchronised to the
    /// home agent's (RFC 4285 §6).
    public var resyncs144: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case busSent, retransmissions, acksAccepted, acksIgnored, resyncs135, registrations, refreshes,
             deregistrations, rejections, expirations, refreshRequests, packetsIgnored, lastRegistrationMs,
             acksUnauthenticated, resyncs144
    }

    /// Missing counters decode as 0, so that a status file written before a counter existed
    /// still reads.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> UInt64 { try c.decodeIfPresent(UInt64.self, forKey: key) ?? 0 }
        busSent = try count(.busSent)
        retransmissions = try count(.retransmissions)
        acksAccepted = try count(.acksAccepted)
        acksIgnored = try count(.acksIgnored)
        resyncs135 = try count(.resyncs135)
        registrations = try count(.registrations)
        refreshes = try count(.refreshes)
        deregistrations = try count(.deregistrations)
        rejections = try count(.rejections)
        expirations = try count(.expirations)
        refreshRequests = try count(.refreshRequests)
        packetsIgnored = try count(.packetsIgnored)
        lastRegistrationMs = try c.decodeIfPresent(UInt64.self, forKey: .lastRegistrationMs)
        acksUnauthenticated = try count(.acksUnauthenticated)
        resyncs144 = try count(.resyncs144)
    }
}

/// A snapshot for `mip6 status`.
public struct MobileNodeStatus: Codable, Sendable, Equatable {
    public var homeAddress: IPv6Address
    public var homeAgent: IPv6Address
    /// The care-of address movement detection chose (nil at home or with no usable interface).
    public var careOfAddress: IPv6Address?
    /// The care-of address the data plane tunnels from (nil: no tunnel).
    public var tunnelCareOf: IPv6Address?
    /// "home", "registering", "registered", "deregistering", "no-care-of-address" or "failed".
    public var state: String
    /// Seconds granted by the last accepted registration still in force; 0 without one.
    public var grantedLifetime: UInt32
    public var secondsToRefresh: UInt32?
    public var secondsToExpiry: UInt32?
    /// Sequence number of the last Binding Update sent (nil before the first).
    public var sequence: UInt16?
    /// Status of the last valid Binding Acknowledgement.
    public var lastStatus: UInt8?
    public var counters: MobileNodeCounters

    public init(homeAddress: IPv6Address, homeAgent: IPv6Address, careOfAddress: IPv6Address?,
                tunnelCareOf: IPv6Address?, state: String, grantedLifetime: UInt32, secondsToRefresh: UInt32?,
                secondsToExpiry: UInt32?, sequence: UInt16?, lastStatus: UInt8?, counters: MobileNodeCounters) {
        self.homeAddress = homeAddress
        self.homeAgent = homeAgent
        self.careOfAddress = careOfAddress
        self.tunnelCareOf = tunnelCareOf
        self.state = state
        self.grantedLifetime = grantedLifetime
        self.secondsToRefresh = secondsToRefresh
        self.secondsToExpiry = secondsToExpiry
        self.sequence = sequence
        self.lastStatus = lastStatus
        self.counters = counters
    }
}

/// The mobile node's home registration (RFC 6275 §11.5.5, §11.7.1, §11.7.3, §11.8), without
/// I/O: the daemon's event loop (one thread) reports care-of address changes, hands in the
/// packets the data plane intercepted and calls `tick()` at `nextDeadline`; it carries out the
/// returned actions in order.
///
/// One Binding Update List entry is kept, for the home agent (§11.1): the outstanding Binding
/// Update with its retransmission state, and the binding the home agent granted.
public final class MobileNodeCore {
    public let configuration: MobileNodeConfiguration
    public private(set) var counters = MobileNodeCounters()

    /// MAX_UPDATE_RATE (§12): at most this many Binding Updates a second (§11.8).
    public static let maxUpdateRate = 3

    private let clock: any MonotonicClock
    private let logger: Logger

    enum Location: Equatable {
        /// Movement detection has not reported yet.
        case unknown
        /// No usable interface (or shut down).
        case none
        case home
        case away(IPv6Address)
    }

    /// The outstanding Binding Update and its retransmission state (§11.8).
    struct Transaction {
        enum Kind: Equatable {
            case register(careOf: IPv6Address)
            case deregister
        }
        var kind: Kind
        /// IPv6 source: the care-of address, or the home address for a de-registration from home.
        var source: IPv6Address
        var lifetimeUnits: UInt16
        /// Wait after the next transmission before retransmitting.
        var timeout: UInt64
        /// With `sendDue`: the earliest time the owed transmission may go out (rate limit).
        /// Without: when the retransmission timer runs out.
        var deadline: UInt64
        var sendDue: Bool
        /// The owed transmission is a timer-driven retransmission.
        var dueIsRetransmission = false
        /// Retransmit when no answer comes (false for the single attempt at shutdown).
        var retransmits = true
        var sentSequence: UInt16?
        var sentAt: UInt64?
        var firstSentAt: UInt64?
        var consecutiveResyncs = 0
        /// Status 144 answers in a row (RFC 4285 §6 clock re-synchronisation).
        var consecutiveClockResyncs = 0
        /// Replay Protection timestamp of the last transmission (with credentials).
        var sentTimestamp: UInt64?
        /// The last answer was a rejection: backing off.
        var failed = false
    }

    /// What the home agent granted (§11.7.3).
    struct GrantedBinding {
        var careOf: IPv6Address
        var lifetime: UInt32
        var refreshAt: UInt64
        var expiresAt: UInt64
    }

    private var location: Location = .unknown
    private var pending: Transaction?
    private var binding: GrantedBinding?
    private var tunnelCareOf: IPv6Address?
    /// Whether the home agent may hold a binding for us, which picks the first retransmission
    /// timeout (§11.8). False until a registration is accepted; false again after an accepted
    /// de-registration or an expiry.
    private var homeAgentHasBinding = false
    private var nextSequence: UInt16
    private var lastSentSequence: UInt16?
    private var lastStatus: UInt8?
    /// Send times of the last MAX_UPDATE_RATE Binding Updates.
    private var recentSends: [UInt64] = []
    /// Home agent's clock minus ours, 32.32 seconds, learnt from status 144 (RFC 4285 §6).
    private var clockOffset: Int64 = 0
    /// Last Replay Protection timestamp sent: each BU's is newer (the home agent drops the rest).
    private var lastTimestamp: UInt64?
    private var isShutDown = false

    public init(configuration: MobileNodeConfiguration, clock: any MonotonicClock, logger: Logger,
                initialSequence: UInt16 = UInt16.random(in: 0...UInt16.max)) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.nextSequence = initialSequence
    }

    // MARK: Movement

    /// The care-of address movement detection chose; nil when no interface is usable.
    public func careOfAddressChanged(_ coa: IPv6Address?) -> [MobileNodeAction] {
        guard !isShutDown else { return [] }
        let newLocation: Location
        if let coa {
            newLocation = configuration.isAtHome(coa) ? .home : .away(coa)
        } else {
            newLocation = .none
        }
        // The same place again (any address on the home link counts as the same home): the
        // running registration, refresh or back-off goes on undisturbed.
        guard newLocation != location else { return [] }
        let previous = location
        location = newLocation
        let now = clock.nanoseconds()

        switch newLocation {
        case .unknown:
            return []

        case .none:
            // Nothing to send from. Stop retransmitting; the binding at the home agent, the
            // sequence numbers and the lifetime bookkeeping stay, so the next care-of address
            // re-registers at once.
            pending = nil
            tunnelCareOf = nil
            logger.info("no usable care-of address, tunnel down",
                        metadata: ["mip6.hoa": "\(configuration.homeAddress)"])
            return [.tunnelDown]

        case .home:
            // RFC 6275 §11.5.5: back on the home link, tell the home agent to stop intercepting
            // with a Binding Update from the home address (no Home Address option: the source is
            // the home address), A and H set, Lifetime 0. Sent whatever we believe about the
            // home agent's state, since a binding may survive from a BA we never saw or from an
            // earlier run; the home agent answers 133 when it has none (§10.3.2).
            // The tunnel goes first so the data plane stops reverse-tunneling the home
            // address, this Binding Update included.
            binding = nil
            tunnelCareOf = nil
            pending = newTransaction(.deregister, source: configuration.homeAddress, lifetimeUnits: 0, now: now)
            var actions: [MobileNodeAction] = [.tunnelDown]
            actions += pump(now: now)
            logger.info("returned home, de-registering",
                        metadata: ["mip6.coa": "\(coa ?? configuration.homeAddress)",
                                   "mip6.seq": "\(pending?.sentSequence.map { "\($0)" } ?? "deferred")"])
            return actions

        case .away(let careOf):
            // RFC 6275 §11.7.1: a new primary care-of address → a Binding Update to the home agent
            // at once, with a new sequence number. Make-before-break: the tunnel keeps the old
            // care-of address until this one is acknowledged.
            pending = newTransaction(.register(careOf: careOf), source: careOf,
                                     lifetimeUnits: configuration.requestedLifetimeUnits, now: now)
            let actions = pump(now: now)
            let event: String
            switch previous {
            case .away: event = "moved to a new care-of address, registering"
            case .home: event = "left home, registering"
            default: event = "care-of address acquired, registering"
            }
            logger.info("\(event)",
                        metadata: ["mip6.coa": "\(careOf)",
                                   "mip6.seq": "\(pending?.sentSequence.map { "\($0)" } ?? "deferred")"])
            return actions
        }
    }

    // MARK: Packets

    /// A packet the data plane intercepted for the mobile node, starting at its IPv6 header.
    /// Binding Acknowledgements and Binding Refresh Requests from the home agent are acted on;
    /// everything else is counted and ignored.
    public func handlePacket(_ ipv6Packet: [UInt8]) -> [MobileNodeAction] {
        let packet: MobilityPacket
        do {
            packet = try IPv6PacketParser.parseMobility(ipv6Packet)
        } catch {
            counters.packetsIgnored += 1
            logger.debug("packet ignored", metadata: ["mip6.detail": "\(error)"])
            return []
        }
        let isBA = MobilityHeaderCodec.peekType(packet.mh) == MHType.bindingAcknowledgement.rawValue

        // RFC 6275 §11.7.3: only a BA from the home agent counts. It travels to the care-of
        // address with a Type 2 Routing Header holding the home address (§6.4, §9.5.4), or
        // straight to the home address when we registered from home: either way the final
        // destination must be our home address.
        guard packet.source == configuration.homeAgent else {
            return ignore(isBA, "not from the home agent", packet)
        }
        if let rh2 = packet.routingType2Address, rh2 != configuration.homeAddress {
            return ignore(isBA, "Type 2 Routing Header holds \(rh2), not our home address", packet)
        }
        guard packet.finalDestination == configuration.homeAddress else {
            return ignore(isBA, "final destination \(packet.finalDestination) is not our home address", packet)
        }
        // §6.1.1 / §9.2: the checksum covers a pseudo-header whose destination is the final
        // destination (the home address); a bad one is discarded silently.
        let message: MobilityMessage
        do {
            message = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource,
                                                     destination: packet.checksumDestination)
        } catch {
            return ignore(isBA, "\(error)", packet)
        }

        switch message {
        case .bindingAcknowledgement(let ba):
            return handleBindingAcknowledgement(ba, packet: packet)
        case .bindingRefreshRequest:
            return handleBindingRefreshRequest()
        default:
            counters.packetsIgnored += 1
            logger.debug("mobility message ignored", metadata: ["mip6.mhtype": "\(message.mhType)"])
            return []
        }
    }

    private func handleBindingAcknowledgement(_ ba: BindingAcknowledgement, packet: MobilityPacket) -> [MobileNodeAction] {
        guard var p = pending, let sent = p.sentSequence, let sentAt = p.sentAt else {
            return ignore(true, "no Binding Update outstanding (seq \(ba.sequence))", packet)
        }
        let now = clock.nanoseconds()

        if let credentials = configuration.credentials {
            // RFC 4285 §5.1: believe only a BA authenticated with our key over our care-of
            // address and home address, echoing the timestamp of the outstanding BU (§6) - except
            // 144, which carries the home agent's clock instead.
            let verdict = MobilityAuthentication.verifyBindingAcknowledgement(
                mh: packet.mh, ba: ba, careOf: p.source, homeAddress: configuration.homeAddress,
                association: credentials.association,
                expectedTimestamp: ba.status == .idMismatch ? nil : p.sentTimestamp)
            guard verdict.result == .ok else {
                counters.acksUnauthenticated += 1
                return ignore(true, "MN-HA authentication failed: \(verdict.result.rawValue) (status \(ba.status.rawValue), seq \(ba.sequence))", packet)
            }
            if ba.status == .idMismatch, let haTime = verdict.timestamp {
                guard ba.sequence == sent else {
                    return ignore(true, "status 144 for seq \(ba.sequence), outstanding \(sent)", packet)
                }
                return resynchronizeClock(haTime: haTime, credentials: credentials, p: p, now: now)
            }
        }

        if ba.status == .sequenceOutOfWindow {
            // RFC 6275 §11.7.1: status 135 carries the last sequence number the home agent
            // accepted; "the mobile node MUST store this information and use the next Sequence
            // Number value for the next Binding Update it sends". Such a BA cannot echo our
            // sequence number, so it is matched differently: it must explain the rejection of
            // the outstanding BU, i.e. our number must not be newer than the home agent's
            // (§9.5.1 comparison). A 135 answering an older BU we already superseded is stale.
            guard !SequenceNumber.isNewer(sent, than: ba.sequence) else {
                return ignore(true, "stale status 135 (home agent's seq \(ba.sequence), ours \(sent))", packet)
            }
            counters.acksAccepted += 1
            lastStatus = ba.status.rawValue
            p.consecutiveResyncs += 1
            guard p.consecutiveResyncs <= configuration.maxConsecutiveResyncs else {
                pending = p
                return fail(status: ba.status, now: now)
            }
            counters.resyncs135 += 1
            nextSequence = ba.sequence &+ 1
            let actions = resendAtOnce(p, now: now)
            logger.info("sequence number re-synchronised after status 135",
                        metadata: ["mip6.status": "135", "mip6.seq": "\(ba.sequence &+ 1)",
                                   "mip6.haseq": "\(ba.sequence)"])
            return actions
        }

        // §11.7.3: "The Sequence Number field matches the Sequence Number sent by the mobile
        // node to this destination address in an outstanding Binding Update." Every
        // transmission has its own number (§11.8), and only the latest is outstanding.
        guard ba.sequence == sent else {
            return ignore(true, "sequence \(ba.sequence) does not match the outstanding \(sent)", packet)
        }
        counters.acksAccepted += 1
        lastStatus = ba.status.rawValue
        p.consecutiveResyncs = 0
        p.consecutiveClockResyncs = 0

        switch p.kind {
        case .deregister:
            // §11.5.5 / §10.3.2: accepted, or 133 — the home agent holds no binding for us,
            // which is what we asked for.
            guard ba.status.isAccepted || ba.status == .notHomeAgentForThisMN else {
                pending = p
                return fail(status: ba.status, now: now)
            }
            pending = nil
            binding = nil
            homeAgentHasBinding = false
            counters.deregistrations += 1
            logger.info("de-registered", metadata: ["mip6.seq": "\(ba.sequence)", "mip6.status": "\(ba.status.rawValue)"])
            return []

        case .register(let careOf):
            guard ba.status.isAccepted else {
                pending = p
                return fail(status: ba.status, now: now)
            }
            // §11.7.3: never count on more than was asked for; a shorter grant shortens the
            // binding, counted from when the acknowledged BU was sent (L_remain - (L_update -
            // L_ack), L_remain running since the BU left).
            let granted = min(ba.lifetimeSeconds, UInt32(p.lifetimeUnits) * 4)
            guard granted > 0 else {
                // Accepted with lifetime 0 for a registration: no usable binding. Treated as a
                // failure so that we back off instead of looping.
                logger.warning("registration accepted with lifetime 0",
                               metadata: ["mip6.coa": "\(careOf)", "mip6.seq": "\(ba.sequence)"])
                pending = p
                return fail(status: ba.status, now: now)
            }
            let lifetimeNs = UInt64(granted) * 1_000_000_000
            var refreshAfter = UInt64(Double(lifetimeNs) * min(max(configuration.refreshFraction, 0.1), 0.95))
            // §6.2.4: a Binding Refresh Advice asks for a refresh at a shorter interval. It must
            // be less than the lifetime; ignored otherwise (and when 0).
            if let advice = ba.bindingRefreshAdvice, advice > 0 {
                let adviceNs = UInt64(advice) * 4_000_000_000
                if adviceNs < lifetimeNs { refreshAfter = min(refreshAfter, adviceNs) }
            }
            let previous = binding
            binding = GrantedBinding(careOf: careOf, lifetime: granted, refreshAt: sentAt + refreshAfter,
                                     expiresAt: sentAt + lifetimeNs)
            homeAgentHasBinding = true
            pending = nil
            let elapsed = now >= (p.firstSentAt ?? sentAt) ? now - (p.firstSentAt ?? sentAt) : 0
            counters.lastRegistrationMs = elapsed / 1_000_000
            let isRefresh = previous?.careOf == careOf && tunnelCareOf == careOf
            if isRefresh { counters.refreshes += 1 } else { counters.registrations += 1 }
            logger.info(isRefresh ? "binding refreshed" : "registered with the home agent",
                        metadata: ["mip6.coa": "\(careOf)", "mip6.seq": "\(ba.sequence)",
                                   "mip6.status": "\(ba.status.rawValue)", "mip6.lifetime": "\(granted)",
                                   "mip6.ms": "\(elapsed / 1_000_000)"])
            var actions: [MobileNodeAction] = [.registered(careOf: careOf, lifetime: granted)]
            if tunnelCareOf != careOf {
                tunnelCareOf = careOf
                actions.append(.tunnelUp(careOf: careOf))
            }
            return actions
        }
    }

    /// RFC 4285 §6: status 144 (MIPV6-ID-MISMATCH) - our timestamp was outside the home agent's
    /// window. The BA (already authenticated) carries the home agent's current time: adopt it as
    /// an offset to our clock and send a new Binding Update at once. Bounded by
    /// `maxConsecutiveResyncs` answers in a row, then treated as a rejection.
    private func resynchronizeClock(haTime: UInt64, credentials: MobileNodeCredentials, p: Transaction,
                                    now: UInt64) -> [MobileNodeAction] {
        var p = p
        counters.acksAccepted += 1
        lastStatus = BAStatus.idMismatch.rawValue
        p.consecutiveClockResyncs += 1
        guard p.consecutiveClockResyncs <= configuration.maxConsecutiveResyncs else {
            pending = p
            return fail(status: .idMismatch, now: now)
        }
        counters.resyncs144 += 1
        let previous = clockOffset
        clockOffset = NTPTimestamp.difference(haTime, credentials.clock.ntpTimestamp())
        // The next timestamp follows the home agent's clock even if that is behind what we sent.
        lastTimestamp = nil
        let actions = resendAtOnce(p, now: now)
        logger.info("clock re-synchronised to the home agent's after status 144",
                    metadata: ["mip6.status": "144", "mip6.offset": "\(NTPTimestamp.seconds(clockOffset))",
                               "mip6.previousOffset": "\(NTPTimestamp.seconds(previous))"])
        return actions
    }

    /// The Replay Protection timestamp for the next Binding Update (RFC 4285 §6): our clock plus
    /// the offset learnt from 144, and always newer than the previous one.
    private func nextTimestamp(_ credentials: MobileNodeCredentials) -> UInt64 {
        var ts = credentials.clock.ntpTimestamp() &+ UInt64(bitPattern: clockOffset)
        if let last = lastTimestamp, !NTPTimestamp.isNewer(ts, than: last) { ts = last &+ 1 }
        lastTimestamp = ts
        return ts
    }

    /// RFC 6275 §11.7.3: a rejection (status >= 128). The node "can take steps to correct the
    /// cause of the error and retransmit the Binding Update (with a new Sequence Number value),
    /// subject to the rate limiting restriction specified in Section 11.8". Nothing here can be
    /// corrected automatically, so it retries slowly: after MAX_BINDACK_TIMEOUT, then at that
    /// interval. An existing binding stays in force until it expires.
    private func fail(status: BAStatus, now: UInt64) -> [MobileNodeAction] {
        guard var p = pending else { return [] }
        p.failed = true
        p.sendDue = false
        p.dueIsRetransmission = false
        p.consecutiveResyncs = 0
        p.timeout = configuration.maxBindackTimeout
        p.deadline = now + configuration.maxBindackTimeout
        pending = p
        counters.rejections += 1
        var meta: Logger.Metadata = ["mip6.status": "\(status.rawValue)", "mip6.seq": "\(p.sentSequence.map { "\($0)" } ?? "-")"]
        if case .register(let coa) = p.kind { meta["mip6.coa"] = "\(coa)" }
        logger.warning("home agent rejected the binding update: \(status)", metadata: meta)
        return [.registrationFailed(status: status)]
    }

    /// RFC 6275 §11.7.4: a Binding Refresh Request from the home agent is answered with a
    /// Binding Update refreshing the home registration.
    private func handleBindingRefreshRequest() -> [MobileNodeAction] {
        counters.refreshRequests += 1
        guard !isShutDown, pending == nil, case .away(let coa) = location, binding != nil else {
            logger.debug("binding refresh request: nothing to refresh now")
            return []
        }
        let now = clock.nanoseconds()
        pending = newTransaction(.register(careOf: coa), source: coa,
                                 lifetimeUnits: configuration.requestedLifetimeUnits, now: now)
        logger.info("binding refresh requested by the home agent", metadata: ["mip6.coa": "\(coa)"])
        return pump(now: now)
    }

    // MARK: Timers

    /// When `tick()` should next run: a retransmission, a refresh or the binding's expiry.
    public var nextDeadline: UInt64? {
        guard !isShutDown else { return nil }
        var deadline: UInt64?
        func consider(_ t: UInt64) { deadline = min(deadline ?? t, t) }
        if let p = pending, p.sendDue || p.retransmits { consider(p.deadline) }
        if let b = binding {
            consider(b.expiresAt)
            if pending == nil, case .away = location { consider(b.refreshAt) }
        }
        return deadline
    }

    /// Runs what is due: retransmissions (§11.8), the refresh before the lifetime runs out, and
    /// the end of a binding whose lifetime ran out unrefreshed.
    public func tick() -> [MobileNodeAction] {
        guard !isShutDown else { return [] }
        let now = clock.nanoseconds()
        var actions: [MobileNodeAction] = []

        if let b = binding, now >= b.expiresAt {
            // The home agent has dropped the binding by now: stop using the tunnel, and keep
            // trying to register (the outstanding BU goes on; otherwise a new one starts).
            binding = nil
            homeAgentHasBinding = false
            counters.expirations += 1
            logger.warning("binding expired before a refresh was accepted",
                           metadata: ["mip6.coa": "\(b.careOf)", "mip6.lifetime": "\(b.lifetime)"])
            if tunnelCareOf != nil {
                tunnelCareOf = nil
                actions.append(.tunnelDown)
            }
        }

        if pending == nil, case .away(let coa) = location, binding.map({ now >= $0.refreshAt }) ?? true {
            // §11.7.1: extend the registration before it expires with a new Binding Update.
            pending = newTransaction(.register(careOf: coa), source: coa,
                                     lifetimeUnits: configuration.requestedLifetimeUnits, now: now)
            logger.debug("refreshing binding", metadata: ["mip6.coa": "\(coa)"])
        }

        actions += pump(now: now)
        return actions
    }

    // MARK: Shutdown

    /// On SIGTERM: one de-registration Binding Update (Lifetime 0) from the current care-of
    /// address with the Home Address option (§11.7.1 packet format, §6.1.7 Lifetime 0), and the
    /// tunnel down. Not retransmitted: the daemon waits briefly for the BA and hands it to
    /// `handlePacket`. After this, movement and timers are ignored.
    ///
    /// This last Binding Update is sent even if MAX_UPDATE_RATE was just reached: deferring it
    /// would mean not sending it at all.
    public func shutdown() -> [MobileNodeAction] {
        guard !isShutDown else { return [] }
        let now = clock.nanoseconds()
        var actions: [MobileNodeAction] = []
        switch location {
        case .away(let coa):
            var p = newTransaction(.deregister, source: coa, lifetimeUnits: 0, now: now)
            p.retransmits = false
            actions.append(transmit(&p, now: now))
            pending = p
            location = .none
            logger.info("shutting down, de-registering",
                        metadata: ["mip6.coa": "\(coa)", "mip6.seq": "\(p.sentSequence.map { "\($0)" } ?? "-")"])
        case .home:
            // A de-registration from home still unanswered: one last attempt.
            guard var p = pending else {
                logger.info("shutting down at home")
                break
            }
            p.retransmits = false
            p.sendDue = false
            actions.append(transmit(&p, now: now))
            pending = p
            logger.info("shutting down at home, de-registration still unanswered",
                        metadata: ["mip6.seq": "\(p.sentSequence.map { "\($0)" } ?? "-")"])
        default:
            pending = nil
            logger.info("shutting down")
        }
        isShutDown = true
        binding = nil
        tunnelCareOf = nil
        actions.append(.tunnelDown)
        return actions
    }

    // MARK: Status

    public var status: MobileNodeStatus {
        let now = clock.nanoseconds()
        func seconds(until t: UInt64) -> UInt32 {
            t > now ? UInt32(clamping: (t - now) / 1_000_000_000) : 0
        }
        let state: String
        var careOf: IPv6Address?
        switch location {
        case .unknown, .none:
            state = pending != nil ? "deregistering" : "no-care-of-address"
        case .home:
            state = pending?.failed == true ? "failed" : pending != nil ? "deregistering" : "home"
        case .away(let coa):
            careOf = coa
            if pending?.failed == true {
                state = "failed"
            } else if let b = binding, b.careOf == coa {
                state = "registered"
            } else {
                state = "registering"
            }
        }
        return MobileNodeStatus(
            homeAddress: configuration.homeAddress, homeAgent: configuration.homeAgent,
            careOfAddress: careOf, tunnelCareOf: tunnelCareOf, state: state,
            grantedLifetime: binding?.lifetime ?? 0,
            secondsToRefresh: binding.map { seconds(until: $0.refreshAt) },
            secondsToExpiry: binding.map { seconds(until: $0.expiresAt) },
            sequence: lastSentSequence, lastStatus: lastStatus, counters: counters)
    }

    // MARK: Transmission

    private func newTransaction(_ kind: Transaction.Kind, source: IPv6Address, lifetimeUnits: UInt16,
                                now: UInt64) -> Transaction {
        // §11.8: InitialBindackTimeoutFirstReg when the home agent has no binding for us (it may
        // run DAD first, §10.3.1), INITIAL_BINDACK_TIMEOUT otherwise.
        let timeout = homeAgentHasBinding ? configuration.initialBindackTimeout
                                          : configuration.initialBindackTimeoutFirstReg
        return Transaction(kind: kind, source: source, lifetimeUnits: lifetimeUnits, timeout: timeout,
                           deadline: now, sendDue: true)
    }

    /// Sends the outstanding Binding Update when it is owed and the rate limit allows, and
    /// runs its retransmission timer.
    /// After a resynchronisation (135, 144): a fresh Binding Update at once; the
    /// retransmission interval carries on unchanged.
    private func resendAtOnce(_ transaction: Transaction, now: UInt64) -> [MobileNodeAction] {
        var p = transaction
        p.sendDue = true
        p.dueIsRetransmission = false
        p.deadline = now
        p.failed = false
        pending = p
        return pump(now: now)
    }

    private func pump(now: UInt64) -> [MobileNodeAction] {
        guard var p = pending else { return [] }
        if !p.sendDue {
            guard p.retransmits, now >= p.deadline else { return [] }
            // §11.8: no answer in time → retransmit, "the timeout period is doubled upon each
            // retransmission, until either the node receives a response or the timeout period
            // reaches the value MAX_BINDACK_TIMEOUT", and then on "at this slower rate
            // indefinitely". (After a rejection the timeout already sits at the maximum.)
            p.timeout = min(p.timeout * 2, configuration.maxBindackTimeout)
            p.sendDue = true
            p.dueIsRetransmission = true
            p.deadline = now
        }
        // §11.8: no more than MAX_UPDATE_RATE Binding Updates a second.
        let allowedAt = earliestSendTime(now: now)
        guard allowedAt <= now else {
            p.deadline = max(p.deadline, allowedAt)
            pending = p
            logger.debug("binding update deferred by MAX_UPDATE_RATE")
            return []
        }
        if p.dueIsRetransmission { counters.retransmissions += 1 }
        let action = transmit(&p, now: now)
        p.sendDue = false
        p.dueIsRetransmission = false
        p.deadline = now + p.timeout
        pending = p
        return [action]
    }

    private func earliestSendTime(now: UInt64) -> UInt64 {
        guard recentSends.count >= Self.maxUpdateRate, let oldest = recentSends.first else { return now }
        return max(now, oldest + 1_000_000_000)
    }

    /// Builds and records one Binding Update (§11.7.1): A and H set, a new sequence number
    /// (§9.5.1: greater than the last one, modulo 2^16; §11.8: a new one on every
    /// retransmission), from `source` with a Home Address option unless `source` is the home
    /// address (PacketBuilder leaves it out then, §11.5.5).
    private func transmit(_ p: inout Transaction, now: UInt64) -> MobileNodeAction {
        let sequence = nextSequence
        nextSequence &+= 1
        let bu = BindingUpdate(sequence: sequence, flags: [.ack, .home], lifetime: p.lifetimeUnits)
        let packet: [UInt8]
        if let credentials = configuration.credentials {
            // RFC 4285 §5.1: MN-ID, Replay Protection, then the MN-HA option over
            // care-of address | home address | MH data.
            let ts = nextTimestamp(credentials)
            p.sentTimestamp = ts
            packet = PacketBuilder.bindingUpdate(
                bu, careOf: p.source, homeAgent: configuration.homeAgent, homeAddress: configuration.homeAddress,
                hopLimit: configuration.hopLimit,
                authentication: MNHASeal(association: credentials.association, timestamp: ts, careOf: p.source,
                                         homeAddress: configuration.homeAddress))
        } else {
            packet = PacketBuilder.bindingUpdate(bu, careOf: p.source, homeAgent: configuration.homeAgent,
                                                 homeAddress: configuration.homeAddress,
                                                 hopLimit: configuration.hopLimit)
        }
        p.sentSequence = sequence
        p.sentAt = now
        if p.firstSentAt == nil { p.firstSentAt = now }
        lastSentSequence = sequence
        counters.busSent += 1
        recentSends.append(now)
        if recentSends.count > Self.maxUpdateRate { recentSends.removeFirst(recentSends.count - Self.maxUpdateRate) }
        logger.debug("sending binding update",
                     metadata: ["mip6.seq": "\(sequence)", "mip6.coa": "\(p.source)",
                                "mip6.lifetime": "\(bu.lifetimeSeconds)"])
        let what = p.lifetimeUnits == 0 ? "de-registration BU" : "BU"
        return .send(packet: packet,
                     description: "\(what) seq \(sequence) lifetime \(bu.lifetimeSeconds)s from \(p.source) to \(configuration.homeAgent) for \(configuration.homeAddress)")
    }

    private func ignore(_ isBA: Bool, _ reason: String, _ packet: MobilityPacket) -> [MobileNodeAction] {
        if isBA { counters.acksIgnored += 1 } else { counters.packetsIgnored += 1 }
        logger.debug(isBA ? "binding acknowledgement ignored" : "packet ignored",
                     metadata: ["mip6.detail": "\(reason)", "mip6.peer": "\(packet.source)"])
        return []
    }
}
