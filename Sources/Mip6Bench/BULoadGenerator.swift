import DataPlane
import Mip6TestSupport
import CMip6
import ControlPlane
import Foundation
import Glibc

/// An over-the-wire load generator for the home agent's control plane (`mip6-bench bu-load`).
///
/// Runs on the care-of side (the testbed's mobile-node namespace): sends Binding Updates (A and H
/// flags) from one care-of address for many distinct home addresses of the home prefix, as
/// Ethernet frames built before timing, through an AF_PACKET socket with sendmmsg(2), at an
/// offered rate (open loop, paced in small bursts) or as fast as it can. A second thread takes
/// the Binding Acknowledgements off the same interface (AF_PACKET, a classic BPF filter for
/// routing-header and Mobility-Header frames, recvmmsg(2), kernel receive timestamps) and
/// matches each to its BU by the home address in the Type 2 Routing Header and the sequence
/// number. Per rate: BUs sent, BAs by status, missing, BU/s accepted, and the round trip
/// (BU handed to the kernel -> BA received on the interface) p50/p90/p99/p99.9/max.
///
/// BU number k of the run (counted over all steps) is for home address `firstHomeAddress + k % pool`
/// with sequence `firstSequence + k / pool`, so a pool as large as the run makes every BU a new
/// registration and a smaller one makes later rounds refreshes.
public final class BULoadGenerator: @unchecked Sendable { // shared state under `lock`
    public struct Configuration: Sendable {
        public var interface: String
        public var destinationMAC: [UInt8]
        public var careOf: IPv6Address
        public var homeAgent: IPv6Address
        /// The home prefix (/64 or shorter): home addresses are `prefix high 64 bits` : `firstHomeAddress + i`.
        public var homePrefix: IPv6Prefix
        /// Interface identifier of the first home address.
        public var firstHomeAddress: UInt64 = 0xb000_0000_0000_0000
        /// Distinct home addresses; 0: one per BU of the whole run (every BU a new registration).
        public var homeAddresses: Int = 0
        public var lifetimeSeconds: UInt32 = 600
        /// Offered rates in BU/s, one step each, in order; 0 = as fast as possible.
        public var rates: [Double] = [20_000, 50_000, 100_000, 150_000, 0]
        /// Length of a paced step, seconds (its BU count is rate x seconds).
        public var seconds: Double = 2
        /// BUs of an as-fast-as-possible step.
        public var maxCount: Int = 400_000
        /// BUs per sendmmsg call (pacing granularity).
        public var burst: Int = 32
        /// Longest wait for late BAs after a step's last BU.
        public var drainSeconds: Double = 2
        public var firstSequence: UInt16 = 1
        /// Do not receive (a send-only run: the generator's own ceiling, e.g. on a dummy interface).
        public var receive: Bool = true

        public init(interface: String, destinationMAC: [UInt8], careOf: IPv6Address, homeAgent: IPv6Address,
                    homePrefix: IPv6Prefix) {
            self.interface = interface
            self.destinationMAC = destinationMAC
            self.careOf = careOf
            self.homeAgent = homeAgent
            self.homePrefix = homePrefix
        }

        func count(rate: Double) -> Int { rate > 0 ? max(1, Int((rate * seconds).rounded())) : maxCount }
    }

    public struct Step: Codable, Sendable {
        /// BU/s offered; 0 = as fast as possible.
        public var offeredRate: Double
        public var sent: Int
        public var sendErrors: Int
        /// First sendmmsg call to the return of the last.
        public var sendSeconds: Double
        public var sendRate: Double
        public var bindingAcks: Int
        /// BAs by status (RFC 6275 §6.1.8, "0" = accepted).
        public var bindingAcksByStatus: [String: Int]
        public var accepted: Int
        public var missing: Int
        public var duplicates: Int
        /// Binding Errors and frames the filter let through that matched no BU of this step.
        public var bindingErrors: Int
        public var unmatched: Int
        /// accepted / sendSeconds.
        public var acceptedPerSecond: Double
        /// BAs / (first BU sent -> last BA received).
        public var baArrivalRate: Double
        public var completionSeconds: Double
        public var p50Microseconds: Double
        public var p90Microseconds: Double
        public var p99Microseconds: Double
        public var p999Microseconds: Double
        public var maxMicroseconds: Double
        /// Index of the first BU of the step in the run, and the home addresses/sequences it used.
        public var firstBU: Int
        public var firstHomeAddress: String
        public var sequences: String
    }

    public struct Result: Codable, Sendable {
        public var interface: String
        public var careOf: String
        public var homeAgent: String
        public var homeAddresses: Int
        public var frameBytes: Int
        public var burst: Int
        public var lifetimeSeconds: UInt32
        public var receive: Bool
        public var steps: [Step]
    }

    let config: Configuration
    let total: Int
    let pool: Int
    let frameBytes: Int
    static let stride = 128

    // Per BU of the run: send and receive time (CLOCK_REALTIME ns, 0 = none), BA status.
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

    public init(_ config: Configuration) throws(SystemError) {
        guard config.homePrefix.length <= 64 else {
            throw SystemError("bu-load", errno: EINVAL, "home prefix \(config.homePrefix) longer than /64")
        }
        guard config.destinationMAC.count == 6 else { throw SystemError("bu-load", errno: EINVAL, "destination MAC") }
        self.config = config
        total = config.rates.reduce(0) { $0 + config.count(rate: $1) }
        pool = config.homeAddresses > 0 ? config.homeAddresses : total
        guard total / pool < 30_000 else {
            throw SystemError("bu-load", errno: EINVAL, "more than 30000 rounds over \(pool) home addresses: sequence numbers would wrap")
        }
        sendNs = .allocate(capacity: total)
        sendNs.initialize(repeating: 0, count: total)
        recvNs = .allocate(capacity: total)
        recvNs.initialize(repeating: 0, count: total)
        status = .allocate(capacity: total)
        status.initialize(repeating: 0xff, count: total)
        frameBytes = 14 + PacketBuilder.bindingUpdate(
            BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 1), careOf: config.careOf,
            homeAgent: config.homeAgent, homeAddress: IPv6Address(high: config.homePrefix.address.high, low: config.firstHomeAddress)).count
        precondition(frameBytes <= Self.stride)
    }

    deinit {
        sendNs.deallocate()
        recvNs.deallocate()
        status.deallocate()
    }

    func homeAddress(_ index: Int) -> IPv6Address {
        IPv6Address(high: config.homePrefix.address.high, low: config.firstHomeAddress &+ UInt64(index))
    }

    func sequence(_ k: Int) -> UInt16 { config.firstSequence &+ UInt16(truncatingIfNeeded: k / pool) }

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

    public func run(progress: ((Step) -> Void)? = nil) throws -> Result {
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
        var receiver: Thread?
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
            t.name = "bu-load-rx"
            t.start()
            receiver = t
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
        _ = receiver

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

        var steps: [Step] = []
        var k0 = 0
        for rate in config.rates {
            let count = config.count(rate: rate)
            // Frames for this step, built before timing.
            let frames = UnsafeMutableRawPointer.allocate(byteCount: count * Self.stride, alignment: 64)
            defer { frames.deallocate() }
            let eth = config.destinationMAC + iface.mac + [0x86, 0xDD]
            let units = UInt16(min(config.lifetimeSeconds / 4, 0xffff))
            for j in 0..<count {
                let k = k0 + j
                let p = PacketBuilder.bindingUpdate(BindingUpdate(sequence: sequence(k), flags: [.ack, .home], lifetime: units),
                                                    careOf: config.careOf, homeAgent: config.homeAgent,
                                                    homeAddress: homeAddress(k % pool))
                let dst = frames + j * Self.stride
                eth.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: 14) }
                p.withUnsafeBytes { (dst + 14).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
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
                    iovs[i] = iovec(iov_base: frames + (j + i) * Self.stride, iov_len: frameBytes)
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

            // Drain: until every BU of the step is answered, or no BA for 200 ms, or drainSeconds.
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

            // This step's BUs.
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
            let step = Step(
                offeredRate: rate, sent: count, sendErrors: sendErrors, sendSeconds: sendSeconds,
                sendRate: sendSeconds > 0 ? Double(count) / sendSeconds : 0, bindingAcks: acks,
                bindingAcksByStatus: byStatus, accepted: accepted, missing: config.receive ? count - acks : 0,
                duplicates: dup, bindingErrors: be, unmatched: unm,
                acceptedPerSecond: sendSeconds > 0 ? Double(accepted) / sendSeconds : 0,
                baArrivalRate: completion > 0 ? Double(acks) / completion : 0, completionSeconds: completion,
                p50Microseconds: pct(0.50), p90Microseconds: pct(0.90), p99Microseconds: pct(0.99),
                p999Microseconds: pct(0.999), maxMicroseconds: latencies.last.map { Double($0) / 1000 } ?? 0,
                firstBU: k0, firstHomeAddress: "\(homeAddress(k0 % pool))",
                sequences: sequence(k0) == sequence(k0 + count - 1) ? "\(sequence(k0))" : "\(sequence(k0))-\(sequence(k0 + count - 1))")
            steps.append(step)
            progress?(step)
            k0 += count
        }
        return Result(interface: config.interface, careOf: "\(config.careOf)", homeAgent: "\(config.homeAgent)",
                      homeAddresses: pool, frameBytes: frameBytes, burst: burst, lifetimeSeconds: config.lifetimeSeconds,
                      receive: config.receive, steps: steps)
    }

    // MARK: receiving BAs

    func openReceiveSocket(_ iface: NetworkInterface) throws(SystemError) -> OwnedFD {
        let s = try Syscall.call("socket(AF_PACKET)") {
            socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(UInt16(ETH_P_IPV6).bigEndian))
        }
        let fd = OwnedFD(s)
        // Classic BPF: IPv6 with a routing header (BA to a care-of address) or a bare Mobility
        // Header (Binding Error) right after the IPv6 header; 256 bytes of each.
        let filter: [(UInt16, UInt8, UInt8, UInt32)] = [
            (0x28, 0, 0, 12),          // ldh [12]
            (0x15, 0, 4, 0x86dd),      // jeq ETH_P_IPV6 else drop
            (0x30, 0, 0, 20),          // ldb [20] (next header)
            (0x15, 1, 0, 43),          // jeq routing -> accept
            (0x15, 0, 1, 135),         // jeq mobility -> accept else drop
            (0x06, 0, 0, 256),         // accept
            (0x06, 0, 0, 0),           // drop
        ]
        var insns = [UInt8](repeating: 0, count: filter.count * 8)
        for (i, f) in filter.enumerated() {
            withUnsafeBytes(of: f.0) { for b in 0..<2 { insns[i * 8 + b] = $0[b] } }
            insns[i * 8 + 2] = f.1
            insns[i * 8 + 3] = f.2
            withUnsafeBytes(of: f.3) { for b in 0..<4 { insns[i * 8 + 4 + b] = $0[b] } }
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
        let firstHoA = config.firstHomeAddress
        let prefixHigh = config.homePrefix.address.high
        let firstSeq = config.firstSequence

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
                let p = UnsafeRawBufferPointer(start: bufs + i * bufSize, count: min(len, bufSize))
                classify(p, at: t, prefixHigh: prefixHigh, firstHoA: firstHoA, firstSeq: firstSeq)
            }
            lock.unlock()
        }
    }

    /// One received frame (caller holds `lock`).
    @inline(__always)
    func classify(_ p: UnsafeRawBufferPointer, at t: UInt64, prefixHigh: UInt64, firstHoA: UInt64, firstSeq: UInt16) {
        guard p.count >= 14 + 40 + 8, p[12] == 0x86, p[13] == 0xdd else { return }
        switch p[20] {
        case 43:
            // Routing header type 2 (Hdr Ext Len 2) then the Mobility Header: a BA to the care-of address.
            guard p.count >= 78 + 12, p[54] == 135, p[55] == 2, p[56] == 2, p[80] == 6 else { unmatched += 1; return }
            let hi = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 62, as: UInt64.self))
            let lo = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 70, as: UInt64.self))
            let index = lo &- firstHoA
            guard hi == prefixHigh, index < UInt64(pool) else { unmatched += 1; return }
            let seq = UInt16(p[86]) << 8 | UInt16(p[87])
            let k = Int(seq &- firstSeq) * pool + Int(index)
            // (The sender stamps a burst after sendmmsg returns: its BA may already be here.)
            guard k < total else { unmatched += 1; return }
            if recvNs[k] != 0 { duplicates += 1; return }
            recvNs[k] = t
            status[k] = p[84]
            received += 1
        case 135:
            if p.count >= 54 + 8, p[56] == 7 { bindingErrors += 1 } else { unmatched += 1 }
        default:
            return
        }
    }
}
