import FlyingFox
import FlyingSocks
import Foundation
import Logging
import ServiceLifecycle

/// The `--http-listen` endpoint as a ServiceLifecycle service, served by FlyingFox:
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
public struct HTTPEndpoint: Service {
    public let address: ListenAddress
    private let server: HTTPServer
    private let logger: Logger

    public init(address: ListenAddress,
                logger: Logger = Logger(label: "mip6.http"),
                health: @escaping @Sendable () async -> HealthReport,
                ready: @escaping @Sendable () async -> HealthReport,
                metrics: @escaping @Sendable () async -> String) {
        self.address = address
        self.logger = logger
        let routes = Routes(health: health, ready: ready, metrics: metrics)
        // Requests only read snapshots; 5 s is generous and stops a stuck closure holding a connection.
        let config = HTTPServer.Configuration(address: address.socketAddress, timeout: 5,
                                              logger: FlyingFoxLogger(logger: logger))
        server = HTTPServer(config: config, handler: routes)
    }

    /// Serves until the task is cancelled or graceful shutdown is triggered, then returns.
    /// Throws `HTTPEndpointError.cannotListen` at once if it cannot bind, `.failed` if serving breaks.
    public func run() async throws {
        let server = self.server
        let address = self.address
        let logger = self.logger
        // Graceful shutdown becomes cancellation: nothing here is worth waiting for.
        try await cancelWhenGracefulShutdown {
            do {
                try await server.run()
            } catch {
                // FlyingFox ends its accept loop with an error when cancelled: that is a normal stop.
                if Task.isCancelled { return }
                throw HTTPEndpointError(error, address: address)
            }
        }
        logger.debug("http endpoint stopped", metadata: ["mip6.http.listen": "\(address)"])
    }

    /// Waits until `run()` is accepting connections and returns the bound address (the real
    /// port when the configured port was 0), for the caller to log. Throws if that does not
    /// happen within `timeout` (a bind failure shows up as `run()`'s error, not here).
    public func waitUntilListening(timeout: Double = 5) async throws -> ListenAddress {
        try await server.waitUntilListening(timeout: timeout)
        switch await server.listeningAddress {
        case let .ip4(_, port), let .ip6(_, port): return address.with(port: port)
        default: return address
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

    init(_ error: any Error, address: ListenAddress) {
        if let e = error as? HTTPEndpointError {
            self = e
        } else if case let .failed(type, errno, message) = error as? SocketError,
                  ["CreateSocket", "SetOption", "Bind", "Listen"].contains(type) {
            self = .cannotListen(address, errno: errno, message: message)
        } else {
            self = .failed(address, message: "\(error)")
        }
    }
}

extension ListenAddress {
    var socketAddress: any SocketAddress {
        // Both parse: the host was validated by inet_pton when the ListenAddress was made.
        switch family {
        case .ipv4: return (try? sockaddr_in.inet(ip4: host, port: port)) ?? sockaddr_in.inet(port: port)
        case .ipv6: return (try? sockaddr_in6.inet6(ip6: host, port: port)) ?? sockaddr_in6.inet6(port: port)
        }
    }

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
        let rc = socketAddress.withSockAddr { addr, len in bind(fd, addr, len) }
        guard rc == 0 else { throw failure("bind") }
    }
}

/// The three paths. Bodies are small and built per request: no caching, no state.
private struct Routes: HTTPHandler {
    let health: @Sendable () async -> HealthReport
    let ready: @Sendable () async -> HealthReport
    let metrics: @Sendable () async -> String

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard request.method == .GET || request.method == .HEAD else {
            return respond(request, .methodNotAllowed, "only GET and HEAD\n", extra: [.allow: "GET, HEAD"])
        }
        switch request.path {
        case "/healthz":
            let r = await health()
            return respond(request, r.ok ? .ok : .serviceUnavailable, r.text(endpoint: "healthz"))
        case "/readyz":
            let r = await ready()
            return respond(request, r.ok ? .ok : .serviceUnavailable, r.text(endpoint: "readyz"))
        case "/metrics":
            return respond(request, .ok, await metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/":
            return respond(request, .ok, "mip6 home agent: /healthz /readyz /metrics\n")
        default:
            return respond(request, .notFound, "not found: try /healthz, /readyz or /metrics\n")
        }
    }

    private func respond(_ request: HTTPRequest, _ status: HTTPStatusCode, _ body: String,
                         contentType: String = "text/plain; charset=utf-8",
                         extra: [HTTPHeader: String] = [:]) -> HTTPResponse {
        let data = Data(body.utf8)
        var headers = HTTPHeaders()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        for (k, v) in extra { headers[k] = v }
        // FlyingFox writes whatever body it is given; HEAD must get the length and no body.
        if request.method == .HEAD {
            headers[.contentLength] = String(data.count)
            return HTTPResponse(statusCode: status, headers: headers)
        }
        return HTTPResponse(statusCode: status, headers: headers, body: data)
    }
}

extension HTTPHeader {
    fileprivate static let allow = HTTPHeader("Allow")
}

/// FlyingFox logs every connection and request at info: that is trace for us (one line per
/// scrape would drown the daemon's log). What it calls critical (bind failures, its accept
/// loop ending on cancellation) reaches the daemon as `run()`'s error or as a normal stop.
private struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger

    func logDebug(_ debug: @autoclosure () -> String) { logger.trace("\(debug())") }
    func logInfo(_ info: @autoclosure () -> String) { logger.trace("\(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.debug("\(warning())") }
    // Per-connection errors (a client hanging up mid-request) are not the daemon's problem.
    func logError(_ error: @autoclosure () -> String) { logger.debug("\(error())") }
    func logCritical(_ critical: @autoclosure () -> String) { logger.debug("\(critical())") }
}
