import Testing
@testable import Mip6HTTP

@Suite struct HomeAgentMetricsTests {
    @Test func rendersEverySeriesWithHelpAndType() {
        let m = HomeAgentMetrics()
        m.update(HomeAgentMetricsSnapshot(
            bindings: 3, dadInProgress: 1, bindingUpdates: 7, acksByStatus: [0: 5, 129: 1, 135: 1],
            signalingDrops: ["badChecksum": 2], authRefusals: ["unknownSPI": 1],
            controlPlaneEvents: ["expirations": 4, "send_failures": 0],
            dataPlane: ["encap": 1000, "decap": 900, "drop_tunnel_spoofed": 3],
            puntsRateLimited: 11, puntsSourceRateLimited: 22,
            bindingTraffic: [BindingTraffic(homeAddress: "2001:db8:1::100", toMobileNodePackets: 10, toMobileNodeBytes: 1500,
                                            fromMobileNodePackets: 8, fromMobileNodeBytes: 800)]))
        let text = m.render()
        let s = samples(text)
        #expect(s["mip6_bindings"] == 3)
        #expect(s["mip6_dad_in_progress"] == 1)
        #expect(s["mip6_binding_updates_total"] == 7)
        #expect(s[#"mip6_binding_acks_total{status="0",result="accepted"}"#] == 5)
        #expect(s[#"mip6_binding_acks_total{status="129",result="rejected"}"#] == 1)
        #expect(s[#"mip6_binding_acks_total{status="135",result="rejected"}"#] == 1)
        #expect(s[#"mip6_signaling_dropped_total{reason="badChecksum"}"#] == 2)
        #expect(s[#"mip6_binding_update_auth_refusals_total{reason="unknownSPI"}"#] == 1)
        #expect(s[#"mip6_controlplane_events_total{event="expirations"}"#] == 4)
        #expect(s[#"mip6_controlplane_events_total{event="send_failures"}"#] == 0)
        #expect(s[#"mip6_dataplane_packets_total{reason="encap"}"#] == 1000)
        #expect(s[#"mip6_dataplane_packets_total{reason="decap"}"#] == 900)
        #expect(s[#"mip6_dataplane_packets_total{reason="drop_tunnel_spoofed"}"#] == 3)
        #expect(s[#"mip6_punts_rate_limited_total{scope="global"}"#] == 11)
        #expect(s[#"mip6_punts_rate_limited_total{scope="source"}"#] == 22)
        #expect(s[#"mip6_binding_packets_total{hoa="2001:db8:1::100",direction="to_mn"}"#] == 10)
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::100",direction="to_mn"}"#] == 1500)
        #expect(s[#"mip6_binding_packets_total{hoa="2001:db8:1::100",direction="from_mn"}"#] == 8)
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::100",direction="from_mn"}"#] == 800)
        #expect(s[#"mip6_binding_bytes_total{hoa="other",direction="to_mn"}"#] == 0)

        for name in ["mip6_bindings", "mip6_binding_updates_total", "mip6_binding_acks_total", "mip6_dataplane_packets_total",
                     "mip6_punts_rate_limited_total", "mip6_binding_bytes_total", "mip6_ba_latency_seconds"] {
            #expect(text.contains("# HELP \(name) "), "\(name) has no HELP")
        }
        #expect(text.contains("# TYPE mip6_binding_acks_total counter"))
        #expect(text.contains("# TYPE mip6_bindings gauge"))
        #expect(text.contains("# TYPE mip6_ba_latency_seconds histogram"))
        // Every sample line is `name{labels} value` with a mip6_ name.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("mip6_") && samples(String(line)).count == 1, "bad line: \(line)")
        }
    }

    @Test func countersFollowCumulativeTotalsAndSurviveResets() {
        let m = HomeAgentMetrics()
        func encap() -> Double? { samples(m.render())[#"mip6_dataplane_packets_total{reason="encap"}"#] }
        func updates() -> Double? { samples(m.render())["mip6_binding_updates_total"] }

        m.update(HomeAgentMetricsSnapshot(bindingUpdates: 4, dataPlane: ["encap": 10]))
        #expect(encap() == 10)
        #expect(updates() == 4)
        m.update(HomeAgentMetricsSnapshot(bindingUpdates: 4, dataPlane: ["encap": 25]))
        #expect(encap() == 25)
        #expect(updates() == 4)  // unchanged total: no increase
        // The map was re-created: 5 since the reset, so the exported counter goes on from 25.
        m.update(HomeAgentMetricsSnapshot(bindingUpdates: 6, dataPlane: ["encap": 5]))
        #expect(encap() == 30)
        #expect(updates() == 6)
        m.update(HomeAgentMetricsSnapshot(bindingUpdates: 6, dataPlane: ["encap": 7]))
        #expect(encap() == 32)
        #expect(cumulativeDelta(from: 10, to: 25) == 15)
        #expect(cumulativeDelta(from: 25, to: 5) == 5)
        #expect(cumulativeDelta(from: 0, to: .max) == .max)
    }

    @Test func perBindingCountersFollowTotalsAndResets() {
        let m = HomeAgentMetrics(topBindings: 10)
        let key = #"mip6_binding_bytes_total{hoa="2001:db8::1",direction="to_mn"}"#
        m.update(HomeAgentMetricsSnapshot(bindingTraffic: [BindingTraffic(homeAddress: "2001:db8::1", toMobileNodeBytes: 100)]))
        #expect(samples(m.render())[key] == 100)
        m.update(HomeAgentMetricsSnapshot(bindingTraffic: [BindingTraffic(homeAddress: "2001:db8::1", toMobileNodeBytes: 150)]))
        #expect(samples(m.render())[key] == 150)
        // Deregistered and registered again between two updates: its stats entry restarted at 0.
        m.update(HomeAgentMetricsSnapshot(bindingTraffic: [BindingTraffic(homeAddress: "2001:db8::1", toMobileNodeBytes: 20)]))
        #expect(samples(m.render())[key] == 170)
    }

    /// 250 bindings, top 100: 100 series of each kind labelled by HoA plus "other"; after the
    /// ranking changes, the bindings that left have no series and the count stays 100.
    @Test func perBindingCardinalityIsBounded() {
        let m = HomeAgentMetrics(topBindings: 100)
        func hoa(_ i: Int) -> String { "2001:db8:1::\(String(i, radix: 16))" }
        // Binding i has i*1000 bytes to the MN and i*10 from it: the top 100 are 150...249.
        let first = (0..<250).map { i in
            BindingTraffic(homeAddress: hoa(i), toMobileNodePackets: UInt64(i), toMobileNodeBytes: UInt64(i * 1000),
                           fromMobileNodePackets: UInt64(i), fromMobileNodeBytes: UInt64(i * 10))
        }
        m.update(HomeAgentMetricsSnapshot(bindings: 250, bindingTraffic: first))
        var text = m.render()
        for metric in ["mip6_binding_packets_total", "mip6_binding_bytes_total"] {
            let hoas = labelValues(text, metric: metric, label: "hoa")
            #expect(hoas.count == 101, "\(metric): \(hoas.count) hoa values")
            #expect(hoas.contains("other"))
            #expect(hoas == Set((150..<250).map(hoa)).union(["other"]))
        }
        #expect(m.bindingsWithSeries == Set((150..<250).map(hoa)))
        var s = samples(text)
        #expect(s.keys.filter { $0.hasPrefix("mip6_binding_") && $0.contains("hoa=") }.count == 4 * 101)
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::f9",direction="to_mn"}"#] == 249_000)
        // "other" holds the sum of bindings 0..<150.
        #expect(s[#"mip6_binding_bytes_total{hoa="other",direction="to_mn"}"#] == Double((0..<150).reduce(0, +) * 1000))
        #expect(s[#"mip6_binding_packets_total{hoa="other",direction="from_mn"}"#] == Double((0..<150).reduce(0, +)))

        // Bindings 0..<50 become the heaviest (each +1 MB), 200..<250 leave the cache.
        let second = (0..<200).map { i in
            var b = first[i]
            if i < 50 { b.toMobileNodeBytes += 1_000_000 }
            return b
        }
        m.update(HomeAgentMetricsSnapshot(bindings: 200, bindingTraffic: second))
        text = m.render()
        let expected = Set((0..<50).map(hoa) + (150..<200).map(hoa))
        for metric in ["mip6_binding_packets_total", "mip6_binding_bytes_total"] {
            #expect(labelValues(text, metric: metric, label: "hoa") == expected.union(["other"]))
        }
        #expect(m.bindingsWithSeries == expected)
        s = samples(text)
        #expect(s.keys.filter { $0.hasPrefix("mip6_binding_") && $0.contains("hoa=") }.count == 4 * 101)
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::f9",direction="to_mn"}"#] == nil)  // 249: gone
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::64",direction="to_mn"}"#] == nil)  // 100: still in "other"
        // A binding entering the top starts at its own lifetime totals.
        #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8:1::1",direction="to_mn"}"#] == 1_001_000)
        // "other" only grew: the promoted bindings' past stays in it, and nothing new was sent by 50..<150.
        #expect(s[#"mip6_binding_bytes_total{hoa="other",direction="to_mn"}"#] == Double((0..<150).reduce(0, +) * 1000))

        // Traffic of a binding outside the top goes to "other".
        var third = second
        third[100].toMobileNodeBytes += 777
        m.update(HomeAgentMetricsSnapshot(bindings: 200, bindingTraffic: third))
        s = samples(m.render())
        #expect(s[#"mip6_binding_bytes_total{hoa="other",direction="to_mn"}"#] == Double((0..<150).reduce(0, +) * 1000 + 777))

        // Every binding gone: only "other" is left.
        m.update(HomeAgentMetricsSnapshot())
        #expect(labelValues(m.render(), metric: "mip6_binding_bytes_total", label: "hoa") == ["other"])
        #expect(m.bindingsWithSeries.isEmpty)
    }

    @Test func zeroTopBindingsPutsEverythingInOther() {
        let m = HomeAgentMetrics(topBindings: 0)
        m.update(HomeAgentMetricsSnapshot(bindingTraffic: [BindingTraffic(homeAddress: "2001:db8::1", fromMobileNodePackets: 3),
                                                           BindingTraffic(homeAddress: "2001:db8::2", fromMobileNodePackets: 4)]))
        let text = m.render()
        #expect(labelValues(text, metric: "mip6_binding_packets_total", label: "hoa") == ["other"])
        #expect(samples(text)[#"mip6_binding_packets_total{hoa="other",direction="from_mn"}"#] == 7)
    }

    @Test func ackLatencyHistogramBuckets() {
        let m = HomeAgentMetrics()
        m.observeAckLatency(seconds: 0.000_03)  // 30 µs
        m.observeAckLatency(seconds: 0.002)     // 2 ms
        m.observeAckLatency(seconds: 0.5)       // beyond the last bucket
        let s = samples(m.render())
        let buckets = s.filter { $0.key.hasPrefix("mip6_ba_latency_seconds_bucket") }
        #expect(buckets.count == HomeAgentMetrics.ackLatencyBuckets.count + 1)  // + le="+Inf"
        #expect(s[#"mip6_ba_latency_seconds_bucket{le="+Inf"}"#] == 3)
        #expect(s["mip6_ba_latency_seconds_count"] == 3)
        #expect(abs((s["mip6_ba_latency_seconds_sum"] ?? 0) - 0.50203) < 1e-9)
        // 10 µs bucket empty, 50 µs has one, 2.5 ms has two, 100 ms still two.
        #expect(buckets.first { $0.key.contains("le=\"1e-05\"") }?.value == 0)
        #expect(buckets.first { $0.key.contains("le=\"5e-05\"") }?.value == 1)
        #expect(buckets.first { $0.key.contains("le=\"0.0025\"") }?.value == 2)
        #expect(buckets.first { $0.key.contains("le=\"0.1\"") }?.value == 2)
    }
}
