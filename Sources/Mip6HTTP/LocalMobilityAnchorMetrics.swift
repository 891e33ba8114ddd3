import Prometheus

/// Everything the local mobility anchor's `/metrics` shows except the PBA latency histogram,
/// as cumulative totals from the control plane's counters and the LMA's BPF maps (read at
/// scrape time). Keys are the names `mip6 lma status` prints.
public struct LocalMobilityAnchorMetricsSnapshot: Sendable, Equatable {
    /// Binding cache entries forwarding now.
    public var activeBindings: Int
    /// Entries de-registered by their MAG and kept for MinDelayBeforeBCEDelete (no forwarding).
    public var deregisteredBindings: Int
    /// Mobile nodes and MAGs of the policy in force.
    public var policyMobileNodes: Int
    public var policyMAGs: Int
    /// Proxy Binding Updates that decoded correctly (every one is answered with a PBA).
    public var proxyBindingUpdates: UInt64
    /// PBAs sent, by RFC 5213 / RFC 6275 status code.
    public var acksByStatus: [UInt8: UInt64]
    /// Signaling the control plane discarded without an answer, by reason ("malformed",
    /// "malformed_mh", "not_proxy", "not_for_us", "not_binding_update").
    public var signalingDrops: [String: UInt64]
    /// Other control-plane events (registrations, handoffs, refreshes, de-registrations,
    /// expirations, send_failures, punts_malformed, ...), by name.
    public var controlPlaneEvents: [String: UInt64]
    /// Data-plane counters by name (`mip6_shared.h` MIP6_LMA_COUNTERS: "encap", "decap", "mh_punt", ...).
    public var dataPlane: [String: UInt64]

    public init(activeBindings: Int = 0, deregisteredBindings: Int = 0, policyMobileNodes: Int = 0, policyMAGs: Int = 0,
                proxyBindingUpdates: UInt64 = 0, acksByStatus: [UInt8: UInt64] = [:], signalingDrops: [String: UInt64] = [:],
                controlPlaneEvents: [String: UInt64] = [:], dataPlane: [String: UInt64] = [:]) {
        self.activeBindings = activeBindings
        self.deregisteredBindings = deregisteredBindings
        self.policyMobileNodes = policyMobileNodes
        self.policyMAGs = policyMAGs
        self.proxyBindingUpdates = proxyBindingUpdates
        self.acksByStatus = acksByStatus
        self.signalingDrops = signalingDrops
        self.controlPlaneEvents = controlPlaneEvents
        self.dataPlane = dataPlane
    }
}

/// The local mobility anchor's Prometheus metrics (`mip6 lma --http-listen`), named as the
/// home agent's (`HomeAgentMetrics`) with an `mip6_lma_` prefix, so one Prometheus can scrape
/// both without a clash. Counters follow cumulative totals (a source that went back to zero,
/// a re-created map, counts as a reset and the exported counter stays monotonic). There is
/// no per-binding series: the label sets are bounded by the status codes, the drop reasons
/// and the data-plane counters, whatever the number of mobile nodes.
public final class LocalMobilityAnchorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// The home agent's buckets (10 µs .. 100 ms) and 0.25, 0.5, 1 s: a PBU that waited in
    /// the punt ring for more than the 300 ms TimestampValidityWindow (RFC 5213 §5.5) was
    /// answered 156, and this shows how close the queue comes to it.
    public static let ackLatencyBuckets: [Double] = HomeAgentMetrics.ackLatencyBuckets + [0.25, 0.5, 1]

    private let bindingsActive: Gauge
    private let bindingsDeregistered: Gauge
    private let policyNodes: Gauge
    private let policyMAGs: Gauge
    private let ackLatency: ValueHistogram
    private let cumulative: Locked<Cumulative>

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let bindings = metric("mip6_lma_bindings",
                              "Binding cache entries, by state: active (forwarding) or deregistered (kept for MinDelayBeforeBCEDelete).")
        bindingsActive = registry.makeGauge(descriptor: bindings, labels: [("state", "active")])
        bindingsDeregistered = registry.makeGauge(descriptor: bindings, labels: [("state", "deregistered")])
        policyNodes = registry.makeGauge(descriptor: metric("mip6_lma_policy_mobile_nodes", "Mobile nodes in the policy in force."))
        policyMAGs = registry.makeGauge(descriptor: metric("mip6_lma_policy_mags", "MAGs the policy in force accepts PBUs from."))
        ackLatency = registry.makeValueHistogram(
            descriptor: metric("mip6_lma_pba_latency_seconds",
                               "Time from a Proxy Binding Update leaving the data plane to its Proxy Binding Acknowledgement being sent."),
            buckets: Self.ackLatencyBuckets)
        cumulative = Locked(Cumulative(registry: registry))
    }

    /// Records one PBU → PBA turnaround.
    public func observeAckLatency(seconds: Double) { ackLatency.record(seconds) }

    /// Brings every series to `snapshot`'s totals. Calls are serialized; rendering may run
    /// concurrently and sees each series either before or after.
    public func update(_ snapshot: LocalMobilityAnchorMetricsSnapshot) {
        bindingsActive.set(Double(snapshot.activeBindings))
        bindingsDeregistered.set(Double(snapshot.deregisteredBindings))
        policyNodes.set(Double(snapshot.policyMobileNodes))
        policyMAGs.set(Double(snapshot.policyMAGs))
        cumulative.withLock { c in
            c.set(Family.pbus, [], snapshot.proxyBindingUpdates)
            for (status, n) in snapshot.acksByStatus {
                // RFC 6275 §6.1.8: below 128 the (P)BU was accepted.
                c.set(Family.acks, [("status", String(status)), ("result", status < 128 ? "accepted" : "rejected")], n)
            }
            for (reason, n) in snapshot.signalingDrops { c.set(Family.signalingDrops, [("reason", reason)], n) }
            for (event, n) in snapshot.controlPlaneEvents { c.set(Family.controlPlaneEvents, [("event", event)], n) }
            for (reason, n) in snapshot.dataPlane { c.set(Family.dataPlane, [("reason", reason)], n) }
            c.set(Family.puntsRateLimited, [("scope", "global")], snapshot.dataPlane["drop_punt_rate_limited"] ?? 0)
            c.set(Family.puntsRateLimited, [("scope", "mag")], snapshot.dataPlane["drop_punt_mag_rate_limited"] ?? 0)
        }
    }

    /// Prometheus text exposition format (version 0.0.4).
    public func render() -> String { registry.emitToString() }

    enum Family {
        static let pbus = ("mip6_lma_proxy_binding_updates_total",
                           "Proxy Binding Updates received that decoded correctly (each is answered with a PBA).")
        static let acks = ("mip6_lma_proxy_binding_acks_total",
                           "Proxy Binding Acknowledgements sent, by status code (RFC 5213 §8.9); result=accepted for status below 128.")
        static let signalingDrops = ("mip6_lma_signaling_dropped_total",
                                     "Signaling packets the control plane discarded without an answer, by reason.")
        static let controlPlaneEvents = ("mip6_lma_controlplane_events_total",
                                         "Control-plane events (registrations, handoffs, expirations, send failures, malformed punts, ...), by event.")
        static let dataPlane = ("mip6_lma_dataplane_packets_total", "Data-plane (TC) packet counters of the LMA program, by reason.")
        static let puntsRateLimited = ("mip6_lma_punts_rate_limited_total",
                                       "Signaling the data plane dropped instead of punting it to the control plane, "
                                       + "over the global rate (scope=global) or one MAG's rate (scope=mag).")
    }
}
