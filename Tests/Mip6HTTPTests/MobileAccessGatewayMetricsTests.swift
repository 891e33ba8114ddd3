import Testing
@testable import Mip6HTTP

@Suite struct MobileAccessGatewayMetricsTests {
    @Test func rendersEverySeriesWithHelpAndType() {
        let m = MobileAccessGatewayMetrics()
        m.update(MobileAccessGatewayMetricsSnapshot(
            nodes: ["registered": 2, "pending": 1], policyMobileNodes: 5,
            controlPlaneEvents: ["registrations": 3, "pbusSent": 7, "carrierUp": 1],
            dataPlane: ["encap": 40, "decap": 38, "attach_punt": 2, "drop_unknown_mac": 6]))
        m.observeRegistration(seconds: 0.0008)
        let text = m.render()
        let s = samples(text)
        #expect(s[#"mip6_mag_nodes{state="registered"}"#] == 2)
        #expect(s[#"mip6_mag_nodes{state="pending"}"#] == 1)
        #expect(s[#"mip6_mag_nodes{state="deregistering"}"#] == 0, "every state has a series, zero included")
        #expect(s["mip6_mag_policy_mobile_nodes"] == 5)
        #expect(s[#"mip6_mag_controlplane_events_total{event="pbusSent"}"#] == 7)
        #expect(s[#"mip6_mag_dataplane_packets_total{reason="drop_unknown_mac"}"#] == 6)
        #expect(s["mip6_mag_registration_latency_seconds_count"] == 1)
        #expect(s[#"mip6_mag_registration_latency_seconds_bucket{le="0.001"}"#] == 1)
        for name in ["mip6_mag_nodes", "mip6_mag_policy_mobile_nodes", "mip6_mag_controlplane_events_total",
                     "mip6_mag_dataplane_packets_total", "mip6_mag_registration_latency_seconds"] {
            #expect(text.contains("# HELP \(name) "), "\(name) has no HELP")
        }
        #expect(text.contains("# TYPE mip6_mag_dataplane_packets_total counter"))
        #expect(text.contains("# TYPE mip6_mag_nodes gauge"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("mip6_mag_") && samples(String(line)).count == 1, "bad line: \(line)")
        }
    }

    @Test func countersFollowCumulativeTotalsAndSurviveResets() {
        let m = MobileAccessGatewayMetrics()
        func encap() -> Double? { samples(m.render())[#"mip6_mag_dataplane_packets_total{reason="encap"}"#] }
        m.update(MobileAccessGatewayMetricsSnapshot(dataPlane: ["encap": 10]))
        m.update(MobileAccessGatewayMetricsSnapshot(dataPlane: ["encap": 30]))
        #expect(encap() == 30)
        m.update(MobileAccessGatewayMetricsSnapshot(dataPlane: ["encap": 5])) // maps re-created: a reset
        #expect(encap() == 35)
    }
}
