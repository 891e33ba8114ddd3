import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The `--http-listen` endpoint as a ServiceLifecycle service, served by Hummingbird (SwiftNIO):
///
/// - `GET /healthz`: liveness (`health`), 200 or 503
/// - `GET /readyz`: readiness (`ready`), 200 or 503
/// - `GET /metrics`: Prometheus text exposition (`metrics`)
///
/// HEAD is answered too; other methods get 405, other paths 404. The closures run on Swift
/// concurrency threads, concurrently with whatever loop produces the data: they must only
/// read state that is safe to read from another thread (`Heartbeat`, `HomeAgentMetrics`,
/// or a snapshot the loop publishes under a lock).
///
/// **Failing to listen.** `run()` binds before anything else and throws
/// `HTTPEndpointError.cannotListen` within milliseconds when the address is taken or not
/// local, so in a `ServiceGroup` a bad `--http-listen` ends the daemon at start-up. To fail
/// even earlier (before attaching programs), call `checkCanListen()` first: it binds and
/// closes a socket synchronously. Between the two another process may take the port; `run()`
/// still reports that.
///
/// Only the `Hummingbird` product is used, and no module that imports FoundationNetworking:
/// a `--static-swift-stdlib` binary does not link libcurl and its friends.
public struct HTTPEndpoint: Service {
    public let address: ListenAddress
    private let routes: Routes
    private let logger: Logger
    private let state = ListeningState()
    /// How long a stop waits for exchanges in flight before cutting them. They read snapshots:
    /// only a closure that hangs makes it matter. Tests shorten it.
    var stopDeadline = Duration.seconds(5)

    /// - Parameter name: what `GET /` says is serving ("mip6 home agent", "mip6 lma").
    public init(address: ListenAddress,
                logger: Logger = Logger(label: "mip6.http"),
                name: String = "mip6 home agent",
                health: @escaping @Sendable () async -> HealthReport,
                ready: @escaping @Sendable () async -> HealthReport,
                metrics: @escaping @Sendable () async -> String) {
        self.address = address
        self.logger = logger
        routes = Routes(name: name, health: health, ready: ready, metrics: metrics)
    }

    /// Serves until the task is cancelled or graceful shutdown is triggered, then returns.
    /// Throws `HTTPEndpointError.cannotListen` at once if it cannot bind, `.failed` if serving breaks.
    ///
    /// Both ways of stopping become a graceful shutdown of the server: it closes the listening
    /// socket, then each connection once its exchange (if any) is answered, so `run()` returns
    /// within milliseconds and the port is free when it has. The server is never cancelled
    /// directly: cancelling a NIO async server while an accepted connection is still queued
    /// traps the process ("Deinited NIOAsyncWriter without calling finish()", apple/swift-nio#2813).
    /// Only an exchange still going `stopDeadline` after the stop is cut by cancellation.
    public func run() async throws {
        let address = self.address
        let logger = self.logger
        let state = self.state
        let routes = self.routes
        let stopDeadline = self.stopDeadline
        // Hummingbird logs through this one, one level down (see DemotingLogHandler).
        let serverLogger = Logger(label: logger.label, factory: { _ in DemotingLogHandler(logger: logger) })
        state.set(.starting)
        let app = Application(
            responder: CallbackResponder { (request: Request, _: BasicRequestContext) in await routes.respond(to: request) },
            // Requests only read snapshots; 5 s is generous and stops an idle client holding a connection.
            server: .http1(configuration: .init(idleTimeout: .seconds(5))),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: Int(address.port)),
                                                    reuseAddress: true),
            onServerRunning: { channel in
                state.set(.listening(port: channel.localAddress?.port.map(UInt16.init) ?? address.port))
            },
            logger: serverLogger
        )
        // Our own group around the application, for a graceful-shutdown trigger we control, in a
        // task of its own so that cancelling run() does not reach the server (see above).
        let group = ServiceGroup(configuration: .init(services: [app], logger: serverLogger))
        let serving = Task { try await group.run() }
        let stop = StopRequest()
        let requestStop: @Sendable () -> Void = {
            stop.request {
                Task {
                    await group.triggerGracefulShutdown()
                    try? await Task.sleep(for: stopDeadline)
                    if !Task.isCancelled { serving.cancel() }
                }
            }
        }
        defer { stop.finished() }
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await serving.value
                } onGracefulShutdown: {
                    requestStop()
                }
            } onCancel: {
                requestStop()
            }
        } catch {
            if stop.requested || Task.isCancelled || Task.isShuttingDownGracefully || error is CancellationError {
                logger.debug("http endpoint stopped", metadata: ["mip6.http.listen": "\(address)", "error": "\(error)"])
                state.set(.stopped(nil))
                return
            }
            let failure = HTTPEndpointError(error, address: address, listening: state.isListening)
            state.set(.stopped(failure))
            throw failure
        }
        if !(stop.requested || Task.isCancelled || Task.isShuttingDownGracefully) {
            // The server ended by itself (its listening socket closed under it): not a stop we asked for.
            let failure = HTTPEndpointError.failed(address, message: "stopped serving on its own")
            state.set(.stopped(failure))
            throw failure
        }
        state.set(.stopped(nil))
        logger.debug("http endpoint stopped", metadata: ["mip6.http.listen": "\(address)"])
    }

    /// Waits until `run()` is accepting connections and returns the bound address (the real
    /// port when the configured port was 0), for the caller to log. Throws if that does not
    /// happen within `timeout`, or `run()`'s own error if it ended first (a bind failure).
    public func waitUntilListening(timeout: Double = 5) async throws -> ListenAddress {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            switch state.get() {
            case let .listening(port):
                return address.with(port: port)
            case let .stopped(error?):
                throw error
            case .idle, .starting, .stopped(nil):
                break
            }
            guard ContinuousClock.now < deadline else {
                throw HTTPEndpointError.failed(address, message: "not listening after \(timeout) s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Synchronous preflight: binds a socket to the address (with SO_REUSEADDR, as the server
    /// does) and closes it. Throws `HTTPEndpointError.cannotListen` for "address in use",
    /// "cannot assign requested address" (not a local address) and the like.
    public func checkCanListen() throws(HTTPEndpointError) { try address.checkCanListen() }
}

/// Why the endpoint could not serve. The description is one line for the operator.
public enum HTTPEndpointError: Error, Equatable, CustomStringConvertible {
    /// socket(), bind() or listen() failed: the daemon should not start.
    case cannotListen(ListenAddress, errno: Int32, message: String)
    /// The server stopped on its own after it had started.
    case failed(ListenAddress, message: String)

    public var description: String {
        switch self {
        case let .cannotListen(a, errno, message):
            let hint = errno == EADDRINUSE ? " (another process has the port: pick another one with --http-listen)" : ""
            return "--http-listen \(a): cannot listen: \(message)\(hint)"
        case let .failed(a, message):
            return "--http-listen \(a): the HTTP server stopped: \(message)"
        }
    }

    public var errno: Int32? {
        if case let .cannotListen(_, e, _) = self { return e }
        return nil
    }

    /// `listening`: whether the server had bound when it failed. Before that, a system call's
    /// error (NIO's `IOError`: socket, setsockopt, bind, listen) means it could not listen.
    init(_ error: any Error, address: ListenAddress, listening: Bool) {
        if let e = error as? HTTPEndpointError {
            self = e
        } else if !listening, let e = error as? IOError {
            self = .cannotListen(address, errno: e.errnoCode,
                                 message: "\(Self.call(e)): \(String(cString: strerror(e.errnoCode)))")
        } else {
            self = .failed(address, message: "\(error)")
        }
    }

    /// "bind(descriptor:ptr:bytes:)" → "bind", as `checkCanListen()` words it.
    private static func call(_ error: IOError) -> String {
        let description = "\(error)"
        let name = description.prefix { $0.isLetter || $0 == "_" }
        return name.isEmpty ? description : String(name)
    }
}

extension ListenAddress {
    /// See `HTTPEndpoint.checkCanListen()`.
    public func checkCanListen() throws(HTTPEndpointError) {
        func failure(_ call: String) -> HTTPEndpointError {
            let e = errno
            return .cannotListen(self, errno: e, message: "\(call): \(String(cString: strerror(e)))")
        }
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        defer { close(fd) }
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw failure("setsockopt(SO_REUSEADDR)")
        }
        let rc: Int32
        switch family {
        case .ipv4:
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            // The host was validated by inet_pton when the ListenAddress was made.
            _ = inet_pton(AF_INET, host, &sa.sin_addr)
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6:
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, host, &sa.sin6_addr)
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard rc == 0 else { throw failure("bind") }
    }
}

/// What `run()` is doing, for `waitUntilListening()`.
private final class ListeningState: @unchecked Sendable {
    enum Phase {
        case idle
        case starting
        case listening(port: UInt16)
        case stopped(HTTPEndpointError?)
    }

    private let lock = NSLock()
    private var phase = Phase.idle

    func get() -> Phase { lock.withLock { phase } }
    func set(_ p: Phase) { lock.withLock { phase = p } }
    var isListening: Bool {
        if case .listening = get() { return true }
        return false
    }
}

/// Whether `run()` was asked to stop, and the task that enforces the deadline of that stop.
private final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var _requested = false
    private var deadline: Task<Void, Never>?

    var requested: Bool { lock.withLock { _requested } }

    /// Runs `start` the first time only.
    func request(_ start: () -> Task<Void, Never>) {
        lock.withLock {
            guard !_requested else { return }
            _requested = true
            deadline = start()
        }
    }

    /// `run()` is returning: the deadline has nothing left to cut.
    func finished() { lock.withLock { deadline?.cancel() } }
}

/// The three paths. Bodies are small and built per request: no caching, no state.
private struct Routes: Sendable {
    let name: String
    let health: @Sendable () async -> HealthReport
    let ready: @Sendable () async -> HealthReport
    let metrics: @Sendable () async -> String

    func respond(to request: Request) async -> Response {
        let method = request.method
        guard method == .get || method == .head else {
            return respond(method, .methodNotAllowed, "only GET and HEAD\n", extra: [.allow: "GET, HEAD"])
        }
        switch request.uri.path {
        case "/healthz":
            let r = await health()
            return respond(method, r.ok ? .ok : .serviceUnavailable, r.text(endpoint: "healthz"))
        case "/readyz":
            let r = await ready()
            return respond(method, r.ok ? .ok : .serviceUnavailable, r.text(endpoint: "readyz"))
        case "/metrics":
            return respond(method, .ok, await metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/":
            return respond(method, .ok, "\(name): /healthz /readyz /metrics\n")
        default:
            return respond(method, .notFound, "not found: try /healthz, /readyz or /metrics\n")
        }
    }

    private func respond(_ method: HTTPRequest.Method, _ status: HTTPResponse.Status, _ body: String,
                         contentType: String = "text/plain; charset=utf-8",
                         extra: HTTPFields = [:]) -> Response {
        let buffer = ByteBuffer(string: body)
        var headers: HTTPFields = [.contentType: contentType, .cacheControl: "no-store"]
        headers.append(contentsOf: extra)
        // HEAD gets the length the GET body would have, and no body.
        headers[.contentLength] = String(buffer.readableBytes)
        return Response(status: status, headers: headers, body: method == .head ? ResponseBody() : ResponseBody(byteBuffer: buffer))
    }
}

/// Hummingbird logs start-up ("Server started and listening on …") at info and a few
/// per-connection and shutdown conditions at error: one step down for us, so the daemon's
/// log gets neither a duplicate of its own start-up line nor noise when a client hangs up or
/// the endpoint is cancelled. What matters (it cannot bind) reaches the daemon as `run()`'s
/// error. Nothing is logged per request above trace.
private struct DemotingLogHandler: LogHandler {
    var logger: Logger

    var metadata: Logger.Metadata {
        get { logger.handler.metadata }
        set { logger.handler.metadata = newValue }
    }

    var logLevel: Logger.Level {
        // The lowest level that, demoted, still gets through `logger`'s own level.
        get {
            switch logger.logLevel {
            case .trace: .trace
            case .debug: .info
            default: .critical  // and even that is dropped by `logger`
            }
        }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { logger[metadataKey: key] }
        set { logger[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        let demoted: Logger.Level
        switch event.level {
        case .trace, .debug: demoted = .trace
        case .info, .notice, .warning, .error, .critical: demoted = .debug
        }
        logger.log(level: demoted, event.message, metadata: event.metadata, source: event.source,
                   file: event.file, function: event.function, line: event.line)
    }
}

/// One short line in ServiceLifecycle's logs ("Starting service", "Service finished").
extension HTTPEndpoint: CustomStringConvertible {
    public var description: String { "HTTPEndpoint(\(address))" }
}
