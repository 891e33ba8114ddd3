import Prometheus

/// Everything the mobile access gateway's `/metrics` shows except the registration latency
/// histogram: cumulative totals from the control plane's counters and the MAG's BPF maps
/// (read at scrape time). Keys are the names `mip6 mag status --json` prints.
public struct MobileAccessGatewayMetricsSnapshot: Sendable, Equatable {
    /// Binding Update List entries by state ("pending", "registered", "deregistering").
    public var nodes: [String: Int]
    /// Mobile nodes in the policy in force.
    public var policyMobileNodes: Int
    /// Control-plane events (attaches, registrations, refreshes, detaches, pbusSent,
    /// retransmissions, unknownMobileNodes, carrierUp, sendFailures, ...), by name.
    public var controlPlaneEvents: [String: UInt64]
    /// Data-plane counters by name (`mip6_shared.h` MIP6_MAG_COUNTERS: "encap", "decap", "attach_punt", ...).
    public var dataPlane: [String: UInt64]

    public init(nodes: [String: Int] = [:], policyMobileNodes: Int = 0, controlPlaneEvents: [String: UInt64] = [:],
                dataPlane: [String: UInt64] = [:]) {
        self.nodes = nodes
        self.policyMobileNodes = policyMobileNodes
        self.controlPlaneEvents = controlPlaneEvents
        self.dataPlane = dataPlane
    }
}

/// The mobile access gateway's Prometheus metrics (`mip6 mag --http-listen`), named as the
/// LMA's with an `mip6_mag_` prefix. Label sets are bounded (states, event names, data-plane
/// counters) whatever the number of attached hosts.
public final class MobileAccessGatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public static let states = ["pending", "registered", "deregistering"]

    private let nodes: [String: Gauge]
    private let policyNodes: Gauge
    private let registrationLatency: ValueHistogram
    private let cumulative: Locked<Cumulative>

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let d = metric("mip6_mag_nodes", "Binding Update List entries, by state: pending (PBU outstanding), registered, deregistering.")
        nodes = Dictionary(uniqueKeysWithValues: Self.states.map { ($0, registry.makeGauge(descriptor: d, labels: [("state", $0)])) })
        policyNodes = registry.makeGauge(descriptor: metric("mip6_mag_policy_mobile_nodes", "Mobile nodes in the policy in force."))
        registrationLatency = registry.makeValueHistogram(
            descriptor: metric("mip6_mag_registration_latency_seconds",
                               "Time from a node's first PBU to the accepted PBA (its forwarding installed, the RA sent)."),
            buckets: HomeAgentMetrics.ackLatencyBuckets)
        cumulative = Locked(Cumulative(registry: registry))
    }

    /// Records one registration (first PBU -> accepted PBA).
    public func observeRegistration(seconds: Double) { registrationLatency.record(seconds) }

    public func update(_ snapshot: MobileAccessGatewayMetricsSnapshot) {
        for (state, gauge) in nodes { gauge.set(Double(snapshot.nodes[state] ?? 0)) }
        policyNodes.set(Double(snapshot.policyMobileNodes))
        cumulative.withLock { c in
            for (event, n) in snapshot.controlPlaneEvents { c.set(Family.controlPlaneEvents, [("event", event)], n) }
            for (reason, n) in snapshot.dataPlane { c.set(Family.dataPlane, [("reason", reason)], n) }
        }
    }

    /// Prometheus text exposition format (version 0.0.4).
    public func render() -> String { registry.emitToString() }

    enum Family {
        static let controlPlaneEvents = ("mip6_mag_controlplane_events_total",
                                         "Control-plane events (attaches, registrations, PBUs sent, retransmissions, detaches, "
                                         + "unknown mobile nodes, carrier changes, send failures, ...), by event.")
        static let dataPlane = ("mip6_mag_dataplane_packets_total", "Data-plane (TC) packet counters of the MAG programs, by reason.")
    }
}
