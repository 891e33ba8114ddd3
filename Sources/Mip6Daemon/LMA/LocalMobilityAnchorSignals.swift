import ServiceLifecycle
import UnixSignals

/// SIGUSR1 -> `requestBindingsDump()` for as long as the group runs: how `mip6 lma bindings`
/// asks the running daemon for its binding list. The caller traps the signal (creates
/// `signals`) before the daemon starts and writes its pid: SIGUSR1's default action would end
/// the process.
public struct DumpBindingsOnUser1: Service {
    let box: DaemonService<LocalMobilityAnchorDaemon>.Box
    let signals: UnixSignalsSequence

    public init(box: DaemonService<LocalMobilityAnchorDaemon>.Box, signals: UnixSignalsSequence) {
        self.box = box
        self.signals = signals
    }

    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            box.daemon.requestBindingsDump()
        }
    }
}
