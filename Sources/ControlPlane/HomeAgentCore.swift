import Logging

/// MN-HA authentication of home registrations (RFC 4285 §5.1 with RFC 4283 MN-ID, replay
/// protection by timestamps, RFC 4285 §6).
public struct HomeAgentAuthenticationPolicy: Sendable {
    /// The security associations: NAI, home address (or any in the home prefix), SPI, key.
    public var keys: KeyStore
    /// Largest difference in seconds between a Binding Update's timestamp and the home agent's
    /// clock (RFC 4285 §6: default 7 s, which "SHOULD be greater than 3 seconds").
    public var allowedSkew: UInt32
    public var clock: any WallClock

    public init(keys: KeyStore, allowedSkew: UInt32 = 7, clock: any WallClock = SystemWallClock()) {
        self.keys = keys
        self.allowedSkew = allowedSkew
        self.clock = clock
    }
}

public struct HomeAgentConfiguration: Sendable {
    /// The address mobile nodes send home registrations to. BUs with the H flag that arrive at any
    /// other local address are answered with status 131.
    public var homeAgentAddress: IPv6Address
    /// The home subnet prefix; home addresses outside it get status 132 (RFC 6275 §10.3.1).
    public var homePrefix: IPv6Prefix
    /// Longest lifetime granted, in seconds (MaxHomeRegistration of §10.3.1). Rounded down to
    /// whole 4-second units, at least one unit.
    public var maxLifetime: UInt32
    /// Most home addresses served at once, bindings and registrations waiting for DAD together.
    public var capacity: Int
    /// Run Duplicate Address Detection on a home address before its first binding (§10.3.1).
    public var duplicateAddressDetection: Bool
    /// A registration waiting for `dadFinished` longer than this (seconds) is dropped without an
    /// answer; the mobile node's retransmission starts over.
    public var dadTimeout: UInt32
    /// Binding Errors and ICMP errors sent per second at most (RFC 6275 §9.3.3, RFC 4443 §2.4(f)).
    /// 0 sends none.
    public var errorMessagesPerSecond: UInt32
    /// Answer a bad Payload Proto or a too-small Header Len with ICMP Parameter Problem, as
    /// RFC 6275 §9.2 says the node SHOULD.
    public var sendParameterProblem: Bool
    /// Hop limit of the packets the home agent originates.
    public var hopLimit: UInt8
    /// MN-HA authentication (RFC 4285). Nil: Binding Updates are not authenticated here (they
    /// are expected to arrive IPsec-protected, RFC 6275 §5.1, or on a trusted network).
    public var authentication: HomeAgentAuthenticationPolicy?

    public init(homeAgentAddress: IPv6Address, homePrefix: IPv6Prefix, maxLifetime: UInt32 = 3600,
                capacity: Int = 1_000_000, duplicateAddressDetection: Bool = true, dadTimeout: UInt32 = 10,
                errorMessagesPerSecond: UInt32 = 10, sendParameterProblem: Bool = true, hopLimit: UInt8 = 64,
                authentication: HomeAgentAuthenticationPolicy? = nil) {
        self.homeAgentAddress = homeAgentAddress
        self.homePrefix = homePrefix
        self.maxLifetime = maxLifetime
        self.capacity = capacity
        self.duplicateAddressDetection = duplicateAddressDetection
        self.dadTimeout = dadTimeout
        self.errorMessagesPerSecond = errorMessagesPerSecond
        self.sendParameterProblem = sendParameterProblem
        self.hopLimit = hopLimit
        self.authentication = authentication
    }

    /// `maxLifetime` in 4-second units as granted in a BA.
    public var maxLifetimeUnits: UInt16 {
        max(1, UInt16(clamping: maxLifetime / 4))
    }
}

/// Why a binding left the cache.
public enum RemovalReason: String, Sendable, Hashable, Codable {
    case deregistered
    case expired
}

/// What the daemon must do after a call into `HomeAgentCore`, in order.
public enum HomeAgentAction: Equatable, Sendable {
    /// Send this complete IPv6 packet (a Binding Acknowledgement, Binding Error or ICMPv6 error).
    case send(packet: [UInt8], description: String)
    /// Run Duplicate Address Detection for the home address on the home link (RFC 4862 §5.4),
    /// and for `linkLocal` too when the BU set L (RFC 6275 §10.3.1), and report with
    /// `dadFinished(homeAddress:duplicate:)`: a duplicate of either fails the registration.
    case startDAD(homeAddress: IPv6Address, linkLocal: IPv6Address? = nil)
    /// Multicast an unsolicited Neighbor Advertisement for the home address (and `linkLocal`,
    /// L flag) with the home agent's link-layer address, to start intercepting for it (RFC 6275
    /// §10.4.1).
    case sendUnsolicitedNA(homeAddress: IPv6Address, linkLocal: IPv6Address? = nil)
    /// The binding was added or changed; the data plane already has it (written through).
    case bindingInstalled(Binding)
    /// The binding is gone; the data plane no longer has it.
    case bindingRemoved(Binding, reason: RemovalReason)

    public typealias RemovalReason = ControlPlane.RemovalReason
}

/// Why a received packet was discarded without further processing.
public enum DropReason: String, CaseIterable, Sendable, Hashable, Codable {
    /// The IPv6 header chain could not be parsed.
    case malformedPacket
    /// A Fragment header in front of the Mobility Header.
    case fragmented
    /// The header chain does not end in a Mobility Header.
    case notMobilityHeader
    /// The final destination is none of our addresses.
    case notForUs
    /// Mobility Header shorter than its Header Len says, or with options that do not parse.
    case malformedMobilityHeader
    /// Payload Proto other than 59 (RFC 6275 §9.2).
    case badPayloadProto
    /// Header Len below the minimum for the MH type (RFC 6275 §9.2).
    case belowMinimumLength
    /// Checksum does not verify (RFC 6275 §9.2: silently discard).
    case badChecksum
    /// BA, BRR or BE sent to the home agent: those are for mobile nodes.
    case unexpectedMessage
    /// The home address is not unicast routable (RFC 6275 §9.5.1).
    case invalidHomeAddress
    /// The care-of address is not unicast routable (RFC 6275 §9.5.1).
    case invalidCareOfAddress
    /// A Binding Update without the H flag: correspondent registration needs return routability,
    /// which this node does not do, so it cannot pass §9.5.1's authorization check.
    case notHomeRegistration
    /// A stale or duplicate Binding Update for a home address whose DAD is still running.
    case dadInProgress
    /// A registration whose DAD result never came within `dadTimeout`.
    case dadTimedOut
    /// An error reply (Binding Error, ICMP) suppressed by the rate limit.
    case errorRateLimited
    /// A Binding Error would go to a multicast, unspecified or loopback source (RFC 6275 §9.3.3).
    case invalidSourceAddress
}

public struct HomeAgentCounters: Sendable, Equatable {
    public var drops: [DropReason: UInt64] = [:]
    /// Binding Updates that decoded correctly.
    public var bindingUpdates: UInt64 = 0
    /// Binding Acknowledgements sent, by status.
    public var acksByStatus: [UInt8: UInt64] = [:]
    public var bindingErrorsSent: UInt64 = 0
    public var parameterProblemsSent: UInt64 = 0
    /// New bindings installed.
    public var registrations: UInt64 = 0
    /// Binding refreshes and care-of address changes accepted.
    public var refreshes: UInt64 = 0
    public var deregistrations: UInt64 = 0
    public var expirations: UInt64 = 0
    public var dadStarted: UInt64 = 0
    /// Data plane writes that failed.
    public var dataPlaneErrors: UInt64 = 0
    /// Binding Updates that passed MN-HA authentication (RFC 4285).
    public var authenticatedBindingUpdates: UInt64 = 0
    /// Binding Updates refused by MN-HA authentication, by reason (never `.ok`). Which of them
    /// were answered is in `AuthenticationResult.homeAgentStatus`; the answers are also in
    /// `acksByStatus` (144, 145, 146).
    public var authRefusals: [AuthenticationResult: UInt64] = [:]
    /// Binding Updates refused because the shared binding store could not take them
    /// (`refusingRegistrations`), answered with that status.
    public var storeRefusals: UInt64 = 0

    public init() {}

    public var totalDrops: UInt64 { drops.values.reduce(0, +) }
}

/// Home agent processing of RFC 6275 §9.2, §9.5.1, §10.3.1 and §10.3.2, without I/O: the daemon
/// feeds packets and DAD results in and carries out the returned actions.
public final class HomeAgentCore {
    public private(set) var configuration: HomeAgentConfiguration
    public let cache: BindingCache
    public private(set) var counters = HomeAgentCounters()
    /// Per-BU events logged once at info (the first of each kind), then at debug only: a flood
    /// of BUs must not become a flood of log lines; the counters keep the numbers.
    private var loggedEvents: Set<String> = []

    private let clock: MonotonicClock
    private let logger: Logger
    private var pending: [IPv6Address: PendingRegistration] = [:]
    private var errorBucket: TokenBucket
    /// Last accepted Replay Protection timestamp per home address (RFC 4285 §6). Kept after the
    /// binding goes, so that a BU recorded before a de-registration cannot be replayed within
    /// the skew; entries older than the skew prove nothing more and are pruned.
    private var lastTimestamps: [IPv6Address: UInt64] = [:]
    /// The last timestamp before the latest acceptance (absent: none), so that an acceptance
    /// taken back (`storeWriteFailed`) takes its timestamp back too.
    private var timestampsBefore: [IPv6Address: UInt64] = [:]
    private var timestampPruneAt = 1024
    /// Set when the data plane refused an expiry removal: retry no sooner than this.
    private var expiryRetryAt: UInt64?

    /// Where a Binding Acknowledgement goes (RFC 6275 §9.5.4): back to the IPv6 source of the
    /// BU, with a Type 2 Routing Header for the home address if the BU had a Home Address option.
    struct ReplyRoute: Equatable {
        var from: IPv6Address
        var to: IPv6Address
        var routingHeaderHomeAddress: IPv6Address?
    }

    struct PendingRegistration {
        var homeAddress: IPv6Address
        var careOfAddress: IPv6Address
        var sequence: UInt16
        var flags: BUFlags
        var grantedUnits: UInt16
        var route: ReplyRoute
        var deadline: UInt64
        var auth: ReplyAuthentication? = nil
    }

    /// How the answers to an authenticated Binding Update are authenticated: with the same
    /// security association, echoing its timestamp (RFC 4285 §5.1, §6), over the same care-of
    /// address and home address.
    struct ReplyAuthentication {
        var association: MNHASecurityAssociation
        var timestamp: UInt64?
        var careOf: IPv6Address
    }

    /// New security associations (SIGHUP re-reads the key file); bindings are kept.
    /// Returns false when authentication is off (there is nothing to replace).
    @discardableResult
    public func replaceKeys(_ keys: KeyStore) -> Bool {
        guard configuration.authentication != nil else { return false }
        configuration.authentication?.keys = keys
        return true
    }

    public init(configuration: HomeAgentConfiguration, cache: BindingCache, clock: MonotonicClock, logger: Logger) {
        self.configuration = configuration
        self.cache = cache
        self.clock = clock
        self.logger = logger
        self.errorBucket = TokenBucket(perSecond: UInt64(configuration.errorMessagesPerSecond), now: clock.nanoseconds())
    }

    /// Home addresses whose first registration waits for DAD.
    public var pendingDAD: [IPv6Address] { pending.keys.sorted() }

    /// When `expire()` should next be called: the earliest binding expiry or DAD timeout.
    public var nextDeadline: UInt64? {
        var deadline = cache.nextExpiry
        if let retry = expiryRetryAt, let d = deadline { deadline = max(d, retry) }
        for p in pending.values {
            deadline = min(deadline ?? p.deadline, p.deadline)
        }
        return deadline
    }

    // MARK: Packets

    /// Processes one packet from the data plane, starting at its IPv6 header. `localAddresses`
    /// are the node's addresses; the configured home agent address always counts as local.
    public func handlePacket(_ ipv6Packet: [UInt8], localAddresses: Set<IPv6Address>) -> [HomeAgentAction] {
        let packet: MobilityPacket
        do {
            packet = try IPv6PacketParser.parseMobility(ipv6Packet)
        } catch {
            switch error {
            case .fragmented: drop(.fragmented, "\(error)")
            case .notMobilityHeader: drop(.notMobilityHeader, "\(error)")
            default: drop(.malformedPacket, "\(error)")
            }
            return []
        }
        let ourAddress = packet.finalDestination
        guard ourAddress == configuration.homeAgentAddress || localAddresses.contains(ourAddress) else {
            drop(.notForUs, "destination \(ourAddress)")
            return []
        }

        let message: MobilityMessage
        do {
            message = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource,
                                                     destination: packet.checksumDestination)
        } catch {
            // RFC 6275 §9.2: a bad checksum is discarded silently; a bad Payload Proto or a Header
            // Len below the minimum is discarded with an ICMP Parameter Problem, code 0, pointing
            // at the offending field.
            switch error {
            case .badChecksum:
                drop(.badChecksum, "\(error)")
                return []
            case .badPayloadProto:
                drop(.badPayloadProto, "\(error)")
                return parameterProblem(for: packet, original: ipv6Packet, error: error)
            case .belowMinimumLength:
                drop(.belowMinimumLength, "\(error)")
                return parameterProblem(for: packet, original: ipv6Packet, error: error)
            default:
                drop(.malformedMobilityHeader, "\(error)")
                return []
            }
        }

        switch message {
        case .bindingUpdate(let bu):
            counters.bindingUpdates += 1
            return handleBindingUpdate(bu, packet: packet, localAddresses: localAddresses)
        case .unrecognized(let type, _):
            // RFC 6275 §9.2: unknown MH Type → Binding Error status 2 to the packet's source.
            // Return routability types (1...4) land here too: this node is no correspondent node.
            return bindingError(status: BindingError.unrecognizedMHType, for: packet, note: "MH type \(type)")
        case .bindingAcknowledgement, .bindingRefreshRequest, .bindingError:
            drop(.unexpectedMessage, "MH type \(message.mhType)")
            return []
        }
    }

    private func handleBindingUpdate(_ bu: BindingUpdate, packet: MobilityPacket,
                                     localAddresses: Set<IPv6Address>) -> [HomeAgentAction] {
        // RFC 6275 §9.5.1: the home address is in the Home Address option, else the source.
        let hoa = packet.homeAddressOption ?? packet.source
        guard hoa.isUnicastRoutable else {
            drop(.invalidHomeAddress, "home address \(hoa)")
            return []
        }
        // §9.5.1: the care-of address is the Alternate Care-of Address option's, else the source;
        // one that is not unicast routable gets the BU silently discarded.
        let coa = bu.alternateCareOfAddress ?? packet.source
        guard coa.isUnicastRoutable else {
            drop(.invalidCareOfAddress, "care-of address \(coa)")
            return []
        }
        // §9.5.1: a non-home registration must carry Binding Authorization Data from return
        // routability, which this node does not implement, so it cannot be authorized.
        guard bu.flags.contains(.home) else {
            drop(.notHomeRegistration, "BU without H flag for \(hoa)")
            return []
        }
        let route = ReplyRoute(from: packet.finalDestination, to: packet.source,
                               routingHeaderHomeAddress: packet.homeAddressOption)
        var request = Request(bu: bu, hoa: hoa, coa: coa, route: route)

        // RFC 4285: with a policy, nothing below runs for a BU that does not authenticate, so a
        // refused BU changes nothing (cache, pending DAD, sequence numbers).
        if let policy = configuration.authentication {
            switch authenticate(request, packet: packet, policy: policy) {
            case .accepted(let auth): request.auth = auth
            case .refused(let actions): return actions
            }
        }

        // §10.3.1: a node not acting as home agent for this address answers 131. Applied to
        // de-registrations too: another of our addresses holds no home registrations.
        guard packet.finalDestination == configuration.homeAgentAddress else {
            return [reject(request, .homeRegistrationNotSupported)]
        }
        // The shared binding store cannot record it (no quorum): every replica answers the
        // same, nothing changes here, the bindings already held keep forwarding.
        if let status = refusingRegistrations {
            counters.storeRefusals += 1
            return [reject(request, status)]
        }
        // §9.5.1: lifetime 0, or a care-of address equal to the home address, deletes the binding.
        if bu.lifetime == 0 || coa == hoa {
            return deregister(request)
        }
        return register(request, localAddresses: localAddresses)
    }

    struct Request {
        var bu: BindingUpdate
        var hoa: IPv6Address
        var coa: IPv6Address
        var route: ReplyRoute
        var auth: ReplyAuthentication? = nil
    }

    enum AuthenticationOutcome {
        case accepted(ReplyAuthentication)
        case refused([HomeAgentAction])
    }

    /// RFC 4285 §5.1 and §6 checks of a Binding Update (see `MobilityAuthentication
    /// .verifyBindingUpdate` for the order), and the answer to one that fails:
    ///
    /// - no MN-HA option: silently discarded (RFC 4285 §5);
    /// - the authenticator did not verify (malformed, not last, unknown SPI, wrong key): 146,
    ///   unauthenticated, since no key vouches for it;
    /// - authentic but not acceptable (no or wrong NAI, home address not covered): 146, and
    ///   authenticated with the association the sender proved it holds;
    /// - no Replay Protection option: 145, authenticated;
    /// - timestamp outside the skew: 144, authenticated, carrying the home agent's current time
    ///   in its Replay Protection option for the mobile node to resynchronise (RFC 4285 §6);
    /// - timestamp not newer than the last accepted for this home address (a replay):
    ///   silently discarded.
    ///
    /// Every refusal BA is rate limited like the other error replies (`errorMessagesPerSecond`):
    /// they answer packets nobody vouches for yet (unauthenticated ones) or replays of old
    /// authentic ones (144), and must not become a reflector. Refusals are counted per reason;
    /// only the first of each reason is logged above debug level. Keys are never logged.
    private func authenticate(_ r: Request, packet: MobilityPacket, policy: HomeAgentAuthenticationPolicy) -> AuthenticationOutcome {
        let now = policy.clock.ntpTimestamp()
        let verdict = MobilityAuthentication.verifyBindingUpdate(
            mh: packet.mh, bu: r.bu, careOf: r.coa, homeAddress: r.hoa, keys: policy.keys,
            homePrefix: configuration.homePrefix, now: now, allowedSkew: policy.allowedSkew,
            lastAccepted: lastTimestamps[r.hoa])
        if verdict.result == .ok, let association = verdict.association, let ts = verdict.timestamp {
            counters.authenticatedBindingUpdates += 1
            recordTimestamp(ts, for: r.hoa, now: now, skew: policy.allowedSkew)
            return .accepted(ReplyAuthentication(association: association, timestamp: ts, careOf: r.coa))
        }

        let reason = verdict.result
        counters.authRefusals[reason, default: 0] += 1
        var meta = metadata(r, lifetime: 0)
        meta["mip6.auth"] = "\(reason.rawValue)"
        if let spi = verdict.spi { meta["mip6.spi"] = "\(spi)" }
        if reason == .staleTimestamp, let ts = verdict.timestamp {
            meta["mip6.skew"] = "\(NTPTimestamp.seconds(NTPTimestamp.difference(ts, now)))"
        }
        if let status = reason.homeAgentStatus { meta["mip6.status"] = "\(status.rawValue)" }
        if counters.authRefusals[reason] == 1 {
            logger.notice("binding update failed authentication (first for this reason; further ones are counted: mip6 stats)",
                          metadata: meta)
        } else {
            logger.debug("binding update failed authentication", metadata: meta)
        }

        guard let status = reason.homeAgentStatus else { return .refused([]) }
        guard errorBucket.take(now: clock.nanoseconds()) else {
            drop(.errorRateLimited, "BA \(status) for \(r.hoa)")
            return .refused([])
        }
        var reply = r
        if let association = verdict.association {
            // RFC 4285 §6: 144 carries the home agent's time; the others echo the BU's.
            let stamp = reason == .staleTimestamp ? now : verdict.timestamp
            reply.auth = ReplyAuthentication(association: association, timestamp: stamp, careOf: r.coa)
        }
        return .refused([acknowledge(reply, status: status, lifetime: 0)])
    }

    /// When set, authentic Binding Updates are answered with this status and change nothing
    /// (a replica whose shared store has lost quorum: 130, insufficient resources).
    public var refusingRegistrations: BAStatus?

    /// RFC 4285 §6: the last accepted replay-protection timestamp of a home address, for the
    /// shared store, so that another replica refuses a replay of it.
    public func lastTimestamp(for hoa: IPv6Address) -> UInt64? { lastTimestamps[hoa] }

    /// Another replica accepted a BU with this timestamp: replays of it (and older) are
    /// silently discarded here too.
    public func adoptTimestamp(_ ts: UInt64, for hoa: IPv6Address) {
        if let mine = lastTimestamps[hoa], !NTPTimestamp.isNewer(ts, than: mine) { return }
        lastTimestamps[hoa] = ts
    }

    private func recordTimestamp(_ ts: UInt64, for hoa: IPv6Address, now: UInt64, skew: UInt32) {
        timestampsBefore[hoa] = lastTimestamps[hoa]
        lastTimestamps[hoa] = ts
        guard lastTimestamps.count > timestampPruneAt else { return }
        // A last timestamp older than now - skew rejects nothing the skew check does not.
        lastTimestamps = lastTimestamps.filter { NTPTimestamp.within($0.value, now, seconds: skew) }
        timestampsBefore = timestampsBefore.filter { NTPTimestamp.within($0.value, now, seconds: skew) }
        timestampPruneAt = max(1024, 2 * lastTimestamps.count)
    }

    /// RFC 6275 §10.3.2.
    private func deregister(_ r: Request) -> [HomeAgentAction] {
        if let existing = cache[r.hoa] {
            // §9.5.1: sequence numbers must move forward; 135 carries the last accepted one.
            guard SequenceNumber.isNewer(r.bu.sequence, than: existing.sequence) else {
                return [reject(r, .sequenceOutOfWindow, sequence: existing.sequence)]
            }
            do {
                try cache.remove(r.hoa)
            } catch {
                return [dataPlaneFailure(r, error)]
            }
            counters.deregistrations += 1
            logOnce("binding deregistered", metadata(r, lifetime: 0))
            // §10.3.2: status 0, the BU's sequence number, lifetime 0.
            return [.bindingRemoved(existing, reason: .deregistered),
                    acknowledge(r, status: .accepted, lifetime: 0)]
        }
        if let waiting = pending[r.hoa] {
            // The registration still waits for DAD. We treat it as this MN's home registration
            // entry: a newer de-registration cancels it, and the outcome (no binding) is accepted.
            guard SequenceNumber.isNewer(r.bu.sequence, than: waiting.sequence) else {
                drop(.dadInProgress, "stale de-registration for \(r.hoa)")
                return []
            }
            pending[r.hoa] = nil
            logger.info("registration withdrawn during DAD", metadata: metadata(r, lifetime: 0))
            return [acknowledge(r, status: .accepted, lifetime: 0)]
        }
        // §10.3.2: no home registration entry for this mobile node → 133.
        return [reject(r, .notHomeAgentForThisMN)]
    }

    /// RFC 6275 §10.3.1.
    private func register(_ r: Request, localAddresses: Set<IPv6Address>) -> [HomeAgentAction] {
        let existing = cache[r.hoa]
        if let existing, !SequenceNumber.isNewer(r.bu.sequence, than: existing.sequence) {
            return [reject(r, .sequenceOutOfWindow, sequence: existing.sequence)]
        }
        let units = min(r.bu.lifetime, configuration.maxLifetimeUnits)

        if existing == nil, var waiting = pending[r.hoa] {
            // DAD already runs for this address: a retransmission (with a newer sequence number,
            // §11.8) replaces the pending request but does not restart DAD.
            guard SequenceNumber.isNewer(r.bu.sequence, than: waiting.sequence) else {
                drop(.dadInProgress, "stale BU for \(r.hoa) during DAD")
                return []
            }
            waiting.careOfAddress = r.coa
            waiting.sequence = r.bu.sequence
            waiting.flags = r.bu.flags
            waiting.grantedUnits = units
            waiting.route = r.route
            waiting.auth = r.auth
            pending[r.hoa] = waiting
            logger.debug("BU updated while DAD runs", metadata: metadata(r, lifetime: UInt32(units) * 4))
            return []
        }

        // §10.3.1: the home address must be on-link with respect to the home prefix.
        guard configuration.homePrefix.contains(r.hoa) else {
            return [reject(r, .notHomeSubnet)]
        }
        // Our own addresses (the home agent address and any other on our interfaces) and the
        // Subnet-Router anycast address (RFC 4291 §2.6.1) cannot be homes.
        guard r.hoa != configuration.homeAgentAddress, !localAddresses.contains(r.hoa),
              r.hoa != configuration.homePrefix.address else {
            return [reject(r, .prohibited)]
        }

        // §10.3.1, L=1: the derived link-local address is defended too. One that is ours, or
        // another binding's (two home addresses share an interface identifier only under a
        // home prefix shorter than /64), is a duplicate: DAD for it could only fail.
        let linkLocal = r.bu.flags.contains(.linkLocal) ? r.hoa.derivedLinkLocal : nil
        if let linkLocal, linkLocalTaken(linkLocal, for: r.hoa, localAddresses: localAddresses) {
            return [reject(r, .duplicateAddressDetectionFailed)]
        }

        if let existing {
            // Refresh or care-of address change: no DAD, the address is already ours to defend
            // (§10.3.1 asks for DAD only without a binding, link-local address included).
            let binding = makeBinding(r.hoa, r.coa, r.bu.sequence, r.bu.flags, units)
            do {
                try cache.upsert(binding)
            } catch {
                return [dataPlaneFailure(r, error)]
            }
            counters.refreshes += 1
            let event = existing.careOfAddress == r.coa ? "binding refreshed" : "binding moved"
            logOnce(event, metadata(r, lifetime: binding.lifetime))
            var actions: [HomeAgentAction] = [.bindingInstalled(binding)]
            if let linkLocal, !existing.flags.contains(.linkLocal) { // §10.4.1: newly defended, announced
                actions.append(.sendUnsolicitedNA(homeAddress: r.hoa, linkLocal: linkLocal))
            }
            return actions + [acknowledge(r, status: .accepted, lifetime: units)]
        }

        // A new home address: room for it? (§10.3.1 allows rejecting with 130.)
        guard cache.count + pending.count < configuration.capacity, !cache.isFull else {
            logger.warning("binding cache full", metadata: metadata(r, lifetime: 0))
            return [reject(r, .insufficientResources)]
        }
        let now = clock.nanoseconds()
        if configuration.duplicateAddressDetection {
            // §10.3.1: DAD on the home link before the first BA for this home address.
            pending[r.hoa] = PendingRegistration(
                homeAddress: r.hoa, careOfAddress: r.coa, sequence: r.bu.sequence, flags: r.bu.flags,
                grantedUnits: units, route: r.route,
                deadline: now + UInt64(configuration.dadTimeout) * 1_000_000_000, auth: r.auth)
            counters.dadStarted += 1
            logOnce("DAD started for new registration", metadata(r, lifetime: UInt32(units) * 4))
            return [.startDAD(homeAddress: r.hoa, linkLocal: linkLocal)]
        }
        return install(PendingRegistration(homeAddress: r.hoa, careOfAddress: r.coa, sequence: r.bu.sequence,
                                           flags: r.bu.flags, grantedUnits: units, route: r.route, deadline: now,
                                           auth: r.auth))
    }

    /// Whether `linkLocal`, derived from `hoa`, is ours or already defended for another home
    /// address (bound, or waiting for DAD).
    private func linkLocalTaken(_ linkLocal: IPv6Address, for hoa: IPv6Address, localAddresses: Set<IPv6Address>) -> Bool {
        if localAddresses.contains(linkLocal) { return true }
        if let owner = cache.linkLocalOwner(linkLocal), owner != hoa { return true }
        guard configuration.homePrefix.length < 64 else { return false } // interface identifiers differ
        return pending.values.contains {
            $0.homeAddress != hoa && $0.flags.contains(.linkLocal) && $0.homeAddress.derivedLinkLocal == linkLocal
        }
    }

    // MARK: DAD

    /// Reports the DAD result for a home address `.startDAD` asked for. Unknown or withdrawn
    /// home addresses are ignored.
    public func dadFinished(homeAddress: IPv6Address, duplicate: Bool) -> [HomeAgentAction] {
        guard let waiting = pending.removeValue(forKey: homeAddress) else { return [] }
        let r = Request(bu: BindingUpdate(sequence: waiting.sequence, flags: waiting.flags, lifetime: waiting.grantedUnits),
                        hoa: waiting.homeAddress, coa: waiting.careOfAddress, route: waiting.route, auth: waiting.auth)
        if duplicate {
            // §10.3.1: DAD failed → reject the whole BU with 134.
            logger.info("DAD failed, registration rejected", metadata: metadata(r, lifetime: 0))
            return [reject(r, .duplicateAddressDetectionFailed)]
        }
        return install(waiting)
    }

    private func install(_ p: PendingRegistration) -> [HomeAgentAction] {
        let r = Request(bu: BindingUpdate(sequence: p.sequence, flags: p.flags, lifetime: p.grantedUnits),
                        hoa: p.homeAddress, coa: p.careOfAddress, route: p.route, auth: p.auth)
        let binding = makeBinding(p.homeAddress, p.careOfAddress, p.sequence, p.flags, p.grantedUnits)
        do {
            try cache.upsert(binding)
        } catch {
            return [dataPlaneFailure(r, error)]
        }
        counters.registrations += 1
        logOnce("binding registered", metadata(r, lifetime: binding.lifetime))
        let linkLocal = p.flags.contains(.linkLocal) ? p.homeAddress.derivedLinkLocal : nil
        return [.bindingInstalled(binding),
                .sendUnsolicitedNA(homeAddress: p.homeAddress, linkLocal: linkLocal),
                acknowledge(r, status: .accepted, lifetime: p.grantedUnits)]
    }

    private func makeBinding(_ hoa: IPv6Address, _ coa: IPv6Address, _ sequence: UInt16, _ flags: BUFlags,
                             _ units: UInt16) -> Binding {
        Binding(homeAddress: hoa, careOfAddress: coa, sequence: sequence, flags: flags,
                lifetime: UInt32(units) * 4, registeredAt: clock.nanoseconds())
    }

    // MARK: Expiry

    /// Removes expired bindings and gives up on registrations whose DAD result is overdue.
    public func expire() -> [HomeAgentAction] {
        let now = clock.nanoseconds()
        var actions: [HomeAgentAction] = []
        for (hoa, waiting) in pending where waiting.deadline <= now {
            pending[hoa] = nil
            counters.drops[.dadTimedOut, default: 0] += 1
            logger.warning("no DAD result in time, registration dropped",
                           metadata: ["mip6.hoa": "\(hoa)", "mip6.coa": "\(waiting.careOfAddress)",
                                      "mip6.seq": "\(waiting.sequence)"])
        }
        if let retry = expiryRetryAt, retry > now { return actions }
        expiryRetryAt = nil
        var expired: [Binding]
        do {
            expired = try cache.expire(now: now)
        } catch BindingCacheError.expiryInterrupted(let done, let underlying) {
            expired = done
            counters.dataPlaneErrors += 1
            expiryRetryAt = now + 1_000_000_000
            logger.error("data plane refused to remove an expired binding; retrying in 1 s",
                         metadata: ["mip6.error": "\(underlying)"])
        } catch {
            expired = []
            counters.dataPlaneErrors += 1
            expiryRetryAt = now + 1_000_000_000
            logger.error("binding expiry failed", metadata: ["mip6.error": "\(error)"])
        }
        for b in expired {
            counters.expirations += 1
            logger.info("binding expired", metadata: ["mip6.hoa": "\(b.homeAddress)", "mip6.coa": "\(b.careOfAddress)",
                                                      "mip6.seq": "\(b.sequence)"])
            actions.append(.bindingRemoved(b, reason: .expired))
        }
        return actions
    }

    // MARK: Replies

    /// A Binding Acknowledgement. RFC 6275 §10.3.1 and §10.3.2: the home agent returns one
    /// whatever the A flag says. K is never set (no IKE key management mobility here), nor R/P.
    /// When the Binding Update authenticated, so does the BA (RFC 4285 §5.1): MN-ID, Replay
    /// Protection (the BU's timestamp, or ours with 144) and the MN-HA option last.
    private func acknowledge(_ r: Request, status: BAStatus, sequence: UInt16? = nil, lifetime: UInt16) -> HomeAgentAction {
        let ba = BindingAcknowledgement(status: status, flags: [], sequence: sequence ?? r.bu.sequence, lifetime: lifetime)
        counters.acksByStatus[status.rawValue, default: 0] += 1
        let packet: [UInt8]
        var note = ""
        // The BA has no L flag (§6.1.8); an accepted L registration says what it defends here.
        if status == .accepted, lifetime > 0, r.bu.flags.contains(.linkLocal) {
            note = ", link-local \(r.hoa.derivedLinkLocal) defended too"
        }
        if let auth = r.auth {
            packet = PacketBuilder.bindingAcknowledgement(
                ba, from: r.route.from, to: r.route.to, homeAddress: r.route.routingHeaderHomeAddress,
                hopLimit: configuration.hopLimit,
                authentication: MNHASeal(association: auth.association, timestamp: auth.timestamp,
                                         careOf: auth.careOf, homeAddress: r.hoa))
            note += " (MN-HA SPI \(auth.association.spi))"
        } else {
            packet = PacketBuilder.bindingAcknowledgement(ba, from: r.route.from, to: r.route.to,
                                                          homeAddress: r.route.routingHeaderHomeAddress,
                                                          hopLimit: configuration.hopLimit)
        }
        return .send(packet: packet,
                     description: "BA status \(status) seq \(ba.sequence) lifetime \(UInt32(lifetime) * 4)s to \(r.route.to) for \(r.hoa)\(note)")
    }

    private func reject(_ r: Request, _ status: BAStatus, sequence: UInt16? = nil) -> HomeAgentAction {
        logOnce("binding update rejected with status \(status.rawValue)",
                metadata(r, lifetime: 0).merging(["mip6.status": "\(status.rawValue)"]) { $1 })
        // §6.1.8: the lifetime of a rejection is undefined; send 0.
        return acknowledge(r, status: status, sequence: sequence, lifetime: 0)
    }

    /// The data plane refused a binding it had staged (a batched map write failed after the BU
    /// was answered in memory). The daemon withholds the BA, so the mobile node retransmits
    /// (RFC 6275 §11.8); here the cache goes back to what the maps still hold, `previous`
    /// (the binding before this BU, which keeps forwarding; nil for a new home address), and
    /// the acceptance is taken off the counters.
    public func dataPlaneWriteFailed(homeAddress hoa: IPv6Address, previous: Binding?, error: any Error) {
        takeBack(hoa, previous: previous)
        logger.error("the data plane refused the binding: its BA is withheld, the previous binding stays", metadata: [
            "mip6.hoa": "\(hoa)", "mip6.previous_coa": "\(previous.map { "\($0.careOfAddress)" } ?? "none")",
            "mip6.error": "\(error)",
        ])
    }

    /// The shared binding store did not take a binding accepted in memory (another replica
    /// wrote the key first, or the store did not answer): as a refused map write, logged
    /// once per kind (a conflict storm must not become a log flood).
    public func storeWriteFailed(homeAddress hoa: IPv6Address, previous: Binding?, reason: String) {
        takeBack(hoa, previous: previous)
        // Never committed, so never accepted anywhere: the BU's timestamp goes too, or the same
        // BU judged again on the store's state (a conflict) would look like its own replay.
        lastTimestamps[hoa] = timestampsBefore.removeValue(forKey: hoa)
        logOnce("binding not committed to the store (\(reason)): its BA is withheld", [
            "mip6.hoa": "\(hoa)", "mip6.previous_coa": "\(previous.map { "\($0.careOfAddress)" } ?? "none")"])
    }

    private func takeBack(_ hoa: IPv6Address, previous: Binding?) {
        cache.revert(hoa, to: previous)
        counters.dataPlaneErrors += 1
        if let n = counters.acksByStatus[BAStatus.accepted.rawValue], n > 0 { counters.acksByStatus[BAStatus.accepted.rawValue] = n - 1 }
        if previous == nil {
            if counters.registrations > 0 { counters.registrations -= 1 }
        } else if counters.refreshes > 0 {
            counters.refreshes -= 1
        }
    }

    /// The first event of each kind at info (saying the rest are counted), later ones at debug.
    /// `meta` is built only if the line is logged: at 10,000 BUs a second the four address
    /// and number strings of each were a measurable share of a replica's CPU.
    private func logOnce(_ event: String, _ meta: @autoclosure () -> Logger.Metadata) {
        if loggedEvents.insert(event).inserted {
            logger.info("\(event) (first of its kind; further ones are logged at debug and counted: mip6 stats)", metadata: meta())
        } else {
            logger.debug("\(event)", metadata: meta())
        }
    }

    private func dataPlaneFailure(_ r: Request, _ error: any Error) -> HomeAgentAction {
        counters.dataPlaneErrors += 1
        var meta = metadata(r, lifetime: 0)
        meta["mip6.error"] = "\(error)"
        logger.error("data plane write failed, answering 130", metadata: meta)
        return reject(r, .insufficientResources)
    }

    /// RFC 6275 §9.3.3: Binding Error to the source of the offending packet, rate limited, with
    /// the home address from its Home Address option (else unspecified).
    private func bindingError(status: UInt8, for packet: MobilityPacket, note: String) -> [HomeAgentAction] {
        guard packet.source.isUnicastRoutable || packet.source.isLinkLocal else {
            drop(.invalidSourceAddress, "\(note) from \(packet.source)")
            return []
        }
        guard errorBucket.take(now: clock.nanoseconds()) else {
            drop(.errorRateLimited, note)
            return []
        }
        let be = BindingError(status: status, homeAddress: packet.homeAddressOption ?? .unspecified)
        counters.bindingErrorsSent += 1
        logger.debug("sending Binding Error", metadata: ["mip6.status": "\(status)", "mip6.peer": "\(packet.source)"])
        return [.send(packet: PacketBuilder.bindingError(be, from: packet.finalDestination, to: packet.source,
                                                          hopLimit: configuration.hopLimit),
                      description: "BE status \(status) (\(note)) to \(packet.source)")]
    }

    private func parameterProblem(for packet: MobilityPacket, original: [UInt8], error: MHDecodeError) -> [HomeAgentAction] {
        // RFC 4443 §2.4(e): no ICMP errors to multicast or unspecified sources.
        guard configuration.sendParameterProblem, let field = error.fieldOffset,
              !packet.source.isMulticast, !packet.source.isUnspecified
        else { return [] }
        guard errorBucket.take(now: clock.nanoseconds()) else {
            counters.drops[.errorRateLimited, default: 0] += 1
            return []
        }
        counters.parameterProblemsSent += 1
        let pointer = UInt32(packet.mhOffset + field)
        return [.send(packet: PacketBuilder.parameterProblem(code: 0, pointer: pointer, invoking: original,
                                                             from: packet.finalDestination, to: packet.source,
                                                             hopLimit: configuration.hopLimit),
                      description: "ICMPv6 Parameter Problem pointer \(pointer) (\(error)) to \(packet.source)")]
    }

    // MARK: Bookkeeping

    private func drop(_ reason: DropReason, _ detail: @autoclosure () -> String) {
        counters.drops[reason, default: 0] += 1
        // Counters, not per-packet logs: only the first drop of each reason is logged,
        // so an operator sees what kind of junk arrives and a flood cannot flood the log.
        if counters.drops[reason] == 1 {
            logger.notice("first packet dropped for this reason (further ones are only counted: mip6 stats)",
                          metadata: ["mip6.drop": "\(reason.rawValue)", "mip6.detail": "\(detail())"])
        }
    }

    private func metadata(_ r: Request, lifetime: UInt32) -> Logger.Metadata {
        var meta: Logger.Metadata = ["mip6.hoa": "\(r.hoa)", "mip6.coa": "\(r.coa)", "mip6.seq": "\(r.bu.sequence)",
                                     "mip6.lifetime": "\(lifetime)"]
        if r.bu.flags.contains(.linkLocal) { meta["mip6.link_local"] = "\(r.hoa.derivedLinkLocal)" }
        return meta
    }
}

/// Token bucket: `perSecond` tokens a second, bursts of up to `perSecond`.
struct TokenBucket {
    let perSecond: UInt64
    private(set) var tokens: UInt64
    private var last: UInt64

    init(perSecond: UInt64, now: UInt64) {
        self.perSecond = perSecond
        self.tokens = perSecond
        self.last = now
    }

    mutating func take(now: UInt64) -> Bool {
        guard perSecond > 0 else { return false }
        let interval = 1_000_000_000 / perSecond
        if now > last {
            let refill = (now - last) / max(interval, 1)
            if refill > 0 {
                tokens = min(perSecond, tokens + refill)
                last = tokens == perSecond ? now : last + refill * interval
            }
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
