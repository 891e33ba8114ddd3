import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6HTTP
import ServiceLifecycle
import UnixSignals

/// The daemon's poll loop as a ServiceLifecycle service. The loop blocks in poll(2), so it
/// runs on a thread of its own, not on the cooperative pool; graceful shutdown (SIGTERM)
/// and cancellation ask it to answer the BUs already received and return.
struct HomeAgentService: Service {
    /// The daemon is confined to the loop thread except for its thread-safe methods.
    struct Box: @unchecked Sendable { let daemon: HomeAgentDaemon }
    let box: Box

    init(_ daemon: HomeAgentDaemon) { box = Box(daemon: daemon) }

    func run() async throws {
        let box = self.box
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                    let thread = Thread {
                        do {
                            try box.daemon.serve()
                            box.daemon.shutdown()
                            done.resume()
                        } catch {
                            done.resume(throwing: error)
                        }
                    }
                    thread.name = "mip6-ha-loop"
                    thread.start()
                }
            } onGracefulShutdown: {
                box.daemon.requestStop()
            }
        } onCancel: {
            box.daemon.requestStop()
        }
    }
}

/// SIGHUP re-reads --auth-keys (on the loop's thread).
struct ReloadOnHangup: Service {
    let box: HomeAgentService.Box

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            box.daemon.requestReload()
        }
    }
}

/// What --http-listen serves, read from the running daemon.
struct HomeAgentEndpoints: Sendable {
    let box: HomeAgentService.Box
    let metrics: HomeAgentMetrics

    func health() -> HealthReport {
        let c = box.daemon.livenessCheck()
        return HealthReport([.init(c.name, ok: c.ok, detail: c.detail)])
    }

    func ready() -> HealthReport {
        HealthReport(box.daemon.readinessChecks().map { .init($0.name, ok: $0.ok, detail: $0.detail) })
    }

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
            ]
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
