import ArgumentParser
import Logging
import Mip6Daemon
import Mip6HTTP
import ServiceLifecycle

/// How every daemon command runs its daemon: with --http-listen, the port is checked before
/// anything is attached (a taken port is a start-up error), /healthz and /readyz come from the
/// daemon's probes and /metrics from `metrics`; then the daemon starts and runs in its service
/// group, the HTTP endpoint first so it answers until the loop has drained (`also`: services of
/// the daemon's own, before the loop too). Any failure is logged and exits 1.
func runDaemon<D: ProbedDaemon>(_ service: DaemonService<D>, httpListen: String?, name: String, logger: Logger,
                                also: [ServiceGroupConfiguration.ServiceConfiguration] = [],
                                metrics: @escaping @Sendable () -> String) async throws {
    let box = service.box
    var services = also
    do {
        if let httpListen {
            let address = try ListenAddress(parsing: httpListen)
            try address.checkCanListen()
            let http = HTTPEndpoint(address: address, logger: logger, name: name, health: { box.health() },
                                    ready: { box.ready() }, metrics: metrics)
            services.append(.init(service: http, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        try box.daemon.start()
    } catch {
        logger.critical("\(error)")
        throw ExitCode(1)
    }
    if let httpListen { logger.info("serving /healthz, /readyz, /metrics", metadata: ["mip6.http": "\(httpListen)"]) }
    do { try await service.runGroup(before: services, logger: logger) } catch {
        logger.critical("\(error)")
        throw ExitCode(1)
    }
}

extension DaemonService.Box where Daemon: ProbedDaemon {
    /// /healthz: the loop turns.
    func health() -> HealthReport {
        let c = daemon.livenessCheck(maxAge: 5)
        return HealthReport([.init(c.name, ok: c.ok, detail: c.detail)])
    }

    /// /readyz: every readiness check of the daemon.
    func ready() -> HealthReport {
        HealthReport(daemon.readinessChecks().map { .init($0.name, ok: $0.ok, detail: $0.detail) })
    }
}
