import Prometheus

/// One binding's traffic counters, cumulative since the binding was created (the
/// `mip6_binding_stats` map entry). Directions as the data plane counts them.
public struct BindingTraffic: Sendable, Equatable {
    public var homeAddress: String
    /// Encapsulated towards the care-of address (inner bytes).
    public var toMobileNodePackets: UInt64
    public var toMobileNodeBytes: UInt64
    /// Decapsulated from the reverse tunnel (inner bytes).
    public var fromMobileNodePackets: UInt64
    public var fromMobileNodeBytes: UInt64

    public init(homeAddress: String, toMobileNodePackets: UInt64 = 0, toMobileNodeBytes: UInt64 = 0,
                fromMobileNodePackets: UInt64 = 0, fromMobileNodeBytes: UInt64 = 0) {
        self.homeAddress = homeAddress
        self.toMobileNodePackets = toMobileNodePackets
        self.toMobileNodeBytes = toMobileNodeBytes
        self.fromMobileNodePackets = fromMobileNodePackets
        self.fromMobileNodeBytes = fromMobileNodeBytes
    }

    /// What the top-N ranking sorts by.
    public var totalBytes: UInt64 { toMobileNodeBytes &+ fromMobileNodeBytes }

    var values: [UInt64] { [toMobileNodePackets, toMobileNodeBytes, fromMobileNodePackets, fromMobileNodeBytes] }
}

/// Everything `/metrics` shows except the BA latency histogram, as cumulative totals read from
/// the control plane's counters and the BPF maps. Keys are the names `mip6 stats` prints.
public struct HomeAgentMetricsSnapshot: Sendable, Equatable {
    /// Bindings in the cache now.
    public var bindings: Int
    /// Home addresses whose duplicate address detection is running.
    public var dadInProgress: Int
    /// Binding Updates that decoded correctly.
    public var bindingUpdates: UInt64
    /// Binding Acknowledgements sent, by RFC 6275 status code.
    public var acksByStatus: [UInt8: UInt64]
    /// Signaling the control plane discarded without an answer, by `DropReason` raw value.
    public var signalingDrops: [String: UInt64]
    /// Binding Updates refused by RFC 4285 authentication, by reason.
    public var authRefusals: [String: UInt64]
    /// Other control-plane events (registrations, refreshes, deregistrations, expirations,
    /// binding_errors_sent, send_failures, punts_malformed, ...), by name.
    public var controlPlaneEvents: [String: UInt64]
    /// Data-plane counters by name (`mip6_shared.h` MIP6_COUNTERS: "encap", "drop_malformed", ...).
    public var dataPlane: [String: UInt64]
    /// Signaling the data plane dropped instead of punting it: over the global rate
    /// (drop_punt_rate_limited) and over one source /64's rate (drop_punt_src_rate_limited).
    public var puntsRateLimited: UInt64
    public var puntsSourceRateLimited: UInt64
    /// Per-binding traffic; only the top N by bytes get their own series (see `HomeAgentMetrics`).
    public var bindingTraffic: [BindingTraffic]

    public init(bindings: Int = 0, dadInProgress: Int = 0, bindingUpdates: UInt64 = 0, acksByStatus: [UInt8: UInt64] = [:],
                signalingDrops: [String: UInt64] = [:], authRefusals: [String: UInt64] = [:],
                controlPlaneEvents: [String: UInt64] = [:], dataPlane: [String: UInt64] = [:],
                puntsRateLimited: UInt64 = 0, puntsSourceRateLimited: UInt64 = 0, bindingTraffic: [BindingTraffic] = []) {
        self.bindings = bindings
        self.dadInProgress = dadInProgress
        self.bindingUpdates = bindingUpdates
        self.acksByStatus = acksByStatus
        self.signalingDrops = signalingDrops
        self.authRefusals = authRefusals
        self.controlPlaneEvents = controlPlaneEvents
        self.dataPlane = dataPlane
        self.puntsRateLimited = puntsRateLimited
        self.puntsSourceRateLimited = puntsSourceRateLimited
        self.bindingTraffic = bindingTraffic
    }
}

/// The home agent's Prometheus metrics, kept in a `PrometheusCollectorRegistry` and rendered by it.
///
/// **Counters from cumulative totals.** The sources (BPF per-CPU arrays, the core's counters)
/// are cumulative, Prometheus counters only go up: `update(_:)` adds the difference from the
/// previous snapshot. A total lower than last time means its source was reset (map re-created,
/// binding removed and registered again): the new total is added as the increase since the
/// reset, so the exported counter stays monotonic and `rate()` stays right.
///
/// **Bounded per-binding cardinality.** Only the `topBindings` bindings with the most bytes
/// (both directions, lifetime of the binding; ties by home address) get series labelled
/// `hoa="<home address>"`; the traffic of every other binding is added to `hoa="other"`.
/// Each binding has four series (`mip6_binding_packets_total` and `mip6_binding_bytes_total`,
/// `direction="to_mn"|"from_mn"`), so there are at most 4 × (topBindings + 1) of them however
/// many bindings there are. A binding that leaves the top N (or the cache) has its series
/// unregistered at the next `update`, so the bound holds over time, not only per scrape.
/// A binding that enters the top N starts its series at its lifetime totals (what
/// `mip6 binding` shows); `other` counts bindings' traffic while they are outside the top N.
/// Ranking by lifetime bytes keeps the set stable between scrapes: a newcomer must out-total a member.
/// Memory for the previous totals is one entry per binding, bounded by --max-bindings.
public final class HomeAgentMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let topBindings: Int

    /// For BA latency: 10 µs .. 100 ms, 1-2.5-5 steps.
    public static let ackLatencyBuckets: [Double] = [
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
        0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    ]

    private let bindingsGauge: Gauge
    private let dadGauge: Gauge
    private let ackLatency: ValueHistogram
    private let state: Locked<State>

    /// - Parameter topBindings: how many bindings get their own series (default 100; 0 = none).
    public init(topBindings: Int = 100, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        precondition(topBindings >= 0, "topBindings must not be negative")
        self.registry = registry
        self.topBindings = topBindings
        bindingsGauge = registry.makeGauge(descriptor: metric("mip6_bindings", "Bindings in the binding cache."))
        dadGauge = registry.makeGauge(descriptor: metric("mip6_dad_in_progress",
                                                         "Home addresses whose duplicate address detection is running."))
        ackLatency = registry.makeValueHistogram(
            descriptor: metric("mip6_ba_latency_seconds",
                               "Time from a Binding Update leaving the data plane to its Binding Acknowledgement being sent."),
            buckets: Self.ackLatencyBuckets)
        let cumulative = Cumulative(registry: registry)
        state = Locked(State(cumulative: cumulative, other: BindingSeries(hoa: "other", registry: registry)))
    }

    /// Records one BU → BA turnaround.
    public func observeAckLatency(seconds: Double) { ackLatency.record(seconds) }

    /// Brings every series to `snapshot`'s totals. Calls are serialized; rendering may run
    /// concurrently and sees each series either before or after.
    public func update(_ snapshot: HomeAgentMetricsSnapshot) {
        bindingsGauge.set(Double(snapshot.bindings))
        dadGauge.set(Double(snapshot.dadInProgress))
        state.withLock { s in
            let c = s.cumulative
            c.set(Family.bindingUpdates, [], snapshot.bindingUpdates)
            for (status, n) in snapshot.acksByStatus {
                // RFC 6275 §6.1.8: below 128 the BU was accepted.
                c.set(Family.acks, [("status", String(status)), ("result", status < 128 ? "accepted" : "rejected")], n)
            }
            for (reason, n) in snapshot.signalingDrops { c.set(Family.signalingDrops, [("reason", reason)], n) }
            for (reason, n) in snapshot.authRefusals { c.set(Family.authRefusals, [("reason", reason)], n) }
            for (event, n) in snapshot.controlPlaneEvents { c.set(Family.controlPlaneEvents, [("event", event)], n) }
            for (reason, n) in snapshot.dataPlane { c.set(Family.dataPlane, [("reason", reason)], n) }
            c.set(Family.puntsRateLimited, [("scope", "global")], snapshot.puntsRateLimited)
            c.set(Family.puntsRateLimited, [("scope", "source")], snapshot.puntsSourceRateLimited)
            updateBindings(&s, snapshot.bindingTraffic)
        }
    }

    /// Prometheus text exposition format (version 0.0.4).
    public func render() -> String { registry.emitToString() }

    /// Home addresses that have their own series now (for tests and `mip6` diagnostics).
    public var bindingsWithSeries: Set<String> { state.withLock { Set($0.perBinding.keys) } }

    private func updateBindings(_ s: inout State, _ traffic: [BindingTraffic]) {
        var current: [String: BindingTraffic] = [:]
        current.reserveCapacity(traffic.count)
        for b in traffic { current[b.homeAddress] = b }  // a duplicate: the later entry wins

        let top = Set(current.values.sorted { a, b in
            a.totalBytes != b.totalBytes ? a.totalBytes > b.totalBytes : a.homeAddress < b.homeAddress
        }.prefix(topBindings).map(\.homeAddress))

        for (hoa, series) in s.perBinding where !top.contains(hoa) {
            series.unregister(from: registry)
            s.perBinding[hoa] = nil
        }
        for (hoa, b) in current {
            let delta = BindingSeries.delta(from: s.previous[hoa], to: b)
            if top.contains(hoa) {
                if let series = s.perBinding[hoa] {
                    series.add(delta)
                } else {
                    let series = BindingSeries(hoa: hoa, registry: registry)
                    series.add(b.values)
                    s.perBinding[hoa] = series
                }
            } else {
                s.other.add(delta)
            }
        }
        s.previous = current
    }

    private struct State {
        let cumulative: Cumulative
        let other: BindingSeries
        var perBinding: [String: BindingSeries] = [:]
        /// Last totals of every binding, in or out of the top N: deltas for `other`.
        var previous: [String: BindingTraffic] = [:]
    }

    enum Family {
        static let bindingUpdates = ("mip6_binding_updates_total", "Binding Updates received that decoded correctly.")
        static let acks = ("mip6_binding_acks_total",
                           "Binding Acknowledgements sent, by RFC 6275 status code; result=accepted for status below 128.")
        static let signalingDrops = ("mip6_signaling_dropped_total",
                                     "Signaling packets the control plane discarded without an answer, by reason.")
        static let authRefusals = ("mip6_binding_update_auth_refusals_total",
                                   "Binding Updates refused by RFC 4285 MN-HA authentication, by reason.")
        static let controlPlaneEvents = ("mip6_controlplane_events_total",
                                         "Control-plane events (registrations, expirations, send failures, ...), by event.")
        static let dataPlane = ("mip6_dataplane_packets_total", "Data-plane (XDP) packet counters, by reason.")
        static let puntsRateLimited = ("mip6_punts_rate_limited_total",
                                       "Signaling the data plane dropped instead of punting it to the control plane, "
                                       + "over the global rate (scope=global) or one source /64's rate (scope=source).")
    }
}

/// One binding's four series (or the `other` bucket's).
private final class BindingSeries {
    static let packets = ("mip6_binding_packets_total",
                          "Packets tunneled per binding; the top bindings by bytes have hoa=<home address>, the rest are summed in hoa=\"other\".")
    static let bytes = ("mip6_binding_bytes_total",
                        "Inner bytes tunneled per binding; the top bindings by bytes have hoa=<home address>, the rest are summed in hoa=\"other\".")

    /// Same order as `BindingTraffic.values`.
    let counters: [Counter]

    init(hoa: String, registry: PrometheusCollectorRegistry) {
        func make(_ family: (String, String), _ direction: String) -> Counter {
            registry.makeCounter(descriptor: metric(family.0, family.1), labels: [("hoa", hoa), ("direction", direction)])
        }
        counters = [make(Self.packets, "to_mn"), make(Self.bytes, "to_mn"), make(Self.packets, "from_mn"), make(Self.bytes, "from_mn")]
    }

    func add(_ values: [UInt64]) {
        for (c, v) in zip(counters, values) { c.add(v) }
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        for c in counters { registry.unregisterCounter(c) }
    }

    static func delta(from old: BindingTraffic?, to new: BindingTraffic) -> [UInt64] {
        guard let old else { return new.values }
        return zip(old.values, new.values).map { cumulativeDelta(from: $0, to: $1) }
    }
}
