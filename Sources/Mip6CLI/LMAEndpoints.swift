import ControlPlane
import Mip6Daemon
import Mip6HTTP

/// What `mip6 lma --http-listen` serves, read from the running daemon: the control plane's
/// counters as its loop last published them (after every ring drain), the data-plane counters
/// from the maps at scrape time.
struct LocalMobilityAnchorEndpoints: Sendable {
    let box: DaemonService<LocalMobilityAnchorDaemon>.Box
    let metrics: LocalMobilityAnchorMetrics

    func render() -> String {
        metrics.update(snapshot())
        return metrics.render()
    }

    func snapshot() -> LocalMobilityAnchorMetricsSnapshot {
        let d = box.daemon
        var s = LocalMobilityAnchorMetricsSnapshot()
        s.dataPlane = d.dataPlaneCounters()
        if let st = d.publishedStatus {
            s.activeBindings = st.activeBindings
            s.deregisteredBindings = st.deregisteredBindings
            s.policyMobileNodes = st.policyMobileNodes
            s.policyMAGs = st.policyMAGs
            s.proxyBindingUpdates = st.counters.proxyBindingUpdates
            s.acksByStatus = st.counters.acksByStatus
            s.signalingDrops = st.counters.drops
            s.controlPlaneEvents = st.counters.events
            s.controlPlaneEvents["send_failures"] = st.sendFailures
            s.controlPlaneEvents["punts_malformed"] = st.puntsMalformed
            s.controlPlaneEvents["policy_reloads"] = st.policyReloads
            s.controlPlaneEvents["policy_reload_failures"] = st.policyReloadFailures
        }
        return s
    }
}
