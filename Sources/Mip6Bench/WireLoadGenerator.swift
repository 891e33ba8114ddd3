import DataPlane
import CMip6
import ControlPlane
import Foundation
import Glibc

/// What a wire load generator sends and how it recognises the answers: Binding Updates to a
/// home agent (`BUWorkload`, `mip6-bench bu-load`) or Proxy Binding Updates to a local
/// mobility anchor (`PBUWorkload`, `mip6-bench pbu-load`).
///
/// Message k of the run (counted over all steps) has one answer at most; `classify` maps a
/// received frame back to its k. Called on the receiver thread, one frame at a time.
protocol SignalingWorkload {
    /// The IPv6 packet of message k (built before its step is timed).
    func packet(_ k: Int) -> [UInt8]
    /// Rewrites the IPv6 packet of message k in place just before it is handed to the kernel
    /// (a fresh timestamp, its checksum): nil when the packets are sent as built.
    var freshen: ((_ ipv6: UnsafeMutableRawPointer) -> Void)? { get }
    /// Classic BPF for the receive socket: what reaches `classify` (256 bytes of each).
    var receiveFilter: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)] { get }
    /// A received Ethernet frame the filter let through.
    func classify(_ frame: UnsafeRawBufferPointer) -> SignalingAnswer
}

enum SignalingAnswer {
    /// The acknowledgement of message k, with its status.
    case ack(Int, status: UInt8)
    /// A Binding Error (MH type 7).
    case error
    /// Ours in form, but for no message of the run.
    case unmatched
    /// Not signaling at all.
    case ignored
}

/// The engine of `mip6-bench bu-load` and `pbu-load`: an over-the-wire load generator for a
/// control plane.
///
/// Sends a workload's messages as Ethernet frames built before timing, through an AF_PACKET
/// socket with sendmmsg(2) (qdisc bypassed), at each offered rate (open loop, paced in small
/// bursts) or as fast as it can. A second thread takes the answers off the same interface
/// (AF_PACKET, the workload's classic BPF filter, recvmmsg(2), kernel receive timestamps) and
/// matches each to its message. Per rate: messages sent, answers by status, missing,
/// accepted/s, and the round trip (message handed to the kernel -> answer received on the
/// interface) p50/p90/p99/p99.9/max.
final class WireLoadGenerator: @unchecked Sendable { // shared state under `lock`
    struct Configuration: Sendable {
        var interface: String
        var destinationMAC: [UInt8]
        /// Offered rates in messages/s, one step each, in order; 0 = as fast as possible.
        var rates: [Double] = [20_000, 50_000, 100_000, 150_000, 0]
        /// Length of a paced step, seconds (its message count is rate x seconds).
        var seconds: Double = 2
        /// Messages of an as-fast-as-possible step.
        var maxCount: Int = 400_000
        /// Messages per sendmmsg call (pacing granularity).
        var burst: Int = 32
        /// Longest wait for late answers after a step's last message.
        var drainSeconds: Double = 2
        /// Do not receive (a send-only run: the generator's own ceiling, e.g. on a dummy interface).
        var receive: Bool = true

        init(interface: String, destinationMAC: [UInt8]) {
            self.interface = interface
            self.destinationMAC = destinationMAC
        }

        func count(rate: Double) -> Int { rate > 0 ? max(1, Int((rate * seconds).rounded())) : maxCount }
        var total: Int { rates.reduce(0) { $0 + count(rate: $1) } }
    }

    /// One offered rate. The names say BU/BA; for PBUs read PBU/PBA (a PBA is a Binding
    /// Acknowledgement with the P flag, RFC 5213 §8.2).
    struct Step: Codable, Sendable {
        /// Messages/s offered; 0 = as fast as possible.
        var offeredRate: Double
        var sent: Int
        var sendErrors: Int
        /// First sendmmsg call to the return of the last.
        var sendSeconds: Double
        var sendRate: Double
        var bindingAcks: Int
        /// Acknowledgements by status (RFC 6275 §6.1.8, RFC 5213 §8.9; "0" = accepted).
        var bindingAcksByStatus: [String: Int]
        var accepted: Int
        var missing: Int
        var duplicates: Int
        /// Binding Errors, and frames the filter let through that matched no message of this step.
        var bindingErrors: Int
        var unmatched: Int
        /// accepted / sendSeconds.
        var acceptedPerSecond: Double
        /// Acknowledgements / (first message sent -> last acknowledgement received).
        var baArrivalRate: Double
        var completionSeconds: Double
        var p50Microseconds: Double
        var p90Microseconds: Double
        var p99Microseconds: Double
        var p999Microseconds: Double
        var maxMicroseconds: Double
        /// Index of the first message of the step in the run.
        var firstBU: Int
        /// What the workload says about the step (first home address or node, sequences).
        var firstHomeAddress: String
        var sequences: String
    }

    let config: Configuration
    let workload: SignalingWorkload
    let total: Int
    let frameBytes: Int
    /// The step's first message k -> (first address or node, sequences), for the report.
    let describe: (_ first: Int, _ count: Int) -> (String, String)
    /// Bytes between two prebuilt frames (a cache-line multiple).
    let stride: Int

    // Per message of the run: send and receive time (CLOCK_REALTIME ns, 0 = none), status.
    let sendNs: UnsafeMutablePointer<UInt64>
    let recvNs: UnsafeMutablePointer<UInt64>
    let status: UnsafeMutablePointer<UInt8>

    // Receiver counters, under `lock`.
    let lock = NSLock()
    var received = 0
    var duplicates = 0
    var bindingErrors = 0
    var unmatched = 0
    var stopReceiver = false
    var receiverError: SystemError?

    init(_ config: Configuration, workload: SignalingWorkload,
         describe: @escaping (_ first: Int, _ count: Int) -> (String, String)) throws(SystemError) {
        guard config.destinationMAC.count == 6 else { throw SystemError("wire load", errno: EINVAL, "destination MAC") }
        self.config = config
        self.workload = workload
        self.describe = describe
        total = config.total
        frameBytes = 14 + workload.packet(0).count
        stride = (frameBytes + 63) & ~63
        sendNs = .allocate(capacity: total)
        sendNs.initialize(repeating: 0, count: total)
        recvNs = .allocate(capacity: total)
        recvNs.initialize(repeating: 0, count: total)
        status = .allocate(capacity: total)
        status.initialize(repeating: 0xff, count: total)
    }

    deinit {
        sendNs.deallocate()
        recvNs.deallocate()
        status.deallocate()
    }

    static func realtimeNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: libc calls Swift's Glibc does not import (struct mmsghdr needs _GNU_SOURCE)

    typealias MMsgFn = @convention(c) (Int32, UnsafeMutableRawPointer?, UInt32, Int32) -> Int32
    typealias RecvMMsgFn = @convention(c) (Int32, UnsafeMutableRawPointer?, UInt32, Int32, UnsafeMutablePointer<timespec>?) -> Int32
    /// sizeof(struct mmsghdr): struct msghdr, unsigned msg_len, padding.
    static let mmsgSize = 64
    static let mmsgLenOffset = MemoryLayout<msghdr>.size

    static func symbol<T>(_ name: String, as: T.Type) throws(SystemError) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, name) else {
            throw SystemError("dlsym", errno: ENOSYS, name)
        }
        return unsafeBitCast(sym, to: T.self)
    }

    static func setInt(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
        var v = value
        try Syscall.call("setsockopt(\(what))") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    // MARK: run

    func run(progress: ((Step) -> Void)? = nil) throws -> [Step] {
        let iface = try NetworkInterface(named: config.interface)
        let sendmmsg = try Self.symbol("sendmmsg", as: MMsgFn.self)

        // Send socket: protocol 0 (nothing queued to it), qdisc bypassed, addressed per message.
        let s = try Syscall.call("socket(AF_PACKET)") { socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let sendFD = OwnedFD(s)
        try? Self.setInt(s, 263 /* SOL_PACKET */, 20 /* PACKET_QDISC_BYPASS */, 1, "PACKET_QDISC_BYPASS")
        try? Self.setInt(s, SOL_SOCKET, 32 /* SO_SNDBUFFORCE */, 16 << 20, "SO_SNDBUFFORCE")
        let sll = UnsafeMutablePointer<sockaddr_ll>.allocate(capacity: 1)
        defer { sll.deallocate() }
        sll.initialize(to: sockaddr_ll())
        sll.pointee.sll_family = UInt16(AF_PACKET)
        sll.pointee.sll_protocol = UInt16(ETH_P_IPV6).bigEndian
        sll.pointee.sll_ifindex = Int32(iface.index)
        sll.pointee.sll_halen = 6
        withUnsafeMutableBytes(of: &sll.pointee.sll_addr) { raw in for i in 0..<6 { raw[i] = config.destinationMAC[i] } }

        // The receiver runs over all steps.
        var receiverDone: DispatchSemaphore?
        var receiveFD: OwnedFD?
        if config.receive {
            let rfd = try openReceiveSocket(iface)
            receiveFD = rfd
            let raw = rfd.raw
            let done = DispatchSemaphore(value: 0)
            let t = Thread { [self] in
                do { try self.receiveLoop(raw) } catch let e as SystemError {
                    lock.lock(); receiverError = e; lock.unlock()
                } catch {}
                done.signal()
            }
            t.name = "wire-load-rx"
            t.start()
            receiverDone = done
            usleep(50_000)
        }
        defer {
            if let receiverDone {
                lock.lock(); stopReceiver = true; lock.unlock()
                receiverDone.wait()
            }
            withExtendedLifetime(receiveFD) {}
        }

        let burst = max(1, config.burst)
        let msgs = UnsafeMutableRawPointer.allocate(byteCount: Self.mmsgSize * burst, alignment: 8)
        let iovs = UnsafeMutablePointer<iovec>.allocate(capacity: burst)
        defer { msgs.deallocate(); iovs.deallocate() }
        msgs.initializeMemory(as: UInt8.self, repeating: 0, count: Self.mmsgSize * burst)
        for i in 0..<burst {
            var h = msghdr()
            h.msg_name = UnsafeMutableRawPointer(sll)
            h.msg_namelen = socklen_t(MemoryLayout<sockaddr_ll>.size)
            h.msg_iov = iovs + i
            h.msg_iovlen = 1
            msgs.storeBytes(of: h, toByteOffset: i * Self.mmsgSize, as: msghdr.self)
        }
        let freshen = workload.freshen

        var steps: [Step] = []
        var k0 = 0
        for rate in config.rates {
            let count = config.count(rate: rate)
            // Frames for this step, built before timing.
            let frames = UnsafeMutableRawPointer.allocate(byteCount: count * stride, alignment: 64)
            defer { frames.deallocate() }
            let eth = config.destinationMAC + iface.mac + [0x86, 0xDD]
            var lengths = [Int](repeating: 0, count: count)
            for j in 0..<count {
                let p = workload.packet(k0 + j)
                let dst = frames + j * stride
                eth.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: 14) }
                p.withUnsafeBytes { (dst + 14).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
                lengths[j] = 14 + p.count
            }
            lock.lock()
            let receivedBefore = received, dupBefore = duplicates, beBefore = bindingErrors, unmBefore = unmatched
            lock.unlock()

            // Send: bursts of `burst`, burst b due at start + b * burst / rate (open loop).
            var sendErrors = 0
            let interval = rate > 0 ? Double(burst) / rate * 1e9 : 0
            let start = monotonicNanoseconds() + 1_000_000
            var firstSend: UInt64 = 0
            var lastSend: UInt64 = 0
            var j = 0
            var b = 0
            while j < count {
                if rate > 0 {
                    let due = start + UInt64(Double(b) * interval)
                    if monotonicNanoseconds() < due {
                        var ts = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
                        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
                    }
                }
                b += 1
                let n = min(burst, count - j)
                for i in 0..<n {
                    let frame = frames + (j + i) * stride
                    freshen?(frame + 14)
                    iovs[i] = iovec(iov_base: frame, iov_len: lengths[j + i])
                }
                var off = 0
                while off < n {
                    let t0 = Self.realtimeNs()
                    var rc: Int32 = 0
                    do throws(SystemError) {
                        rc = try Syscall.call("sendmmsg(AF_PACKET)", config.interface) {
                            sendmmsg(sendFD.raw, msgs + off * Self.mmsgSize, UInt32(n - off), 0)
                        }
                    } catch {
                        if !error.errno.is(ENOBUFS, EAGAIN) { throw error }
                    }
                    let t1 = Self.realtimeNs()
                    if firstSend == 0 { firstSend = t0 }
                    if rc <= 0 {
                        sendErrors += 1
                        sched_yield()
                        continue
                    }
                    let sent = Int(rc)
                    for i in 0..<sent {
                        sendNs[k0 + j + off + i] = t0 + (t1 - t0) * UInt64(i + 1) / UInt64(sent)
                    }
                    lastSend = t1
                    off += sent
                }
                j += n
            }
            let sendSeconds = Double(lastSend - firstSend) / 1e9

            // Drain: until every message of the step is answered, or no answer for 200 ms, or drainSeconds.
            if config.receive {
                let deadline = monotonicNanoseconds() + UInt64(config.drainSeconds * 1e9)
                var last = -1
                var lastChange = monotonicNanoseconds()
                while monotonicNanoseconds() < deadline {
                    lock.lock(); let r = received; let err = receiverError; lock.unlock()
                    if let err { throw err }
                    if r - receivedBefore >= count { break }
                    if r != last { last = r; lastChange = monotonicNanoseconds() }
                    else if monotonicNanoseconds() - lastChange > 200_000_000 { break }
                    usleep(5_000)
                }
                usleep(20_000)
            }

            // This step's messages.
            lock.lock()
            let dup = duplicates - dupBefore, be = bindingErrors - beBefore, unm = unmatched - unmBefore
            var latencies: [UInt64] = []
            latencies.reserveCapacity(count)
            var byStatus: [String: Int] = [:]
            var lastRecv: UInt64 = 0
            for k in k0..<k0 + count where recvNs[k] != 0 {
                latencies.append(recvNs[k] > sendNs[k] ? recvNs[k] - sendNs[k] : 0)
                byStatus[String(status[k]), default: 0] += 1
                lastRecv = max(lastRecv, recvNs[k])
            }
            lock.unlock()
            latencies.sort()
            func pct(_ p: Double) -> Double {
                latencies.isEmpty ? 0 : Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1000
            }
            let acks = latencies.count
            let accepted = byStatus["0"] ?? 0
            let completion = lastRecv > firstSend ? Double(lastRecv - firstSend) / 1e9 : 0
            let (first, sequences) = describe(k0, count)
            let step = Step(
                offeredRate: rate, sent: count, sendErrors: sendErrors, sendSeconds: sendSeconds,
                sendRate: sendSeconds > 0 ? Double(count) / sendSeconds : 0, bindingAcks: acks,
                bindingAcksByStatus: byStatus, accepted: accepted, missing: config.receive ? count - acks : 0,
                duplicates: dup, bindingErrors: be, unmatched: unm,
                acceptedPerSecond: sendSeconds > 0 ? Double(accepted) / sendSeconds : 0,
                baArrivalRate: completion > 0 ? Double(acks) / completion : 0, completionSeconds: completion,
                p50Microseconds: pct(0.50), p90Microseconds: pct(0.90), p99Microseconds: pct(0.99),
                p999Microseconds: pct(0.999), maxMicroseconds: latencies.last.map { Double($0) / 1000 } ?? 0,
                firstBU: k0, firstHomeAddress: first, sequences: sequences)
            steps.append(step)
            progress?(step)
            k0 += count
        }
        return steps
    }

    // MARK: receiving the answers

    func openReceiveSocket(_ iface: NetworkInterface) throws(SystemError) -> OwnedFD {
        let s = try Syscall.call("socket(AF_PACKET)") {
            socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(UInt16(ETH_P_IPV6).bigEndian))
        }
        let fd = OwnedFD(s)
        let filter = workload.receiveFilter
        var insns = [UInt8](repeating: 0, count: filter.count * 8)
        for (i, f) in filter.enumerated() {
            withUnsafeBytes(of: f.code) { for b in 0..<2 { insns[i * 8 + b] = $0[b] } }
            insns[i * 8 + 2] = f.jt
            insns[i * 8 + 3] = f.jf
            withUnsafeBytes(of: f.k) { for b in 0..<4 { insns[i * 8 + 4 + b] = $0[b] } }
        }
        try Syscall.call("setsockopt(SO_ATTACH_FILTER)") { () -> Int32 in insns.withUnsafeMutableBytes { ip in
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            var prog = [UInt8](repeating: 0, count: 16)
            let count = UInt16(ip.count / 8)
            withUnsafeBytes(of: count) { prog[0] = $0[0]; prog[1] = $0[1] }
            withUnsafeBytes(of: UInt(bitPattern: ip.baseAddress)) { for b in 0..<8 { prog[8 + b] = $0[b] } }
            return prog.withUnsafeBytes { setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, $0.baseAddress, 16) }
        } }
        try Self.setInt(s, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS")
        if (try? Self.setInt(s, SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20, "SO_RCVBUFFORCE")) == nil {
            try? Self.setInt(s, SOL_SOCKET, SO_RCVBUF, 64 << 20, "SO_RCVBUF")
        }
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        try Syscall.call("setsockopt(SO_RCVTIMEO)") { setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) }
        var sll = sockaddr_ll()
        sll.sll_family = UInt16(AF_PACKET)
        sll.sll_protocol = UInt16(ETH_P_IPV6).bigEndian
        sll.sll_ifindex = Int32(iface.index)
        try Syscall.call("bind(AF_PACKET)", iface.name) {
            withUnsafePointer(to: &sll) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
            }
        }
        return fd
    }

    func receiveLoop(_ fd: Int32) throws(SystemError) {
        let recvmmsg = try Self.symbol("recvmmsg", as: RecvMMsgFn.self)
        let batch = 64, bufSize = 256, ctlSize = 64
        let msgs = UnsafeMutableRawPointer.allocate(byteCount: Self.mmsgSize * batch, alignment: 8)
        let iovs = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
        let bufs = UnsafeMutableRawPointer.allocate(byteCount: bufSize * batch, alignment: 64)
        let ctls = UnsafeMutableRawPointer.allocate(byteCount: ctlSize * batch, alignment: 8)
        defer { msgs.deallocate(); iovs.deallocate(); bufs.deallocate(); ctls.deallocate() }

        while true {
            lock.lock(); let stop = stopReceiver; lock.unlock()
            if stop { return }
            for i in 0..<batch {
                iovs[i] = iovec(iov_base: bufs + i * bufSize, iov_len: bufSize)
                var h = msghdr()
                h.msg_iov = iovs + i
                h.msg_iovlen = 1
                h.msg_control = ctls + i * ctlSize
                h.msg_controllen = ctlSize
                msgs.storeBytes(of: h, toByteOffset: i * Self.mmsgSize, as: msghdr.self)
            }
            // MSG_WAITFORONE: block for the first, then take what is queued.
            let n: Int32
            do throws(SystemError) {
                n = try Syscall.call("recvmmsg(AF_PACKET)", config.interface) { recvmmsg(fd, msgs, UInt32(batch), 0x10000 /* MSG_WAITFORONE */, nil) }
            } catch {
                if error.errno.is(EAGAIN, EWOULDBLOCK) { continue } // SO_RCVTIMEO: look at the stop flag
                throw error
            }
            let userNow = Self.realtimeNs()
            lock.lock()
            for i in 0..<Int(n) {
                let h = msgs.load(fromByteOffset: i * Self.mmsgSize, as: msghdr.self)
                let len = Int(msgs.load(fromByteOffset: i * Self.mmsgSize + Self.mmsgLenOffset, as: UInt32.self))
                var t = userNow
                let ctl = UnsafeRawPointer(ctls + i * ctlSize)
                if h.msg_controllen >= 32, ctl.load(fromByteOffset: 8, as: Int32.self) == SOL_SOCKET,
                   ctl.load(fromByteOffset: 12, as: Int32.self) == SO_TIMESTAMPNS /* SCM_TIMESTAMPNS */ {
                    let sec = ctl.load(fromByteOffset: 16, as: Int.self), nsec = ctl.load(fromByteOffset: 24, as: Int.self)
                    if sec > 0 { t = UInt64(sec) * 1_000_000_000 + UInt64(nsec) }
                }
                record(workload.classify(UnsafeRawBufferPointer(start: bufs + i * bufSize, count: min(len, bufSize))), at: t)
            }
            lock.unlock()
        }
    }

    /// One classified frame (caller holds `lock`).
    @inline(__always)
    func record(_ answer: SignalingAnswer, at t: UInt64) {
        switch answer {
        case let .ack(k, s):
            // (The sender stamps a burst after sendmmsg returns: its answer may already be here.)
            guard k >= 0, k < total else { unmatched += 1; return }
            if recvNs[k] != 0 { duplicates += 1; return }
            recvNs[k] = t
            status[k] = s
            received += 1
        case .error:
            bindingErrors += 1
        case .unmatched:
            unmatched += 1
        case .ignored:
            return
        }
    }
}
