import CMip6
import Foundation
import Glibc

/// Whether this process can load BPF programs (the BPF tests need root; CI is root).
let isRoot = getuid() == 0

/// Runs a shell command, failing loudly with its output.
@discardableResult
func sh(_ command: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw NSError(domain: "sh", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "\(command): \(out)"])
    }
    return out
}

/// A network namespace made for one test run, and a way to run code inside it.
/// bpf_fib_lookup in BPF_PROG_TEST_RUN uses the calling thread's namespace, so the
/// body runs on a thread of its own that joined the namespace with setns(2).
final class TestNetns: @unchecked Sendable {
    let name: String

    init(_ tag: String) throws {
        name = "mip6-\(tag)-\(getpid())"
        try? sh("ip netns del \(name) 2>/dev/null")
        try sh("ip netns add \(name)")
    }

    deinit { try? sh("ip netns del \(name)") }

    /// `ip -n NAME ...` commands, one per line.
    func ip(_ script: String) throws {
        for line in script.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            try sh("ip -n \(name) \(line)")
        }
    }

    func sysctl(_ kv: String) throws { try sh("ip netns exec \(name) sysctl -qw \(kv)") }

    func ifindex(_ dev: String) throws -> UInt32 {
        UInt32(try sh("ip netns exec \(name) cat /sys/class/net/\(dev)/ifindex").trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    /// Runs `body` on a fresh thread inside the namespace and returns its result.
    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { box.result = .failure(POSIXError(.ENOENT)); return }
            defer { close(fd) }
            let rc = cmip6_setns(fd, 0x4000_0000) // CLONE_NEWNET
            guard rc == 0 else { box.result = .failure(POSIXError(POSIXErrorCode(rawValue: -rc) ?? .EPERM)); return }
            box.result = Result { try body() }
            // The thread ends here, taking its namespace with it.
        }
        thread.start()
        done.wait()
        return try box.result!.get()
    }
}

/// Carries a result out of the namespace thread.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}
