import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// What a daemon offers its ServiceLifecycle wrapper. `serve()` blocks in the event loop;
/// `requestStop()` and `requestReload()` are called from other threads.
public protocol LoopDaemon: AnyObject, SendableMetatype {
    /// Runs the event loop until a stop request has been carried out.
    func serve() throws
    /// Graceful stop (SIGTERM, SIGINT, cancellation). Thread-safe.
    func requestStop()
    /// SIGHUP. Thread-safe.
    func requestReload()
    /// After `serve()` returned: last state write, detach what does not outlive the daemon.
    func shutdown()
}

/// A daemon's loop as a ServiceLifecycle service. The loop blocks in poll(2), so it runs on
/// a thread of its own, not on the cooperative pool; graceful shutdown and cancellation ask
/// it to finish what it has started (answer the BUs received, de-register) and return.
public struct DaemonService<Daemon: LoopDaemon>: Service {
    /// The daemon is confined to the loop thread except for its thread-safe methods.
    public struct Box: @unchecked Sendable { public let daemon: Daemon }
    public let box: Box
    let threadName: String

    public init(_ daemon: Daemon, threadName: String) {
        box = Box(daemon: daemon)
        self.threadName = threadName
    }

    public func run() async throws {
        let box = self.box
        let name = threadName
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                    let thread = Thread {
                        do {
                            try box.daemon.serve()
                            box.daemon.shutdown()
                            done.resume()
                        } catch {
                            box.daemon.shutdown()
                            done.resume(throwing: error)
                        }
                    }
                    thread.name = name
                    thread.start()
                }
            } onGracefulShutdown: {
                box.daemon.requestStop()
            }
        } onCancel: {
            box.daemon.requestStop()
        }
    }

    /// SIGHUP → `requestReload()` for as long as the group runs.
    public var reloadOnHangup: some Service { ReloadOnHangup(box: box) }
}

struct ReloadOnHangup<Daemon: LoopDaemon>: Service {
    let box: DaemonService<Daemon>.Box

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            box.daemon.requestReload()
        }
    }
}

extension DaemonService {
    /// The group every daemon runs in: `services` first (e.g. the HTTP endpoint), then
    /// SIGHUP, then the loop last, so a graceful shutdown (SIGTERM, SIGINT) reaches the loop
    /// first and the others keep answering until it has drained.
    public func runGroup(before services: [ServiceGroupConfiguration.ServiceConfiguration] = [],
                         logger: Logger) async throws {
        var all = services
        all.append(.init(service: reloadOnHangup))
        all.append(.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup,
                         failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: all, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      cancellationSignals: [], logger: logger))
        try await group.run()
    }
}
