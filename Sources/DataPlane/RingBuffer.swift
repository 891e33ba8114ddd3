// The BPF ring buffer consumer the daemons poll for punted packets.
import CMip6
import Glibc

/// A BPF ring buffer consumer (ring_buffer__new/consume); records go to `handler`
/// on the thread that calls `consume()`.
public final class RingBuffer {
    final class Handler {
        let body: (UnsafeRawBufferPointer) -> Void
        init(_ body: @escaping (UnsafeRawBufferPointer) -> Void) { self.body = body }
    }

    let rb: OpaquePointer
    let handler: Unmanaged<Handler>

    public init(map: BPFMapHandle, handler body: @escaping (UnsafeRawBufferPointer) -> Void) throws(SystemError) {
        let h = Unmanaged.passRetained(Handler(body))
        do throws(SystemError) {
            rb = try Syscall.pointer("ring_buffer__new", map.name) {
                ring_buffer__new(map.fd, { ctx, data, size in
                    guard let ctx, let data else { return 0 }
                    Unmanaged<Handler>.fromOpaque(ctx).takeUnretainedValue().body(UnsafeRawBufferPointer(start: data, count: size))
                    return 0
                }, h.toOpaque(), nil)
            }
        } catch {
            h.release()
            throw error
        }
        handler = h
    }

    deinit {
        ring_buffer__free(rb)
        handler.release()
    }

    /// An fd that polls readable when records are waiting.
    public var pollFD: Int32 { ring_buffer__epoll_fd(rb) }

    /// Hands every waiting record to the handler; returns how many.
    @discardableResult
    public func consume() throws(SystemError) -> Int {
        Int(try Syscall.negErrno("ring_buffer__consume") { ring_buffer__consume(rb) })
    }
}

