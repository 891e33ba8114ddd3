// XDP attachments through bpf_link (pinnable, atomically replaceable) and the netlink query of what is attached.
import CMip6
import Glibc

/// How an XDP program is attached.
public enum XDPMode: String, Sendable, CaseIterable {
    case native, generic, auto

    var flags: UInt32 {
        switch self {
        case .native: return UInt32(XDP_FLAGS_DRV_MODE)
        case .generic: return UInt32(XDP_FLAGS_SKB_MODE)
        case .auto: return 0
        }
    }
}

/// An XDP attachment through a bpf_link: closing it (or the process dying) detaches.
public final class XDPLink {
    public let fd: Int32
    public let ifindex: UInt32
    public let mode: XDPMode

    /// bpf_link_create(BPF_XDP). In `.auto` mode native is tried first, then generic.
    public init(program: BPFProgram, ifindex: UInt32, mode: XDPMode) throws(SystemError) {
        self.ifindex = ifindex
        if mode == .auto {
            let native = cmip6_xdp_link_create(program.fd, Int32(ifindex), XDPMode.native.flags)
            if native >= 0 {
                fd = native
                self.mode = .native
                return
            }
            fd = try Syscall.check(cmip6_xdp_link_create(program.fd, Int32(ifindex), XDPMode.generic.flags),
                                   "bpf_link_create(BPF_XDP, generic)", "ifindex \(ifindex)")
            self.mode = .generic
            return
        }
        fd = try Syscall.check(cmip6_xdp_link_create(program.fd, Int32(ifindex), mode.flags),
                               "bpf_link_create(BPF_XDP, \(mode.rawValue))", "ifindex \(ifindex)")
        self.mode = mode
    }

    /// A link pinned in bpffs by an earlier daemon (bpf_obj_get); `mode` is what that daemon recorded.
    public init(pinned path: String, ifindex: UInt32, mode: XDPMode) throws(SystemError) {
        fd = try Syscall.negErrno("bpf_obj_get", path) { bpf_obj_get(path) }
        self.ifindex = ifindex
        self.mode = mode
    }

    /// bpf_obj_pin: the attachment then outlives this process (until the pin is removed).
    public func pin(at path: String) throws(SystemError) {
        try Syscall.negErrno("bpf_obj_pin", path) { bpf_obj_pin(fd, path) }
    }

    /// bpf_link_update: swaps the program atomically; no packet sees neither.
    public func update(program: BPFProgram) throws(SystemError) {
        try Syscall.negErrno("bpf_link_update", "\(program.name) on ifindex \(ifindex)") { bpf_link_update(fd, program.fd, nil) }
    }

    /// bpf_link_detach: detaches now, whoever else holds the link (pins included).
    public func detach() throws(SystemError) {
        do throws(SystemError) {
            try Syscall.negErrno("bpf_link_detach", "ifindex \(ifindex)") { bpf_link_detach(fd) }
        } catch {
            if !error.errno.is(ENOLINK, ENOENT) { throw error }
        }
    }

    deinit { close(fd) }
}

extension XDPMode {
    /// The id of the XDP program attached to `ifindex` in this mode (netlink), nil if none.
    public func attachedProgramID(ifindex: UInt32) -> UInt32? {
        var id: UInt32 = 0
        guard Syscall.succeeds({ cmip6_xdp_query_id(Int32(ifindex), flags, &id) }), id != 0 else { return nil }
        return id
    }
}
