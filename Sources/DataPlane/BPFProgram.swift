// Loaded programs: BPF_PROG_TEST_RUN (XDP and skb), ids and tags for readiness and status.
import CMip6
import Glibc

/// A loaded program; the fd belongs to its BPFObject, which it keeps alive.
public struct BPFProgram {
    public let fd: Int32
    public let name: String
    let owner: BPFObject

    /// Result of one BPF_PROG_TEST_RUN.
    public struct TestRun: Sendable {
        public let verdict: UInt32
        public let output: [UInt8]
        public let durationNanoseconds: UInt32
        /// skb runs: gso_segs after the program ran (0 once GSO is reset or to be recomputed).
        public var gsoSegs: UInt32 = 0
    }

    /// bpf_prog_test_run_opts on an XDP program. `ingressIfindex` 0 runs without a context
    /// (the program then sees ingress_ifindex 1, loopback).
    public func testRun(_ packet: [UInt8], repeat count: UInt32 = 1, ingressIfindex: UInt32 = 0) throws(SystemError) -> TestRun {
        var out = [UInt8](repeating: 0, count: packet.count + 4096)
        var outSize = UInt32(out.count)
        var retval: UInt32 = 0
        var duration: UInt32 = 0
        let rc = packet.withUnsafeBytes { inp in
            out.withUnsafeMutableBytes { outp in
                cmip6_xdp_test_run(fd, inp.baseAddress, UInt32(inp.count), outp.baseAddress, &outSize,
                                   count, ingressIfindex, 0, 0, &retval, &duration)
            }
        }
        try Syscall.check(rc, "bpf_prog_test_run_opts", name)
        return TestRun(verdict: retval, output: Array(out.prefix(Int(outSize))), durationNanoseconds: duration)
    }

    /// BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: frames really go out (XDP_TX/redirect).
    public func runLiveFrames(_ packet: [UInt8], repeat count: UInt32, ingressIfindex: UInt32, batchSize: UInt32 = 64) throws(SystemError) -> UInt32 {
        var duration: UInt32 = 0
        let rc = packet.withUnsafeBytes { inp in
            cmip6_xdp_test_run(fd, inp.baseAddress, UInt32(inp.count), nil, nil, count, ingressIfindex,
                               UInt32(BPF_F_TEST_XDP_LIVE_FRAMES), batchSize, nil, &duration)
        }
        try Syscall.check(rc, "bpf_prog_test_run_opts(live frames)", name)
        return duration
    }
}

extension BPFProgram {
    /// bpf_prog_test_run_opts on a TC program: `frame` is an Ethernet frame, `ifindex` the
    /// device the skb is on (__sk_buff.ifindex; 0 runs on loopback). bpf_fib_lookup and
    /// bpf_check_mtu then see that device's namespace: call it from a thread inside it.
    /// TC_ACT_REDIRECT verdicts are reported, not carried out. `gsoSize` > 0 marks the skb
    /// GSO (the kernel cannot be told a gso_type).
    public func testRunSKB(_ frame: [UInt8], ifindex: UInt32, repeat count: UInt32 = 1,
                           gsoSize: UInt32 = 0, gsoSegs: UInt32 = 0) throws(SystemError) -> TestRun {
        var out = [UInt8](repeating: 0, count: frame.count + 4096)
        var outSize = UInt32(out.count)
        var retval: UInt32 = 0
        var duration: UInt32 = 0
        var gsoOut: UInt32 = 0
        let rc = frame.withUnsafeBytes { inp in
            out.withUnsafeMutableBytes { outp in
                cmip6_skb_test_run(fd, inp.baseAddress, UInt32(inp.count), outp.baseAddress, &outSize,
                                   count, ifindex, gsoSize, gsoSegs, &gsoOut, &retval, &duration)
            }
        }
        try Syscall.check(rc, "bpf_prog_test_run_opts(skb)", name)
        return TestRun(verdict: retval, output: Array(out.prefix(Int(outSize))), durationNanoseconds: duration, gsoSegs: gsoOut)
    }
}

extension BPFProgram {
    /// The kernel's id of the loaded program (bpf_obj_get_info_by_fd); 0 if unreadable.
    public var id: UInt32 {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        return Syscall.succeeds({ bpf_obj_get_info_by_fd(fd, &info, &len) }) ? info.id : 0
    }

    /// The kernel's tag of the loaded program (a hash of its instructions, as `bpftool prog`
    /// shows it): tells one build of a program from another. "" if unreadable.
    public var tag: String {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard Syscall.succeeds({ bpf_obj_get_info_by_fd(fd, &info, &len) }) else { return "" }
        return hexTag(info.tag)
    }
}

/// What the kernel says about a loaded program found by id (`mip6 dataplane status`).
public struct LoadedProgramInfo: Sendable, Encodable {
    public let id: UInt32
    public let name: String
    /// The kernel's hash of the instructions: tells one build of a program from another.
    public let tag: String

    /// bpf_prog_get_fd_by_id + bpf_obj_get_info_by_fd; nil when the program is gone.
    public init?(id: UInt32) {
        guard let fd = try? OwnedFD(Syscall.negErrno("bpf_prog_get_fd_by_id") { bpf_prog_get_fd_by_id(id) }) else { return nil }
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard Syscall.succeeds({ bpf_obj_get_info_by_fd(fd.raw, &info, &len) }) else { return nil }
        self.id = id
        name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        tag = hexTag(info.tag)
    }
}

private func hexTag(_ tag: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> String {
    withUnsafeBytes(of: tag) { $0.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

