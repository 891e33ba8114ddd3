// etcd's own API: gRPC over HTTP/2 (h2c, prior knowledge) straight on swift-nio-http2, one
// connection per member with every call multiplexed on it.
//
// Why not grpc-swift-2: its HTTP/2 transport keeps swift-nio-http2's default DoS limit of 200
// PING/SETTINGS frames per 30 s, and etcd (grpc-go) sends a BDP PING with nearly every reply,
// so the connection was closed (ENHANCE_YOUR_CALM) after ~190 calls. Here the limit is ours
// to set (`controlFrameRateLimit`); everything else a unary call and a watch need is ~150 lines.
import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// A call that ended with a gRPC status other than OK.
struct GRPCStatusError: Error, CustomStringConvertible {
    var code: Int
    var message: String
    var description: String { "gRPC status \(code): \(message)" }
    /// UNAVAILABLE (no leader, a member stopping, a timeout inside etcd): another member may answer.
    var retryable: Bool { code == 14 }
}

/// One HTTP/2 connection to one member, opened when first needed and again after it closes.
final class GRPCConnection: @unchecked Sendable {
    let host: String
    let port: Int
    let authority: String
    private let lock = NSLock()
    private var open: (channel: Channel, mux: NIOHTTP2Handler.StreamMultiplexer)?
    private var pending: EventLoopFuture<(Channel, NIOHTTP2Handler.StreamMultiplexer)>?
    private var connectCount = 0
    /// Connections opened so far (a test shows one connection carries every call).
    var connects: Int { lock.withLock { connectCount } }

    /// `base`: "http://HOST:PORT" or "http://[V6]:PORT".
    init?(base: String) {
        guard let c = URLComponents(string: base), c.scheme == "http", let h = c.host, let p = c.port else { return nil }
        host = h.hasPrefix("[") ? String(h.dropFirst().dropLast()) : h
        port = p
        authority = "\(c.host!):\(p)"
    }

    static let connectTimeout = TimeAmount.milliseconds(300)

    /// The HTTP/2 settings: windows large enough for a 5000-key list page in flight; PINGs
    /// as often as etcd sends them (a BDP probe with its replies).
    static let configuration: (NIOHTTP2Handler.ConnectionConfiguration, NIOHTTP2Handler.StreamConfiguration) = {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = [HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
                             HTTP2Setting(parameter: .initialWindowSize, value: 4 << 20),
                             HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16)]
        c.targetWindowSize = 16 << 20
        c.controlFrameRateLimit.maximumCount = 1_000_000
        var s = NIOHTTP2Handler.StreamConfiguration()
        s.targetWindowSize = 4 << 20
        return (c, s)
    }()

    /// The connection's multiplexer, opening the connection first if it is not open. A future
    /// on its event loop: a call is set up there in one go (each hop between Swift's pool
    /// and the event loop is a thread wake-up; at 10,000 BU/s they were a fifth of the writing
    /// replica's CPU).
    func multiplexer() -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        lock.withLock {
            if let o = open, o.channel.isActive { return o.channel.eventLoop.makeSucceededFuture(o.mux) }
            if let p = pending { return p.map(\.1) }
            let (connection, stream) = Self.configuration
            let p = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(Self.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port)
                .flatMap { channel in
                    channel.configureHTTP2Pipeline(mode: .client, connectionConfiguration: connection, streamConfiguration: stream,
                                                   inboundStreamInitializer: { $0.close() }) // etcd pushes nothing
                        .map { (channel, $0) }
                }
            pending = p
            connectCount += 1
            p.whenComplete { [self] result in
                lock.withLock {
                    if pending === p { pending = nil }
                    if case let .success((channel, mux)) = result { open = (channel, mux) }
                }
            }
            return p.map(\.1)
        }
    }

    /// Opens a stream on `mux`'s connection whose replies go to `handler` and sends `request`
    /// as its one message, all on the connection's event loop; `endStream`: half-close after
    /// it (a unary call; a watch stays open, or etcd ends it).
    func start(_ mux: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>, _ method: String, _ request: [UInt8],
               handler: GRPCCallHandler, endStream: Bool) -> EventLoopFuture<Channel> {
        let authority = authority
        return mux.flatMap { mux in
            mux.createStreamChannel { $0.pipeline.addHandler(handler) }
        }.flatMap { stream in
            let headers: HPACKHeaders = [":method": "POST", ":scheme": "http", ":path": method, ":authority": authority,
                                         "content-type": "application/grpc", "te": "trailers"]
            var body = stream.allocator.buffer(capacity: request.count + 5)
            body.writeInteger(UInt8(0)) // not compressed
            body.writeInteger(UInt32(request.count))
            body.writeBytes(request)
            stream.write(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
            return stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(body), endStream: endStream))).map { stream }
        }
    }

    /// A unary call: the one reply message, or the call's error after `timeout`. The caller
    /// waits once: set-up, the timer and the reply all happen on the event loop. The timer
    /// covers the set-up too: to a member that stopped reading (hung, frozen), a write waits
    /// for its flow-control window for good once the window is spent.
    func unary(_ method: String, _ request: [UInt8], timeout: TimeAmount) async throws -> [UInt8] {
        let mux = multiplexer()
        let loop = mux.eventLoop // the connection's: every callback below runs there
        let promise = loop.makePromise(of: [UInt8].self)
        var reply: [UInt8]?
        var stream: Channel?
        let handler = GRPCCallHandler(message: { reply = $0 }, end: { result in
            switch result {
            case .success:
                if let reply { promise.succeed(reply) } else { promise.fail(EtcdError("\(method): no reply message")) }
            case let .failure(e): promise.fail(e)
            }
        })
        let timer = loop.scheduleTask(in: timeout) {
            handler.fail(EtcdError("\(method): no answer in \(timeout.nanoseconds / 1_000_000) ms"), on: stream)
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        start(mux, method, request, handler: handler, endStream: true).whenComplete { result in
            switch result {
            case let .success(s):
                stream = s
                if handler.isFinished { s.close(promise: nil) } // timed out while it was set up
            case let .failure(e):
                handler.fail(e, on: nil)
            }
        }
        return try await promise.futureResult.get()
    }

    /// A server-streaming call (a watch): every reply message until the stream ends; ending
    /// the iteration resets the stream.
    func stream(_ method: String, _ request: [UInt8]) -> AsyncThrowingStream<[UInt8], Error> {
        AsyncThrowingStream { continuation in
            let handler = GRPCCallHandler(message: { continuation.yield($0) }, end: { continuation.finish(throwing: $0.failure) })
            let gone = Locked(false)
            continuation.onTermination = { _ in gone.write { $0 = true } }
            start(multiplexer(), method, request, handler: handler, endStream: false).whenComplete { result in
                switch result {
                case let .success(stream):
                    continuation.onTermination = { _ in stream.close(promise: nil) }
                    if gone.current { stream.close(promise: nil) } // the reader left while it started
                case let .failure(error):
                    handler.fail(error, on: nil)
                }
            }
        }
    }
}

private extension Result {
    var failure: Failure? {
        if case let .failure(e) = self { return e }
        return nil
    }
}

/// Reads one call's HTTP/2 frames: the response headers, gRPC messages (5-byte prefix, split
/// over DATA frames as they come), the trailers' grpc-status. Event loop only, except `fail`
/// before the stream exists.
final class GRPCCallHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let message: ([UInt8]) -> Void
    private let end: (Result<Void, Error>) -> Void
    private var finished = false
    private var buffer: [UInt8] = []
    /// Messages above this are refused (a 5000-key list page is ~0.5 MB).
    static let maxMessage = 64 << 20

    init(message: @escaping ([UInt8]) -> Void, end: @escaping (Result<Void, Error>) -> Void) {
        self.message = message
        self.end = end
    }

    /// The call ended (its result delivered). Event loop.
    var isFinished: Bool { finished }

    private func finish(_ r: Result<Void, Error>) {
        guard !finished else { return }
        finished = true
        end(r)
    }

    /// Ends the call with `error` and closes its stream (a timeout, a failed start).
    func fail(_ error: Error, on stream: Channel?) {
        if let stream {
            stream.eventLoop.execute {
                self.finish(.failure(error))
                stream.close(promise: nil)
            }
        } else {
            finish(.failure(error))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .headers(h):
            if let s = h.headers.first(name: ":status"), s != "200" {
                finish(.failure(EtcdError("HTTP status \(s)")))
                context.close(promise: nil)
                return
            }
            if let code = h.headers.first(name: "grpc-status") { // trailers, or trailers-only
                let text = h.headers.first(name: "grpc-message").map { $0.removingPercentEncoding ?? $0 } ?? ""
                finish(code == "0" ? .success(()) : .failure(GRPCStatusError(code: Int(code) ?? 2, message: text)))
            } else if h.endStream {
                finish(.failure(EtcdError("stream ended without a gRPC status")))
            }
        case let .data(d):
            if case let .byteBuffer(b) = d.data { buffer += b.readableBytesView }
            while buffer.count >= 5 {
                let n = Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
                guard buffer[0] == 0, n <= Self.maxMessage else {
                    finish(.failure(EtcdError("gRPC message compressed or larger than \(Self.maxMessage) bytes")))
                    context.close(promise: nil)
                    return
                }
                guard buffer.count >= 5 + n else { break }
                if !finished { message(Array(buffer[5..<(5 + n)])) }
                buffer.removeSubrange(0..<(5 + n))
            }
            if d.endStream { finish(.failure(EtcdError("stream ended without a gRPC status"))) }
        case let .rstStream(code):
            finish(.failure(EtcdError("stream reset by the member (\(code))")))
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(EtcdError("the connection to the member closed")))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(.failure(error))
        context.close(promise: nil)
    }
}
