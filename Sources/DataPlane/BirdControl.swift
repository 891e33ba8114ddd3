import Foundation
import Glibc

/// A command to BIRD over its control socket (what `birdc` does): the BGP speaker that
/// announces the anycast home prefix runs beside the daemon (a sidecar) and shares the socket.
/// Replies are lines "CODE-text" (more follow) and "CODE text" (the last); codes from 8000 are errors.
public struct BirdControl {
    public let socket: String

    public init(socket: String) { self.socket = socket }

    @discardableResult
    public func run(_ command: String, timeoutMilliseconds: Int32 = 2000) throws -> String {
        let fd = OwnedFD(try Syscall.call("socket(AF_UNIX)") { Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socket.utf8)
        guard path.count < MemoryLayout.size(ofValue: sa.sun_path) else { throw SystemError("connect", errno: ENAMETOOLONG, socket) }
        withUnsafeMutableBytes(of: &sa.sun_path) { for (i, b) in path.enumerated() { $0[i] = b } }
        try Syscall.call("connect", socket) {
            withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        }
        var pending = ""
        func reply() throws -> String {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                for line in pending.split(separator: "\n", omittingEmptySubsequences: true) {
                    let l = String(line)
                    if l.count >= 5, l.prefix(4).allSatisfy(\.isNumber), l[l.index(l.startIndex, offsetBy: 4)] == " " {
                        pending = ""
                        if let code = Int(l.prefix(4)), code >= 8000 { throw SystemError("birdc \(command)", errno: EINVAL, l) }
                        return l
                    }
                }
                var pfd = [pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)]
                guard try Syscall.poll(&pfd, timeoutMilliseconds: timeoutMilliseconds) == 1 else {
                    throw SystemError("birdc \(command)", errno: ETIMEDOUT, "no answer on \(socket)")
                }
                let n = try Syscall.call("read", socket) { buf.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) } }
                if n == 0 { throw SystemError("birdc \(command)", errno: ECONNRESET, "BIRD closed \(socket)") }
                pending += String(decoding: buf[0..<n], as: UTF8.self)
            }
        }
        _ = try reply() // the greeting: 0001 BIRD x.y ready.
        let bytes = Array((command + "\n").utf8)
        _ = try Syscall.call("write", socket) { bytes.withUnsafeBytes { write(fd.raw, $0.baseAddress, $0.count) } }
        return try reply()
    }
}
