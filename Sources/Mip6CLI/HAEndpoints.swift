import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6Daemon
import Mip6HTTP
import ServiceLifecycle
import UnixSignals

/// What --http-listen serves, read from the running daemon.
struct HomeAgentEndpoints: Sendable {
    let box: DaemonService<HomeAgentDaemon>.Box
    let metrics: HomeAgentMetrics

    func render() -> String {
        metrics.update(snapshot())
        return metrics.render()
    }

    func snapshot() -> HomeAgentMetricsSnapshot {
        let d = box.daemon
        var s = HomeAgentMetricsSnapshot()
        let counters = Dictionary(d.dataPlaneCounters().map { ($0.name, $0.value) }, uniquingKeysWith: +)
        s.dataPlane = counters
        s.puntsRateLimited = counters["drop_punt_rate_limited"] ?? 0
        s.puntsSourceRateLimited = counters["drop_punt_src_rate_limited"] ?? 0
        if let cp = d.publishedState {
            s.bindings = cp.bindings
            s.dadInProgress = cp.dadInProgress
            s.bindingUpdates = cp.bindingUpdates
            s.acksByStatus = Dictionary(cp.acksByStatus.compactMap { k, v in UInt8(k).map { ($0, v) } }, uniquingKeysWith: +)
            s.signalingDrops = cp.drops
            s.authRefusals = cp.authRefusals
            s.controlPlaneEvents = [
                "deregistrations": cp.deregistrations, "expirations": cp.expirations,
                "binding_errors_sent": cp.bindingErrorsSent, "send_failures": cp.sendFailures,
                "punts_malformed": cp.puntsMalformed, "map_update_failures": cp.mapUpdateFailures,
                "authenticated_binding_updates": cp.authenticatedBindingUpdates,
                "tunnel_fragmented": cp.tunnelFragmented, "tunnel_packet_too_big": cp.tunnelPacketTooBig,
                "tunnel_errors": cp.tunnelErrors, "tunnel_ignored": cp.tunnelIgnored,
            ]
            for (reason, n) in cp.tunnelFragmentedDrops { s.controlPlaneEvents["tunnel_fragmented_drop_\(reason)"] = n }
        }
        // A full scan of the per-binding counters, only when per-binding series are wanted.
        if metrics.topBindings > 0 {
            s.bindingTraffic = d.bindingTraffic().map { hoa, st in
                BindingTraffic(homeAddress: "\(hoa)", toMobileNodePackets: st.to_mn_packets, toMobileNodeBytes: st.to_mn_bytes,
                               fromMobileNodePackets: st.from_mn_packets, fromMobileNodeBytes: st.from_mn_bytes)
            }
        }
        return s
    }
}
