import Logging

/// The local mobility anchor's settings (RFC 5213 §9 configuration variables).
public struct LocalMobilityAnchorConfiguration: Sendable {
    /// The LMA address PBUs are sent to (and PBAs come from).
    public var address: IPv6Address
    /// Longest lifetime granted, seconds.
    public var maxLifetime: UInt32
    /// Most binding cache entries (one per mobile node).
    public var capacity: Int
    /// TimestampValidityWindow (RFC 5213 §9.1): how far a PBU's Timestamp may be from our clock.
    public var timestampWindowMs: Int64
    /// MinDelayBeforeBCEDelete (§9.1): how long a de-registered entry is kept (no forwarding)
    /// so that the next MAG's PBU finds it and the prefix stays the mobile node's.
    public var minDelayBeforeDeleteNs: UInt64
    public var hopLimit: UInt8

    public init(address: IPv6Address, maxLifetime: UInt32 = 3600, capacity: Int = 1 << 20, timestampWindowMs: Int64 = 300,
                minDelayBeforeDeleteNs: UInt64 = 10_000_000_000, hopLimit: UInt8 = 64) {
        self.address = address
        self.maxLifetime = maxLifetime
        self.capacity = capacity
        self.timestampWindowMs = timestampWindowMs
        self.minDelayBeforeDeleteNs = minDelayBeforeDeleteNs
        self.hopLimit = hopLimit
    }

    var maxLifetimeUnits: UInt16 { UInt16(min(maxLifetime / 4, UInt32(UInt16.max))) }
}

/// A binding cache entry of the LMA (RFC 5213 §5.1): one mobile node, its home network
/// prefixes, the MAG it is attached through.
public struct ProxyBinding: Sendable, Equatable, Codable {
    /// The MN-Identifier (NAI): the entry's identity.
    public var identifier: String
    /// Its home network prefixes (/64s): what the data plane is keyed by.
    public var prefixes: [IPv6Prefix]
    /// The MAG's Proxy-CoA: the tunnel's far end.
    public var proxyCareOf: IPv6Address
    public var linkLayerIdentifier: [UInt8]?
    public var accessTechnology: UInt8
    public var handoffIndicator: UInt8
    public var sequence: UInt16
    /// The Timestamp of the last accepted PBU (RFC 5213 §5.5: the next must be newer).
    public var timestamp: ProxyTimestamp
    /// Granted lifetime, seconds.
    public var lifetime: UInt32
    /// Monotonic (CLOCK_MONOTONIC) nanoseconds.
    public var registeredAt: UInt64
    public var expiresAt: UInt64
    /// Set when the serving MAG de-registered it: forwarding stopped, entry kept until
    /// `deregisteredAt + MinDelayBeforeBCEDelete` (§5.3.5).
    public var deregisteredAt: UInt64?

    public var isActive: Bool { deregisteredAt == nil }
}

/// Where the LMA's bindings are forwarded from: every prefix of an active binding tunneled to
/// its MAG. Written before the PBA leaves; a failure refuses the PBU (130) and leaves the
/// previous state in place.
public protocol ProxyBindingDataPlane: AnyObject {
    /// Adds or replaces the entries of `binding`'s prefixes (and removes `previous`'s that it
    /// no longer has).
    func install(_ binding: ProxyBinding, previous: ProxyBinding?) throws
    func remove(_ binding: ProxyBinding) throws
}

public enum LocalMobilityAnchorAction: Equatable, Sendable {
    /// Send this IPv6 packet (a PBA).
    case send([UInt8], description: String)
    /// The binding is in the data plane (new, refreshed, moved to another MAG).
    case installed(ProxyBinding)
    /// The binding left the data plane (de-registered: kept a while without forwarding; or
    /// deleted: expired, or its de-registration delay ran out).
    case removed(ProxyBinding, reason: RemovalReason)
}

public struct LocalMobilityAnchorCounters: Sendable, Equatable, Codable {
    public var proxyBindingUpdates: UInt64 = 0
    public var acksByStatus: [UInt8: UInt64] = [:]
    public var registrations: UInt64 = 0
    public var handoffs: UInt64 = 0
    public var refreshes: UInt64 = 0
    public var deregistrations: UInt64 = 0
    /// De-registrations from a MAG that no longer serves the mobile node: answered, no change.
    public var staleDeregistrations: UInt64 = 0
    public var expirations: UInt64 = 0
    public var prefixesAssigned: UInt64 = 0
    /// PBUs refused (130) because no pool prefix was free.
    public var poolExhausted: UInt64 = 0
    /// Pool prefixes a node named without an entry here (assigned before a restart), taken back.
    public var poolReclaims: UInt64 = 0
    public var dataPlaneErrors: UInt64 = 0
    /// Packets dropped without a PBA, by reason.
    public var drops: [String: UInt64] = [:]
    public init() {}

    /// The event counters by the names `mip6 lma status` and `/metrics` use.
    public var events: [String: UInt64] {
        ["registrations": registrations, "handoffs": handoffs, "refreshes": refreshes, "deregistrations": deregistrations,
         "stale_deregistrations": staleDeregistrations, "expirations": expirations, "prefixes_assigned": prefixesAssigned,
         "pool_exhausted": poolExhausted, "pool_reclaims": poolReclaims, "dataplane_errors": dataPlaneErrors]
    }
}

/// The LMA's protocol logic (RFC 5213 §5), kernel-free: packets in, actions out.
public final class LocalMobilityAnchorCore {
    public private(set) var configuration: LocalMobilityAnchorConfiguration
    public private(set) var policy: ProxyPolicy
    public private(set) var counters = LocalMobilityAnchorCounters()
    private let dataPlane: ProxyBindingDataPlane
    private let clock: MonotonicClock
    private let wallClock: any WallClock
    private let logger: Logger
    private var bindings: [String: ProxyBinding] = [:]
    /// Prefix address -> identifier: which entry a prefix belongs to (pool assignments included).
    private var owners: [IPv6Address: String] = [:]
    /// Deadlines keyed by each entry's first prefix address (unique per entry).
    private var heap = ExpiryHeap<IPv6Address>()
    private var poolCursor: UInt64 = 0

    public init(configuration: LocalMobilityAnchorConfiguration, policy: ProxyPolicy, dataPlane: ProxyBindingDataPlane,
                clock: MonotonicClock, wallClock: any WallClock = SystemWallClock(), logger: Logger) {
        self.configuration = configuration
        self.policy = policy
        self.dataPlane = dataPlane
        self.clock = clock
        self.wallClock = wallClock
        self.logger = logger
        reserve()
    }

    /// Room for a binding per node of the policy (a node has one binding at most), so that no
    /// dictionary grows under a burst of PBUs: at 200,000 entries a growth stalls the loop
    /// for about 100 ms, and PBUs whose Timestamp ages past the 300 ms window meanwhile would
    /// be refused with 156.
    private func reserve() {
        let n = min(configuration.capacity, policy.mobileNodes.count)
        bindings.reserveCapacity(n)
        owners.reserveCapacity(n + policy.mobileNodes.reduce(0) { $0 + max(0, $1.prefixes.count - 1) })
    }

    public subscript(identifier: String) -> ProxyBinding? { bindings[identifier] }
    public func binding(prefix: IPv6Prefix) -> ProxyBinding? { owners[prefix.address].flatMap { bindings[$0] } }
    public var all: [ProxyBinding] { bindings.values.sorted { $0.identifier < $1.identifier } }
    /// Every entry, unsorted: one copy, for a caller that sorts elsewhere.
    public var snapshot: [ProxyBinding] { Array(bindings.values) }
    public var count: Int { bindings.count }
    /// Entries de-registered by their serving MAG, kept without forwarding (§5.3.5).
    public private(set) var deregisteredCount = 0
    /// Entries forwarding now.
    public var activeCount: Int { bindings.count - deregisteredCount }

    /// A new policy (SIGHUP). Existing bindings stay until they are refreshed or expire: a
    /// mobile node taken out of the policy is refused at its next PBU (152).
    public func replacePolicy(_ p: ProxyPolicy) {
        policy = p
        reserve()
    }

    // MARK: Packets

    public func handlePacket(_ ipv6Packet: [UInt8]) -> [LocalMobilityAnchorAction] {
        let packet: MobilityPacket
        do { packet = try IPv6PacketParser.parseMobility(ipv6Packet) } catch { return drop("malformed") }
        // RFC 5213 §6.9.1.5: no Home Address option, no routing header in a PBU.
        guard packet.homeAddressOption == nil, packet.routingType2Address == nil else { return drop("not_proxy") }
        guard packet.destination == configuration.address else { return drop("not_for_us") }
        let message: MobilityMessage
        do {
            message = try MobilityHeaderCodec.decode(packet.mh, source: packet.checksumSource, destination: packet.checksumDestination)
        } catch { return drop("malformed_mh") } // RFC 6275 §9.2: silently discarded
        guard case let .bindingUpdate(pbu) = message else { return drop("not_binding_update") }
        guard pbu.isProxy else { return drop("not_proxy") }
        return handle(pbu, from: packet.source)
    }

    /// RFC 5213 §5.3.1: the checks in order, then the binding cache update, then the PBA.
    public func handle(_ pbu: BindingUpdate, from mag: IPv6Address) -> [LocalMobilityAnchorAction] {
        counters.proxyBindingUpdates += 1
        let now = clock.nanoseconds()
        let o = pbu.proxyOptions
        func reject(_ status: BAStatus, timestamp: ProxyTimestamp? = nil) -> [LocalMobilityAnchorAction] {
            [acknowledge(pbu, o, status: status, lifetime: 0, prefixes: o.homeNetworkPrefixes, to: mag,
                         timestamp: timestamp ?? o.timestamps.first)]
        }
        // §5.3.1 item 3: only MAGs the policy trusts.
        guard policy.mags.contains(mag) else { return reject(.magNotAuthorizedForProxyRegistration) }
        // Mandatory options (§5.3.1 items 4-6, §8.1).
        guard let identifier = o.networkAccessIdentifier else { return reject(.missingMNIdentifierOption) }
        guard !o.homeNetworkPrefixes.isEmpty else { return reject(.missingHomeNetworkPrefixOption) }
        guard o.handoffIndicators.count == 1 else { return reject(.missingHandoffIndicatorOption) }
        guard o.accessTechnologyTypes.count == 1 else { return reject(.missingAccessTechTypeOption) }
        // The policy profile (§5.3.1 item 7): known and ours.
        guard let node = policy.node(identifier: identifier) else { return reject(.proxyRegistrationNotEnabled) }
        if let lma = node.lma, lma != configuration.address { return reject(.notLMAForThisMobileNode) }

        let existing = bindings[identifier]
        // §5.5 timestamp approach: within TimestampValidityWindow of our clock, else 156 with
        // our time in the PBA so the MAG can tell its clock is off.
        let ours = ProxyTimestamp.now(wallClock)
        guard o.timestamps.count == 1, let stamp = o.timestamps.first,
              abs(stamp.milliseconds(since: ours)) <= configuration.timestampWindowMs else {
            return reject(.timestampMismatch, timestamp: ours)
        }

        // §5.3.5: a de-registration from a MAG that no longer serves the node (it moved and
        // the new MAG registered first) is answered and changes nothing.
        if pbu.lifetime == 0, let existing, existing.proxyCareOf != mag || !existing.isActive {
            counters.staleDeregistrations += 1
            return [acknowledge(pbu, o, status: .accepted, lifetime: 0, prefixes: existing.prefixes, to: mag, timestamp: stamp)]
        }

        // Prefixes: all-zero asks for the node's prefixes; specific ones must be its own.
        let requested = o.homeNetworkPrefixes
        let asksAssignment = requested.allSatisfy { $0.length == 0 && $0.address == .unspecified }
        var prefixes: [IPv6Prefix]
        var reclaimed: UInt64 = 0 // pool prefixes named without an entry here (counted once bound)
        if asksAssignment {
            prefixes = existing?.prefixes ?? node.prefixes
        } else {
            guard requested.allSatisfy({ p in
                guard p.length == 64 else { return false }
                if node.prefixes.contains(p) || existing?.prefixes.contains(p) == true { return true }
                guard mayReclaim(p, node: node, existing: existing) else { return false }
                reclaimed += 1
                return true
            }) else {
                return reject(.notAuthorizedForHomeNetworkPrefix)
            }
            // §5.4.1.2: a PBU for an existing entry must name the same prefix set.
            if let existing, Set(existing.prefixes) != Set(requested) { return reject(.bcePBUPrefixSetDoNotMatch) }
            prefixes = requested
        }
        // §5.5: a replayed or reordered PBU.
        if let existing, stamp <= existing.timestamp { return reject(.timestampLowerThanPreviousAccepted) }

        if pbu.lifetime == 0 {
            // §5.3.5: the serving MAG de-registers. Stop forwarding now, keep the entry (and its
            // prefixes) for MinDelayBeforeBCEDelete.
            guard var b = existing else {
                return [acknowledge(pbu, o, status: .accepted, lifetime: 0, prefixes: requested, to: mag, timestamp: stamp)]
            }
            do { try dataPlane.remove(b) } catch {
                counters.dataPlaneErrors += 1
                logger.error("cannot remove a proxy binding from the data plane", metadata: ["mip6.nai": "\(identifier)", "mip6.error": "\(error)"])
                return reject(.insufficientResources)
            }
            b.deregisteredAt = now
            deregisteredCount += 1
            b.sequence = pbu.sequence
            b.timestamp = stamp
            bindings[identifier] = b
            schedule(b)
            counters.deregistrations += 1
            return [.removed(b, reason: .deregistered),
                    acknowledge(pbu, o, status: .accepted, lifetime: 0, prefixes: b.prefixes, to: mag, timestamp: stamp)]
        }

        if prefixes.isEmpty { // a pool node's first registration
            guard let p = assignFromPool() else {
                counters.poolExhausted += 1
                if counters.poolExhausted == 1 { // the first; the rest are counted
                    logger.warning("no prefix to assign: the pool is exhausted or not configured", metadata: ["mip6.nai": "\(identifier)"])
                }
                return reject(.insufficientResources)
            }
            prefixes = [p]
        }
        if existing == nil && bindings.count >= configuration.capacity { return reject(.insufficientResources) }

        let units = min(pbu.lifetime, configuration.maxLifetimeUnits)
        let lifetime = UInt32(units) * 4
        let b = ProxyBinding(identifier: identifier, prefixes: prefixes, proxyCareOf: mag,
                             linkLayerIdentifier: o.linkLayerIdentifiers.first, accessTechnology: o.accessTechnologyTypes[0],
                             handoffIndicator: o.handoffIndicators[0], sequence: pbu.sequence, timestamp: stamp,
                             lifetime: lifetime, registeredAt: existing?.registeredAt ?? now,
                             expiresAt: now + UInt64(lifetime) * 1_000_000_000, deregisteredAt: nil)
        do { try dataPlane.install(b, previous: existing?.isActive == true ? existing : nil) } catch {
            counters.dataPlaneErrors += 1
            logger.error("cannot write a proxy binding to the data plane", metadata: ["mip6.nai": "\(identifier)", "mip6.error": "\(error)"])
            return reject(.insufficientResources)
        }
        if existing?.isActive == false { deregisteredCount -= 1 }
        if existing == nil {
            counters.registrations += 1
            counters.poolReclaims += reclaimed
            if node.prefixes.isEmpty { counters.prefixesAssigned += 1 }
        } else if existing?.proxyCareOf != mag || existing?.isActive == false {
            counters.handoffs += 1
        } else {
            counters.refreshes += 1
        }
        bindings[identifier] = b
        for p in prefixes { owners[p.address] = identifier }
        schedule(b)
        return [.installed(b), acknowledge(pbu, o, status: .accepted, lifetime: units, prefixes: prefixes, to: mag, timestamp: stamp)]
    }

    /// RFC 5213 §5.3.6: the PBA mirrors the PBU's options, with the prefixes as assigned.
    private func acknowledge(_ pbu: BindingUpdate, _ o: ProxyOptions, status: BAStatus, lifetime: UInt16, prefixes: [IPv6Prefix],
                             to mag: IPv6Address, timestamp: ProxyTimestamp?) -> LocalMobilityAnchorAction {
        counters.acksByStatus[status.rawValue, default: 0] += 1
        var options: [MobilityOption] = o.mobileNodeIdentifiers.prefix(1).map { .mobileNodeIdentifier(subtype: $0.subtype, identifier: $0.identifier) }
        options += prefixes.map { .homeNetworkPrefix($0) }
        options += o.handoffIndicators.prefix(1).map { .handoffIndicator($0) }
        options += o.accessTechnologyTypes.prefix(1).map { .accessTechnologyType($0) }
        options += o.linkLayerIdentifiers.prefix(1).map { .mobileNodeLinkLayerIdentifier($0) }
        options += o.linkLocalAddresses.prefix(1).map { .linkLocalAddress($0) }
        if let timestamp { options.append(.timestamp(timestamp)) }
        let pba = BindingAcknowledgement(status: status, flags: [.proxy], sequence: pbu.sequence, lifetime: lifetime, options: options)
        return .send(PacketBuilder.proxyBindingAcknowledgement(pba, from: configuration.address, to: mag, hopLimit: configuration.hopLimit),
                     description: "PBA \(status) seq \(pbu.sequence)")
    }

    private func drop(_ reason: String) -> [LocalMobilityAnchorAction] {
        counters.drops[reason, default: 0] += 1
        return []
    }

    // MARK: Prefix pool

    /// A pool node with no entry here naming a free /64 of the pool: the prefix an LMA
    /// assigned it before it restarted (its MAG refreshes with the prefix it was given). Taking
    /// it back keeps the host's addresses; refusing it (155) would cut the host off.
    private func mayReclaim(_ p: IPv6Prefix, node: ProxyPolicy.MobileNode, existing: ProxyBinding?) -> Bool {
        guard existing == nil, node.prefixes.isEmpty, let pool = policy.pool else { return false }
        return pool.contains(p.address) && owners[p.address] == nil && policy.node(prefix: p) == nil
    }

    /// The next free /64 of the pool, round robin (a prefix freed a moment ago is the last to
    /// be handed out again: traffic still in flight to it reaches nobody else).
    private func assignFromPool() -> IPv6Prefix? {
        guard let pool = policy.pool else { return nil }
        let bits = 64 - pool.length
        let size: UInt64 = bits >= 64 ? .max : 1 << UInt64(bits)
        var tries: UInt64 = 0
        while tries < min(size, 1 << 20) {
            let index = poolCursor % size
            poolCursor &+= 1
            tries += 1
            let address = IPv6Address(high: pool.address.high | index, low: 0)
            if let p = IPv6Prefix(address: address, length: 64), owners[address] == nil, policy.node(prefix: p) == nil {
                return p
            }
        }
        return nil
    }

    // MARK: Time

    private func deadline(_ b: ProxyBinding) -> UInt64 {
        b.deregisteredAt.map { $0 + configuration.minDelayBeforeDeleteNs } ?? b.expiresAt
    }

    private func schedule(_ b: ProxyBinding) {
        heap.push(ExpiryHeap.Entry(expiresAt: deadline(b), key: b.prefixes[0].address))
        if heap.count > 2 * bindings.count + 1024 {
            heap = ExpiryHeap(bindings.values.map { ExpiryHeap.Entry(expiresAt: deadline($0), key: $0.prefixes[0].address) })
        }
    }

    /// The earliest time `expire()` has something to do.
    public var nextDeadline: UInt64? {
        while let top = heap.top {
            if let id = owners[top.key], let b = bindings[id], b.prefixes[0].address == top.key,
               deadline(b) == top.expiresAt { return top.expiresAt }
            heap.pop()
        }
        return nil
    }

    /// Deletes the entries whose lifetime ran out (out of the data plane first) and the
    /// de-registered ones whose MinDelayBeforeBCEDelete passed.
    public func expire() -> [LocalMobilityAnchorAction] {
        let now = clock.nanoseconds()
        var actions: [LocalMobilityAnchorAction] = []
        while let top = heap.top, top.expiresAt <= now {
            heap.pop()
            guard let id = owners[top.key], let b = bindings[id], b.prefixes[0].address == top.key,
                  deadline(b) == top.expiresAt else { continue }
            if b.isActive {
                do { try dataPlane.remove(b) } catch {
                    counters.dataPlaneErrors += 1
                    logger.error("cannot remove an expired proxy binding", metadata: ["mip6.nai": "\(id)", "mip6.error": "\(error)"])
                    heap.push(ExpiryHeap.Entry(expiresAt: now + 1_000_000_000, key: top.key))
                    bindings[id]?.expiresAt = now + 1_000_000_000 // try again in a second
                    continue
                }
                counters.expirations += 1
                actions.append(.removed(b, reason: .expired))
            } else {
                deregisteredCount -= 1
            }
            bindings[id] = nil
            for p in b.prefixes where owners[p.address] == id { owners[p.address] = nil }
        }
        return actions
    }
}
