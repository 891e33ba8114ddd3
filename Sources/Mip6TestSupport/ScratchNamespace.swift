import DataPlane
import CMip6
import Foundation
import Glibc

/// Runs a shell command (setting up scratch namespaces), failing with its output.
@discardableResult
public func sh(_ command: String) throws -> String {
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
        throw SystemError("sh", errno: EIO, "\(command) exited \(p.terminationStatus): \(out)")
    }
    return out
}

/// A network namespace made for one test or benchmark run, and a way to run code inside it.
/// bpf_fib_lookup in BPF_PROG_TEST_RUN uses the calling thread's namespace, so the
/// body runs on a thread of its own that joined the namespace with setns(2).
public final class ScratchNamespace: @unchecked Sendable {
    public let name: String

    public init(_ tag: String) throws {
        name = "mip6-\(tag)-\(getpid())"
        _ = try? sh("ip netns del \(name) 2>/dev/null")
        try sh("ip netns add \(name)")
        // Suites keep their environment in a static that never deinits: remove it at exit.
        ScratchNamespace.created.append(name)
        if ScratchNamespace.created.count == 1 {
            atexit { for n in ScratchNamespace.created { _ = try? sh("ip netns del \(n)") } }
        }
    }

    nonisolated(unsafe) static var created: [String] = []

    deinit {
        _ = try? sh("ip netns del \(name)")
        ScratchNamespace.created.removeAll { $0 == name }
    }

    /// `ip -n NAME ...` commands, one per line.
    public func ip(_ script: String) throws {
        for line in script.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            try sh("ip -n \(name) \(line)")
        }
    }

    public func sysctl(_ kv: String) throws { try sh("ip netns exec \(name) sysctl -qw \(kv)") }

    public func ifindex(_ dev: String) throws -> UInt32 {
        UInt32(try sh("ip netns exec \(name) cat /sys/class/net/\(dev)/ifindex").trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    /// Runs `body` on a fresh thread inside the namespace and returns its result.
    public func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let work = ResultBox<() throws -> T>()
        work.value = body
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { box.result = .failure(POSIXError(.ENOENT)); return }
            defer { close(fd) }
            let rc = cmip6_setns(fd, 0x4000_0000) // CLONE_NEWNET
            guard rc == 0 else { box.result = .failure(POSIXError(POSIXErrorCode(rawValue: -rc) ?? .EPERM)); return }
            // Always on CPU 0: per-CPU maps (counters, per-source rate state) then see one
            // CPU's view from one run to the next.
            _ = cmip6_pin_to_cpu(0)
            box.result = Result { try work.value!() }
            // The thread ends here, taking its namespace with it.
        }
        thread.start()
        done.wait()
        return try box.result!.get()
    }
}

/// Carries the work into, and its result out of, the namespace thread; the
/// semaphore orders the accesses.
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    var result: Result<T, Error>?
}
