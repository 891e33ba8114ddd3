import CMip6
import DataPlane
import Glibc

/// An AF_PACKET socket on one interface that sends whole frames and reads what arrives
/// (tests only; create it on a thread inside the namespace).
public final class FrameTap {
    let fd: OwnedFD
    let ifindex: UInt32

    public init(ifindex: UInt32) throws {
        let s = try Syscall.call("socket(AF_PACKET)") {
            socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(UInt16(ETH_P_ALL).bigEndian))
        }
        fd = OwnedFD(s)
        self.ifindex = ifindex
        var sll = sockaddr_ll()
        sll.sll_family = UInt16(AF_PACKET)
        sll.sll_protocol = UInt16(ETH_P_ALL).bigEndian
        sll.sll_ifindex = Int32(ifindex)
        try Syscall.call("bind(AF_PACKET)") {
            withUnsafePointer(to: &sll) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
            }
        }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        try Syscall.call("setsockopt(SO_RCVTIMEO)") { setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) }
    }

    public func send(_ frame: [UInt8]) throws {
        var sll = sockaddr_ll()
        sll.sll_family = UInt16(AF_PACKET)
        sll.sll_ifindex = Int32(ifindex)
        sll.sll_halen = 6
        try Syscall.call("sendto(AF_PACKET)") {
            frame.withUnsafeBytes { p in
                withUnsafePointer(to: &sll) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd.raw, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                    }
                }
            }
        }
    }

    /// The first incoming frame (not one we sent) matching `match` within `seconds`, or nil.
    public func receive(within seconds: Double, where match: ([UInt8]) -> Bool) throws -> [UInt8]? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + seconds
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 > end { return nil }
            var from = sockaddr_ll()
            var len = socklen_t(MemoryLayout<sockaddr_ll>.size)
            let n: Int
            do throws(SystemError) {
                n = try Syscall.call("recvfrom(AF_PACKET)") {
                    buf.withUnsafeMutableBytes { b in
                        withUnsafeMutablePointer(to: &from) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd.raw, b.baseAddress, b.count, 0, $0, &len) }
                        }
                    }
                }
            } catch {
                if error.errno == EAGAIN { continue } // SO_RCVTIMEO: look at the deadline again
                throw error
            }
            let frame = Array(buf.prefix(n))
            if from.sll_pkttype != UInt8(PACKET_OUTGOING), match(frame) { return frame }
        }
    }
}
