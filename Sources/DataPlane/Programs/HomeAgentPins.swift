// The home agent's state that outlives the daemon: the maps, the program attachments
// (XDP bpf_links pinned in bpffs, or cls_bpf filters, which outlive processes anyway)
// and a metadata map saying which version made them. A restart or an upgrade adopts
// them without a forwarding gap; `mip6 dataplane detach` removes them all.
import CMip6
import Crypto
import Foundation
import Glibc
import Logging

/// The version string of this build (`mip6 --version`, and in the pinned metadata).
public enum Mip6Build {
    public static let version = "0.2.0"
}

/// `--attach-mode`: how the home agent's program sits on an interface.
public enum AttachMode: String, Sendable, CaseIterable {
    /// Native XDP on interfaces backed by a device (a NIC driver), TC on virtual ones
    /// (veth, bridges, ...), where native XDP costs GSO/TSO (perf/README.md).
    case auto
    case xdp
    case xdpGeneric = "xdp-generic"
    case tc
}

/// What an interface actually got (recorded as mip6_iface.attach).
public enum Attachment: UInt8, Sendable, Codable {
    case xdpNative = 1, xdpGeneric = 2, tc = 3

    public var label: String {
        switch self {
        case .xdpNative: return "xdp"
        case .xdpGeneric: return "xdp-generic"
        case .tc: return "tc"
        }
    }

    var xdpMode: XDPMode? {
        switch self {
        case .xdpNative: return .native
        case .xdpGeneric: return .generic
        case .tc: return nil
        }
    }
}

/// Pinned state from a version this one cannot use: refused whole, never half-used.
public struct IncompatiblePinsError: Error, CustomStringConvertible {
    public let description: String
}

public enum HomeAgentPins {
    static func xdpLinkPath(_ directory: String, ifindex: UInt32) -> String { "\(directory)/link_xdp_\(ifindex)" }

    /// FNV-1a over the state version and every map spec: any layout change changes it.
    public static func fingerprint(mapSpecs: [String]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "v\(MIP6_STATE_VERSION)\n\(mapSpecs.sorted().joined(separator: "\n"))".utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    /// The home-agent object to load: the one built into this binary, or `path`
    /// (`--program-object`). A file must hold both programs and the very map layouts of the
    /// built-in one (the control plane reads and writes those maps with this build's
    /// structs); anything else is refused before it touches a pin.
    public static func openProgramObject(path: String?, logger: Logger) throws -> BPFObject {
        let builtIn = try BPFObject(.homeAgent)
        guard let path else {
            logger.info("home-agent program object: built in", metadata: [
                "mip6.sha256": "\(shortDigest(EmbeddedBPF.homeAgent.bytes))", "mip6.build": "\(Mip6Build.version)"])
            return builtIn
        }
        let bytes: [UInt8]
        do { bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw StartupError("--program-object \(path): cannot read it: \((error as NSError).localizedDescription)")
        }
        let obj: BPFObject
        do { obj = try BPFObject(bytes: bytes, name: builtIn.name) } catch {
            throw StartupError("--program-object \(path): not a BPF object libbpf can open (\(error))")
        }
        for program in [MIP6_PROG_HA_XDP, MIP6_PROG_HA_TC] where !obj.hasProgram(program) {
            throw StartupError("--program-object \(path): has no program \(program); build it from bpf/mip6_ha.bpf.c")
        }
        let theirs = fingerprint(mapSpecs: obj.mapSpecs), ours = fingerprint(mapSpecs: builtIn.mapSpecs)
        if theirs != ours {
            let missing = Set(builtIn.mapSpecs).subtracting(obj.mapSpecs).sorted()
            throw StartupError("--program-object \(path): its maps differ from the ones mip6 \(Mip6Build.version) reads and writes "
                + "(layout \(String(theirs, radix: 16)), expected \(String(ours, radix: 16)); differing or missing: "
                + "\(missing.prefix(4).joined(separator: ", "))). Build it from the bpf/ and mip6_shared.h of this release.")
        }
        logger.notice("home-agent program object: loaded from a file instead of the built-in one", metadata: [
            "mip6.file": "\(path)", "mip6.sha256": "\(shortDigest(bytes))", "mip6.build": "\(Mip6Build.version)"])
        return obj
    }

    /// The first 16 hex digits of a SHA-256: enough to tell builds apart in a log line.
    static func shortDigest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The id of the program sitting where `attachment` puts ours on `ifindex` (the XDP
    /// hook of that mode, or our TC handle/priority on clsact ingress); nil when none.
    public static func attachedProgramID(ifindex: UInt32, attachment: Attachment) -> UInt32? {
        switch attachment {
        case .xdpNative, .xdpGeneric: return attachment.xdpMode!.attachedProgramID(ifindex: ifindex)
        case .tc: return try? TCAttachment.query(ifindex: ifindex, direction: .ingress, handle: MIP6_HA_TC_HANDLE, priority: MIP6_HA_TC_PRIORITY)
        }
    }

    /// Whether anything of ours is pinned in `directory`.
    public static func hasPins(_ directory: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.contains { $0.hasPrefix("mip6_") || $0.hasPrefix("link_") }
    }

    /// The metadata of the pins in `directory`, nil when nothing is pinned there.
    /// Throws IncompatiblePinsError when they were made by an incompatible version.
    public static func checkCompatible(directory: String, fingerprint: UInt64) throws -> mip6_meta? {
        guard hasPins(directory) else { return nil }
        let remedy = "Its bindings cannot be adopted safely. To start afresh (forwarding for those bindings stops "
            + "until the mobile nodes register again): mip6 dataplane detach --bpffs \(directory)"
        let meta: mip6_meta
        do {
            let map = try BPFMapHandle(pinned: "\(directory)/\(MIP6_MAP_META)")
            guard map.valueSize == MemoryLayout<mip6_meta>.size, let m: mip6_meta = try BPFMap<UInt32, mip6_meta>(map).lookup(0) else {
                throw IncompatiblePinsError(description: "\(directory) holds a \(MIP6_MAP_META) this version does not understand. \(remedy)")
            }
            meta = m
        } catch let e as SystemError where e.errno == ENOENT {
            throw IncompatiblePinsError(description: "\(directory) holds maps pinned by a mip6 from before versioned state. \(remedy)")
        }
        let build = withUnsafeBytes(of: meta.build) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if meta.magic != MIP6_META_MAGIC || meta.version != MIP6_STATE_VERSION || meta.fingerprint != fingerprint {
            throw IncompatiblePinsError(description: "\(directory) was pinned by mip6 \(build) (state version \(meta.version), "
                + "layout \(String(meta.fingerprint, radix: 16))); this is mip6 \(Mip6Build.version) (state version \(MIP6_STATE_VERSION), "
                + "layout \(String(fingerprint, radix: 16))). \(remedy)")
        }
        return meta
    }

    /// Creates and pins mip6_meta when absent (a fresh start); an adopted one is left as it is.
    public static func writeMetaIfAbsent(directory: String, fingerprint: UInt64) throws {
        let path = "\(directory)/\(MIP6_MAP_META)"
        if access(path, F_OK) == 0 { return }
        let map = try BPFMapHandle(array: MIP6_MAP_META, valueSize: MemoryLayout<mip6_meta>.size, entries: 1)
        var meta = mip6_meta()
        meta.magic = MIP6_META_MAGIC
        meta.version = UInt32(MIP6_STATE_VERSION)
        meta.fingerprint = fingerprint
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        meta.created_unix_ns = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        withUnsafeMutableBytes(of: &meta.build) { buf in
            for (i, b) in Mip6Build.version.utf8.prefix(buf.count - 1).enumerated() { buf[i] = b }
        }
        try BPFMap<UInt32, mip6_meta>(map).update(0, meta)
        try map.pin(at: path)
    }

    /// `--attach-mode auto` for one interface: native XDP where a device driver is behind
    /// it (it may still refuse: then TC), TC on virtual interfaces.
    public static func autoAttachment(interface name: String) -> (Attachment, String) {
        if access("/sys/class/net/\(name)/device", F_OK) == 0 { return (.xdpNative, "device-backed interface") }
        return (.tc, "virtual interface (no device): native XDP would cost GSO/TSO")
    }

    /// Attaches `xdp`/`tc` to `interface`, replacing whatever an earlier daemon left there
    /// (`previous`) without a gap: a pinned XDP link of the same mode gets the new program
    /// by bpf_link_update, a TC filter by BPF_TC_F_REPLACE; a change of kind attaches the
    /// new one before removing the old. The attachment stays after this process exits.
    public static func attach(xdp: BPFProgram, tc: BPFProgram, interface: NetworkInterface, want: Attachment,
                              previous: Attachment?, directory: String, logger: Logger) throws -> Attachment {
        let ifindex = interface.index
        let linkPath = xdpLinkPath(directory, ifindex: ifindex)
        switch want {
        case .xdpNative, .xdpGeneric:
            let mode = want.xdpMode!
            if previous == want, access(linkPath, F_OK) == 0 {
                let link = try XDPLink(pinned: linkPath, ifindex: ifindex, mode: mode)
                try link.update(program: xdp)
                logger.info("replaced the XDP program in the pinned link", metadata: ["mip6.interface": "\(interface.name)", "mip6.attach": "\(want.label)"])
                return want
            }
            if previous == .xdpNative || previous == .xdpGeneric { // native and generic cannot coexist: a short gap
                logger.warning("changing the XDP mode needs a detach first: packets arriving meanwhile go to the kernel",
                               metadata: ["mip6.interface": "\(interface.name)"])
                try removeXDP(directory: directory, ifindex: ifindex)
            }
            let link = try XDPLink(program: xdp, ifindex: ifindex, mode: mode)
            unlink(linkPath)
            try link.pin(at: linkPath)
            if previous == .tc { _ = try TCAttachment.remove(ifindex: ifindex, direction: .ingress, handle: MIP6_HA_TC_HANDLE, priority: MIP6_HA_TC_PRIORITY) }
            return want
        case .tc:
            let filter = try TCAttachment(program: tc, ifindex: ifindex, direction: .ingress,
                                          handle: MIP6_HA_TC_HANDLE, priority: MIP6_HA_TC_PRIORITY,
                                          mayReplace: { $0 == MIP6_PROG_HA_TC })
            filter.keep()
            if previous == .xdpNative || previous == .xdpGeneric || access(linkPath, F_OK) == 0 {
                try removeXDP(directory: directory, ifindex: ifindex)
            }
            return .tc
        }
    }

    static func removeXDP(directory: String, ifindex: UInt32) throws {
        let path = xdpLinkPath(directory, ifindex: ifindex)
        guard access(path, F_OK) == 0 else { return }
        let link = try XDPLink(pinned: path, ifindex: ifindex, mode: .auto)
        try link.detach()
        unlink(path)
    }

    /// Takes the program off one interface, however it was attached.
    public static func detach(directory: String, ifindex: UInt32, attachment: Attachment?) throws {
        try removeXDP(directory: directory, ifindex: ifindex)
        if attachment == .tc || attachment == nil {
            _ = try TCAttachment.remove(ifindex: ifindex, direction: .ingress, handle: MIP6_HA_TC_HANDLE, priority: MIP6_HA_TC_PRIORITY)
        }
    }

    /// What `detach(directory:)` did.
    public struct DetachReport: Codable, Sendable {
        public var interfaces: [String] = []
        public var pinsRemoved: [String] = []
        public var bindingsDropped = 0
    }

    /// `mip6 dataplane detach`: programs off every interface recorded in mip6_ifaces (and any
    /// pinned XDP link), every pin removed, the directory too. Forwarding for all bindings stops.
    public static func detachAll(directory: String) throws -> DetachReport {
        var report = DetachReport()
        guard access(directory, F_OK) == 0 else { return report }
        if let maps = try? HomeAgentMaps(pinnedAt: directory) {
            report.bindingsDropped = (try? maps.readBindings().count) ?? 0
            for (ifindex, iface) in try maps.readInterfaces() {
                try detach(directory: directory, ifindex: ifindex, attachment: Attachment(rawValue: iface.attach))
                report.interfaces.append(ifname(ifindex) ?? "ifindex \(ifindex)")
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        for name in names where name.hasPrefix("link_xdp_") {
            if let idx = UInt32(name.dropFirst("link_xdp_".count)) {
                try removeXDP(directory: directory, ifindex: idx)
                report.interfaces.append(ifname(idx) ?? "ifindex \(idx)")
            }
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            if unlink("\(directory)/\(name)") != 0 { throw SystemError("unlink", errno: errno, "\(directory)/\(name)") }
            report.pinsRemoved.append(name)
        }
        if rmdir(directory) != 0 && errno != ENOENT { throw SystemError("rmdir", errno: errno, directory) }
        report.interfaces = Array(Set(report.interfaces)).sorted()
        return report
    }

    public static func ifname(_ ifindex: UInt32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(ifindex, &buf) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
