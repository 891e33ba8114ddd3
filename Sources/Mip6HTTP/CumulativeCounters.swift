import Prometheus

// What every daemon's metrics share (HomeAgentMetrics, LocalMobilityAnchorMetrics): counters
// fed from cumulative totals, and metric names written out whole.

/// Counters set from cumulative totals: keeps the last total per series and adds the difference.
/// Not thread-safe: its owner serializes `set` (both metrics classes keep it behind a lock).
final class Cumulative {
    private let registry: PrometheusCollectorRegistry
    private var series: [SeriesKey: (counter: Counter, last: UInt64)] = [:]

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func set(_ family: (name: String, help: String), _ labels: [(String, String)], _ total: UInt64) {
        let key = SeriesKey(name: family.name, labels: labels.map { "\($0.0)=\($0.1)" })
        if let (counter, last) = series[key] {
            counter.add(cumulativeDelta(from: last, to: total))
            series[key] = (counter, total)
        } else {
            let d = metric(family.name, family.help)
            let counter = labels.isEmpty ? registry.makeCounter(descriptor: d) : registry.makeCounter(descriptor: d, labels: labels)
            counter.add(total)
            series[key] = (counter, total)
        }
    }

    private struct SeriesKey: Hashable {
        var name: String
        var labels: [String]
    }
}

/// Names here are written out whole (mip6_..._total), so grep finds them; the descriptor's parts stay empty.
func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}

/// The increase between two readings of a cumulative total; a lower reading means the source
/// restarted from zero, so all of it is new.
func cumulativeDelta(from last: UInt64, to total: UInt64) -> UInt64 {
    total >= last ? total - last : total
}

extension Counter {
    /// swift-prometheus counters are Int64 inside; a UInt64 delta beyond that saturates.
    func add(_ n: UInt64) {
        if n > 0 { increment(by: Int64(clamping: n)) }
    }
}
