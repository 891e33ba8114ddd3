import Mip6Daemon
import Mip6HTTP

/// What `mip6 mag --http-listen` serves, read from the running daemon: the control plane's
/// counters as its loop last published them, the data-plane counters from the maps at scrape time.
struct MobileAccessGatewayEndpoints: Sendable {
    let box: DaemonService<MobileAccessGatewayDaemon>.Box
    let metrics: MobileAccessGatewayMetrics

    func render() -> String {
        let d = box.daemon
        var s = MobileAccessGatewayMetricsSnapshot(dataPlane: d.dataPlaneCounters())
        if let p = d.publishedStatus {
            s.nodes = p.nodes
            s.policyMobileNodes = p.policyMobileNodes
            s.controlPlaneEvents = p.events
        }
        metrics.update(s)
        return metrics.render()
    }
}
