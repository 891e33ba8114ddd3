import Foundation
import Glibc
import Logging
@testable import Mip6HTTP

/// One HTTP/1.1 exchange over a plain TCP socket: a client that shares no code with the server.
struct HTTPReply {
    var status: Int
    var headers: [String: String]  // names lowercased
    var body: String
}

enum ClientError: Error { case connect(Int32), send(Int32), malformed(String) }

/// Blocking I/O runs on its own thread so it never ties up the cooperative pool the server needs.
func httpRequest(_ path: String, method: String = "GET", port: UInt16, host: String = "127.0.0.1") async throws -> HTTPReply {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<HTTPReply, any Error>) in
        Thread { c.resume(with: Result { try blockingRequest(method, path, port: port, host: host) }) }.start()
    }
}

private func blockingRequest(_ method: String, _ path: String, port: UInt16, host: String) throws -> HTTPReply {
    let v6 = host.contains(":")
    let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError.connect(errno) }
    defer { close(fd) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)  // a hung server fails the test instead of hanging it
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc: Int32
    if v6 {
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &sa.sin6_addr)
        rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    } else {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sa.sin_addr)
        rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
    guard rc == 0 else { throw ClientError.connect(errno) }
    let authority = v6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\n\r\n".utf8)
    guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { throw ClientError.send(errno) }

    var raw: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        raw += buf[0..<n]
    }
    let text = String(decoding: raw, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw ClientError.malformed(text) }
    let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
    let statusParts = head[0].split(separator: " ")
    guard statusParts.count >= 2, statusParts[0] == "HTTP/1.1", let status = Int(statusParts[1]) else {
        throw ClientError.malformed(head[0])
    }
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
}

/// Sample lines of a Prometheus text exposition, keyed as rendered: `name{l1="v1",l2="v2"}`.
func samples(_ exposition: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = v
    }
    return out
}

/// Distinct values of `label` among the samples of `metric`.
func labelValues(_ exposition: String, metric: String, label: String) -> Set<String> {
    var out: Set<String> = []
    for key in samples(exposition).keys where key.hasPrefix(metric + "{") {
        guard let r = key.range(of: "\(label)=\"") else { continue }
        let rest = key[r.upperBound...]
        out.insert(String(rest[..<rest.firstIndex(of: "\"")!]))
    }
    return out
}

/// A flag the tests flip while the endpoint runs.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Bool
    init(_ v: Bool) { _value = v }
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); _value = newValue; lock.unlock() }
    }
}

/// Runs `endpoint` in a child task for the duration of `body`, which gets the bound port; then
/// cancels it and checks that `run()` returned normally.
func withRunningEndpoint<R>(_ endpoint: HTTPEndpoint, _ body: (UInt16) async throws -> R) async throws -> R {
    let task = Task { try await endpoint.run() }
    do {
        let bound = try await endpoint.waitUntilListening()
        let result = try await body(bound.port)
        task.cancel()
        try await task.value
        return result
    } catch {
        task.cancel()
        _ = try? await task.value
        throw error
    }
}

let quietLogger: Logger = {
    var l = Logger(label: "mip6.http.test")
    l.logLevel = .critical
    return l
}()

func makeEndpoint(port: UInt16 = 0, address: ListenAddress? = nil, health: @escaping @Sendable () async -> HealthReport = { HealthReport() },
                  ready: @escaping @Sendable () async -> HealthReport = { HealthReport() },
                  metrics: @escaping @Sendable () async -> String = { "" }) -> HTTPEndpoint {
    HTTPEndpoint(address: address ?? .loopback(port: port), logger: quietLogger, health: health, ready: ready, metrics: metrics)
}

/// Log records kept in memory, to check what the endpoint says and at which level.
final class LogCapture: @unchecked Sendable {
    struct Record { var level: Logger.Level; var message: String }
    private let lock = NSLock()
    private var _records: [Record] = []
    var records: [Record] { lock.lock(); defer { lock.unlock() }; return _records }
    func append(_ r: Record) { lock.lock(); _records.append(r); lock.unlock() }

    func logger(level: Logger.Level) -> Logger {
        var l = Logger(label: "mip6.http.test") { _ in Handler(capture: self) }
        l.logLevel = level
        return l
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { capture.append(Record(level: event.level, message: event.message.description)) }
    }
}

/// A client that connects and keeps the connection open: with `request`, after sending one
/// keep-alive GET and reading (the start of) its answer; without, having sent nothing.
/// Returns the socket; the caller closes it. Blocking I/O on its own thread, as `httpRequest`.
func openConnection(port: UInt16, request: String? = nil) async throws -> Int32 {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int32, any Error>) in
        Thread { c.resume(with: Result { try blockingOpen(port: port, request: request) }) }.start()
    }
}

private func blockingOpen(port: UInt16, request: String?) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError.connect(errno) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr)
    let rc = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { let e = errno; close(fd); throw ClientError.connect(e) }
    if let request {
        let bytes = Array("GET \(request) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
        guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { let e = errno; close(fd); throw ClientError.send(e) }
        var buf = [UInt8](repeating: 0, count: 4096)
        guard recv(fd, &buf, buf.count, 0) > 0 else { close(fd); throw ClientError.malformed("no answer") }
    }
    return fd
}

/// `count` connections to 127.0.0.1:`port` that send nothing; the kernel completes them
/// whether or not the server has accepted them yet. The caller closes them.
func connectBurst(port: UInt16, count: Int) async throws -> [Int32] {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<[Int32], any Error>) in
        Thread {
            c.resume(with: Result {
                var fds: [Int32] = []
                for _ in 0..<count {
                    do { fds.append(try blockingOpen(port: port, request: nil)) } catch {
                        fds.forEach { close($0) }
                        throw error
                    }
                }
                return fds
            })
        }.start()
    }
}

/// Whether this process still has a listening TCP socket on `port`: what "the endpoint
/// released its port" means. Binding the port again is no test of that: once released, an
/// ephemeral port may be taken at once by any other socket on the machine (another test,
/// another test run).
func thisProcessListens(on port: UInt16) -> Bool {
    var ours = Set<String>()
    if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
        for fd in fds {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
               target.hasPrefix("socket:[") {
                ours.insert(String(target.dropFirst("socket:[".count).dropLast()))
            }
        }
    }
    let hexPort = String(format: "%04X", port)
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, f[1].hasSuffix(":" + hexPort), f[3] == "0A" /* LISTEN */ else { continue }
            if ours.contains(String(f[9])) { return true }
        }
    }
    return false
}
