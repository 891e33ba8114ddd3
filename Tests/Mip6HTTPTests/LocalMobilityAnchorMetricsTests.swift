import Testing
@testable import Mip6HTTP

@Suite struct LocalMobilityAnchorMetricsTests {
    @Test func rendersEverySeriesWithHelpAndType() {
        let m = LocalMobilityAnchorMetrics()
        m.update(LocalMobilityAnchorMetricsSnapshot(
            activeBindings: 3, deregisteredBindings: 1, policyMobileNodes: 10, policyMAGs: 2, proxyBindingUpdates: 9,
            acksByStatus: [0: 6, 152: 2, 156: 1], signalingDrops: ["malformed_mh": 2],
            controlPlaneEvents: ["registrations": 4, "handoffs": 1, "send_failures": 0, "punts_malformed": 3],
            dataPlane: ["encap": 100, "decap": 90, "mh_punt": 11, "drop_punt_rate_limited": 5, "drop_punt_mag_rate_limited": 7]))
        m.observeAckLatency(seconds: 0.000_2)
        let text = m.render()
        let s = samples(text)
        #expect(s[#"mip6_lma_bindings{state="active"}"#] == 3)
        #expect(s[#"mip6_lma_bindings{state="deregistered"}"#] == 1)
        #expect(s["mip6_lma_policy_mobile_nodes"] == 10)
        #expect(s["mip6_lma_policy_mags"] == 2)
        #expect(s["mip6_lma_proxy_binding_updates_total"] == 9)
        #expect(s[#"mip6_lma_proxy_binding_acks_total{status="0",result="accepted"}"#] == 6)
        #expect(s[#"mip6_lma_proxy_binding_acks_total{status="152",result="rejected"}"#] == 2)
        #expect(s[#"mip6_lma_proxy_binding_acks_total{status="156",result="rejected"}"#] == 1)
        #expect(s[#"mip6_lma_signaling_dropped_total{reason="malformed_mh"}"#] == 2)
        #expect(s[#"mip6_lma_controlplane_events_total{event="registrations"}"#] == 4)
        #expect(s[#"mip6_lma_controlplane_events_total{event="punts_malformed"}"#] == 3)
        #expect(s[#"mip6_lma_controlplane_events_total{event="send_failures"}"#] == 0)
        #expect(s[#"mip6_lma_dataplane_packets_total{reason="encap"}"#] == 100)
        #expect(s[#"mip6_lma_dataplane_packets_total{reason="mh_punt"}"#] == 11)
        #expect(s[#"mip6_lma_punts_rate_limited_total{scope="global"}"#] == 5)
        #expect(s[#"mip6_lma_punts_rate_limited_total{scope="mag"}"#] == 7)
        #expect(s["mip6_lma_pba_latency_seconds_count"] == 1)
        #expect(s[#"mip6_lma_pba_latency_seconds_bucket{le="0.00025"}"#] == 1)
        #expect(s[#"mip6_lma_pba_latency_seconds_bucket{le="0.0001"}"#] == 0)

        for name in ["mip6_lma_bindings", "mip6_lma_proxy_binding_updates_total", "mip6_lma_proxy_binding_acks_total",
                     "mip6_lma_dataplane_packets_total", "mip6_lma_punts_rate_limited_total", "mip6_lma_pba_latency_seconds",
                     "mip6_lma_controlplane_events_total", "mip6_lma_signaling_dropped_total"] {
            #expect(text.contains("# HELP \(name) "), "\(name) has no HELP")
        }
        #expect(text.contains("# TYPE mip6_lma_proxy_binding_acks_total counter"))
        #expect(text.contains("# TYPE mip6_lma_bindings gauge"))
        #expect(text.contains("# TYPE mip6_lma_pba_latency_seconds histogram"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("mip6_lma_") && samples(String(line)).count == 1, "bad line: \(line)")
        }
    }

    @Test func countersFollowCumulativeTotalsAndSurviveResets() {
        let m = LocalMobilityAnchorMetrics()
        func punts() -> Double? { samples(m.render())[#"mip6_lma_dataplane_packets_total{reason="mh_punt"}"#] }
        m.update(LocalMobilityAnchorMetricsSnapshot(activeBindings: 2, dataPlane: ["mh_punt": 10]))
        #expect(punts() == 10)
        m.update(LocalMobilityAnchorMetricsSnapshot(activeBindings: 1, dataPlane: ["mh_punt": 25]))
        #expect(punts() == 25)
        #expect(samples(m.render())[#"mip6_lma_bindings{state="active"}"#] == 1) // a gauge follows down
        // The pinned counters were removed and re-created: 4 since, the exported counter goes on from 25.
        m.update(LocalMobilityAnchorMetricsSnapshot(dataPlane: ["mh_punt": 4]))
        #expect(punts() == 29)
    }
}
