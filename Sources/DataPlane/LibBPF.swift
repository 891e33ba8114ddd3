// Every raw libbpf and bpf(2) call of the project lives in this file, behind small
// wrappers that turn negative errno / NULL+errno into a thrown `SystemError`.
import CMip6
import Glibc

/// A failed system or libbpf call: which call, on what, and errno.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32
    public let detail: String

    public init(_ call: String, errno: Int32, _ detail: String = "") {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        let what = detail.isEmpty ? "" : " (\(detail))"
        return "\(call)\(what): \(String(cString: strerror(errno)))"
    }
}

/// libbpf returns -errno; some calls return -1 and set errno.
@inline(__always)
func checkNegErrno(_ rc: Int32, _ call: String, _ detail: @autoclosure () -> String = "") throws(SystemError) -> Int32 {
    if rc < 0 {
        let e = rc == -1 && errno != 0 ? errno : -rc
        throw SystemError(call, errno: e, detail())
    }
    return rc
}

/// A file descriptor we own; closed on deinit.
public final class OwnedFD {
    public let raw: Int32
    public init(_ raw: Int32) { self.raw = raw }
    deinit { close(raw) }
}

/// Where libbpf's own messages go (the daemon routes them into its Logger).
public enum LibBPFLog {
    nonisolated(unsafe) static var sink: ((Int32, String) -> Void)?

    public static func route(_ sink: @escaping (Int32, String) -> Void) {
        Self.sink = sink
        cmip6_set_libbpf_logger { level, msg in
            guard let msg else { return }
            LibBPFLog.sink?(level, String(cString: msg))
        }
    }
}

/// A BPF object opened from embedded bytes (bpf_object__*).
public final class BPFObject {
    let obj: OpaquePointer
    public let name: String
    private var loaded = false

    /// bpf_object__open_mem on an object carried in the binary.
    public convenience init(_ embedded: EmbeddedBPF) throws(SystemError) {
        try self.init(bytes: embedded.bytes, name: embedded.name)
    }

    /// bpf_object__open_mem on ELF bytes (`mip6 ha --program-object`). `name` prefixes the
    /// internal maps' names (.rodata, .bss), so it must be the embedded object's name for
    /// the pins to match.
    public init(bytes: [UInt8], name: String) throws(SystemError) {
        errno = 0
        let o = bytes.withUnsafeBytes { cmip6_object_open_mem($0.baseAddress, $0.count, name) }
        guard let o else { throw SystemError("bpf_object__open_mem", errno: errno == 0 ? EINVAL : errno, name) }
        obj = o
        self.name = name
    }

    /// Whether the object has a program of that name (before or after load).
    public func hasProgram(_ name: String) -> Bool { bpf_object__find_program_by_name(obj, name) != nil }

    deinit { bpf_object__close(obj) }

    func mapPointer(_ name: String) throws(SystemError) -> OpaquePointer {
        guard let m = bpf_object__find_map_by_name(obj, name) else {
            throw SystemError("bpf_object__find_map_by_name", errno: ENOENT, "\(self.name): \(name)")
        }
        return m
    }

    /// bpf_map__set_max_entries, before load.
    public func setMaxEntries(map: String, _ n: UInt32) throws(SystemError) {
        _ = try checkNegErrno(bpf_map__set_max_entries(try mapPointer(map), n), "bpf_map__set_max_entries", map)
    }

    /// Pin every map under `directory` on load; libbpf reuses a compatible map already
    /// pinned there and refuses an incompatible one (bpf_map__set_pin_path).
    public func pinMaps(under directory: String) throws(SystemError) {
        var m: OpaquePointer? = bpf_object__next_map(obj, nil)
        while let map = m {
            let mapName = String(cString: bpf_map__name(map))
            _ = try checkNegErrno(bpf_map__set_pin_path(map, "\(directory)/\(mapName)"), "bpf_map__set_pin_path", mapName)
            m = bpf_object__next_map(obj, map)
        }
    }

    /// What identifies each map's layout, for the pinned-state fingerprint: name, type,
    /// key and value size, flags (max_entries left out: --max-bindings resizes two maps).
    public var mapSpecs: [String] {
        var specs: [String] = []
        var m: OpaquePointer? = bpf_object__next_map(obj, nil)
        while let map = m {
            specs.append("\(String(cString: bpf_map__name(map))):\(bpf_map__type(map).rawValue):"
                         + "\(bpf_map__key_size(map)):\(bpf_map__value_size(map)):\(bpf_map__map_flags(map))")
            m = bpf_object__next_map(obj, map)
        }
        return specs
    }

    /// bpf_object__load: creates maps, runs the verifier.
    public func load() throws(SystemError) {
        _ = try checkNegErrno(bpf_object__load(obj), "bpf_object__load", name)
        loaded = true
    }

    /// Names of the maps in the object.
    public var mapNames: [String] {
        var names: [String] = []
        var m: OpaquePointer? = bpf_object__next_map(obj, nil)
        while let map = m {
            names.append(String(cString: bpf_map__name(map)))
            m = bpf_object__next_map(obj, map)
        }
        return names
    }

    /// A loaded map by name (its fd stays owned by the object).
    public func map(_ name: String) throws(SystemError) -> BPFMapHandle {
        let m = try mapPointer(name)
        let fd = bpf_map__fd(m)
        if fd < 0 { throw SystemError("bpf_map__fd", errno: -fd, name) }
        return BPFMapHandle(fd: fd, name: name, keySize: Int(bpf_map__key_size(m)),
                            valueSize: Int(bpf_map__value_size(m)), type: bpf_map__type(m).rawValue,
                            owner: self)
    }

    /// bpf_map__key_size / value_size as libbpf sees them (for layout tests).
    public func mapSizes(_ name: String) throws(SystemError) -> (key: Int, value: Int) {
        let m = try mapPointer(name)
        return (Int(bpf_map__key_size(m)), Int(bpf_map__value_size(m)))
    }

    /// A loaded program's fd by name.
    public func program(_ name: String) throws(SystemError) -> BPFProgram {
        guard let p = bpf_object__find_program_by_name(obj, name) else {
            throw SystemError("bpf_object__find_program_by_name", errno: ENOENT, "\(self.name): \(name)")
        }
        let fd = bpf_program__fd(p)
        if fd < 0 { throw SystemError("bpf_program__fd", errno: -fd, name) }
        return BPFProgram(fd: fd, name: name, owner: self)
    }
}

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
        _ = try checkNegErrno(rc, "bpf_prog_test_run_opts", name)
        return TestRun(verdict: retval, output: Array(out.prefix(Int(outSize))), durationNanoseconds: duration)
    }

    /// BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: frames really go out (XDP_TX/redirect).
    public func runLiveFrames(_ packet: [UInt8], repeat count: UInt32, ingressIfindex: UInt32, batchSize: UInt32 = 64) throws(SystemError) -> UInt32 {
        var duration: UInt32 = 0
        let rc = packet.withUnsafeBytes { inp in
            cmip6_xdp_test_run(fd, inp.baseAddress, UInt32(inp.count), nil, nil, count, ingressIfindex,
                               UInt32(BPF_F_TEST_XDP_LIVE_FRAMES), batchSize, nil, &duration)
        }
        _ = try checkNegErrno(rc, "bpf_prog_test_run_opts(live frames)", name)
        return duration
    }
}

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
            fd = try checkNegErrno(cmip6_xdp_link_create(program.fd, Int32(ifindex), XDPMode.generic.flags),
                                   "bpf_link_create(BPF_XDP, generic)", "ifindex \(ifindex)")
            self.mode = .generic
            return
        }
        fd = try checkNegErrno(cmip6_xdp_link_create(program.fd, Int32(ifindex), mode.flags),
                               "bpf_link_create(BPF_XDP, \(mode.rawValue))", "ifindex \(ifindex)")
        self.mode = mode
    }

    /// A link pinned in bpffs by an earlier daemon (bpf_obj_get); `mode` is what that daemon recorded.
    public init(pinned path: String, ifindex: UInt32, mode: XDPMode) throws(SystemError) {
        let fd = bpf_obj_get(path)
        if fd < 0 { throw SystemError("bpf_obj_get", errno: errno, path) }
        self.fd = fd
        self.ifindex = ifindex
        self.mode = mode
    }

    /// bpf_obj_pin: the attachment then outlives this process (until the pin is removed).
    public func pin(at path: String) throws(SystemError) {
        _ = try checkNegErrno(bpf_obj_pin(fd, path), "bpf_obj_pin", path)
    }

    /// bpf_link_update: swaps the program atomically; no packet sees neither.
    public func update(program: BPFProgram) throws(SystemError) {
        _ = try checkNegErrno(bpf_link_update(fd, program.fd, nil), "bpf_link_update", "\(program.name) on ifindex \(ifindex)")
    }

    /// bpf_link_detach: detaches now, whoever else holds the link (pins included).
    public func detach() throws(SystemError) {
        let rc = bpf_link_detach(fd)
        if rc < 0 && errno != ENOLINK && errno != ENOENT {
            throw SystemError("bpf_link_detach", errno: errno, "ifindex \(ifindex)")
        }
    }

    deinit { close(fd) }
}

/// A map fd with its sizes; either owned by a BPFObject or opened from a pin.
public final class BPFMapHandle {
    public let fd: Int32
    public let name: String
    public let keySize: Int
    public let valueSize: Int
    public let type: UInt32
    private let owner: AnyObject?
    private let ownsFD: Bool

    init(fd: Int32, name: String, keySize: Int, valueSize: Int, type: UInt32, owner: AnyObject?) {
        self.fd = fd
        self.name = name
        self.keySize = keySize
        self.valueSize = valueSize
        self.type = type
        self.owner = owner
        self.ownsFD = owner == nil
    }

    /// bpf_map_create of an array (for maps the control plane makes itself, like mip6_meta).
    public init(array name: String, valueSize: Int, entries: UInt32) throws(SystemError) {
        let fd = try checkNegErrno(bpf_map_create(BPF_MAP_TYPE_ARRAY, name, 4, UInt32(valueSize), entries, nil),
                                   "bpf_map_create", name)
        self.fd = fd
        self.name = name
        self.keySize = 4
        self.valueSize = valueSize
        self.type = BPF_MAP_TYPE_ARRAY.rawValue
        self.owner = nil
        self.ownsFD = true
    }

    /// bpf_obj_pin.
    public func pin(at path: String) throws(SystemError) {
        _ = try checkNegErrno(bpf_obj_pin(fd, path), "bpf_obj_pin", path)
    }

    /// max_entries as the kernel has it (bpf_obj_get_info_by_fd).
    public func maxEntries() throws(SystemError) -> UInt32 {
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        _ = try checkNegErrno(bpf_obj_get_info_by_fd(fd, &info, &len), "bpf_obj_get_info_by_fd", name)
        return info.max_entries
    }

    /// bpf_obj_get on a pinned map, sizes from bpf_obj_get_info_by_fd.
    public init(pinned path: String) throws(SystemError) {
        let fd = bpf_obj_get(path)
        if fd < 0 { throw SystemError("bpf_obj_get", errno: errno, path) }
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        let rc = bpf_obj_get_info_by_fd(fd, &info, &len)
        if rc < 0 {
            let e = errno
            close(fd)
            throw SystemError("bpf_obj_get_info_by_fd", errno: e, path)
        }
        self.fd = fd
        self.name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        self.keySize = Int(info.key_size)
        self.valueSize = Int(info.value_size)
        self.type = info.type
        self.owner = nil
        self.ownsFD = true
    }

    deinit { if ownsFD { close(fd) } }

    /// A map pinned as `directory/name` by a daemon; ENOENT says which daemon to start.
    public static func pinned(_ name: String, in directory: String, by daemon: String) throws(SystemError) -> BPFMapHandle {
        do {
            return try BPFMapHandle(pinned: "\(directory)/\(name)")
        } catch {
            guard error.errno == ENOENT else { throw error }
            throw SystemError("open pinned map", errno: ENOENT,
                              "\(directory)/\(name): nothing pinned there (is `\(daemon)` running with this --bpffs?)")
        }
    }

    public var isPerCPU: Bool {
        type == BPF_MAP_TYPE_PERCPU_HASH.rawValue || type == BPF_MAP_TYPE_PERCPU_ARRAY.rawValue
            || type == BPF_MAP_TYPE_LRU_PERCPU_HASH.rawValue
    }

    /// Bytes a lookup returns: per-CPU maps give one 8-byte-aligned slot per possible CPU.
    public var lookupValueSize: Int {
        isPerCPU ? ((valueSize + 7) & ~7) * Int(Self.possibleCPUs) : valueSize
    }

    public static let possibleCPUs: Int32 = max(libbpf_num_possible_cpus(), 1)

    /// bpf_map_lookup_elem; false when the key is absent (ENOENT).
    public func lookup(key: UnsafeRawPointer, value: UnsafeMutableRawPointer) throws(SystemError) -> Bool {
        if bpf_map_lookup_elem(fd, key, value) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("bpf_map_lookup_elem", errno: errno, name)
    }

    /// bpf_map_update_elem with BPF_ANY / BPF_NOEXIST / BPF_EXIST.
    public func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64 = UInt64(BPF_ANY)) throws(SystemError) {
        if bpf_map_update_elem(fd, key, value, flags) != 0 {
            throw SystemError("bpf_map_update_elem", errno: errno, name)
        }
    }

    /// bpf_map_update_batch (BPF_ANY): `count` elements, keys and values packed back to back.
    /// Returns how many were written before an error stopped it (`count` on success); the
    /// caller retries element [result] alone to learn its error.
    public func updateBatch(keys: UnsafeRawPointer, values: UnsafeRawPointer, count: Int) -> Int {
        var n = UInt32(count)
        if bpf_map_update_batch(fd, keys, values, &n, nil) != 0 { return min(Int(n), count - 1) }
        return count
    }

    /// bpf_map_delete_elem; false when the key was absent.
    @discardableResult
    public func delete(key: UnsafeRawPointer) throws(SystemError) -> Bool {
        if bpf_map_delete_elem(fd, key) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("bpf_map_delete_elem", errno: errno, name)
    }

    /// bpf_map_get_next_key; false at the end.
    public func nextKey(after key: UnsafeRawPointer?, into next: UnsafeMutableRawPointer) throws(SystemError) -> Bool {
        if bpf_map_get_next_key(fd, key, next) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("bpf_map_get_next_key", errno: errno, name)
    }
}

/// bpf_obj_pin / unlink of pins.
public enum BPFPin {
    public static func remove(_ path: String) { unlink(path) }
}

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
        errno = 0
        let r = ring_buffer__new(map.fd, { ctx, data, size in
            guard let ctx, let data else { return 0 }
            Unmanaged<Handler>.fromOpaque(ctx).takeUnretainedValue().body(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }, h.toOpaque(), nil)
        guard let r else {
            h.release()
            throw SystemError("ring_buffer__new", errno: errno == 0 ? EINVAL : errno, map.name)
        }
        rb = r
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
        Int(try checkNegErrno(ring_buffer__consume(rb), "ring_buffer__consume"))
    }
}

// MARK: - Mobile node: skb test runs (the TC attach calls are in TC.swift)

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
        _ = try checkNegErrno(rc, "bpf_prog_test_run_opts(skb)", name)
        return TestRun(verdict: retval, output: Array(out.prefix(Int(outSize))), durationNanoseconds: duration, gsoSegs: gsoOut)
    }
}

// MARK: - Attachment queries (readiness)

extension BPFProgram {
    /// The kernel's id of the loaded program (bpf_obj_get_info_by_fd); 0 if unreadable.
    public var id: UInt32 {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0
    }

    /// The kernel's tag of the loaded program (a hash of its instructions, as `bpftool prog`
    /// shows it): tells one build of a program from another. "" if unreadable.
    public var tag: String {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { return "" }
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
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { return nil }
        self.id = id
        name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        tag = hexTag(info.tag)
    }
}

private func hexTag(_ tag: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> String {
    withUnsafeBytes(of: tag) { $0.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

extension XDPMode {
    /// The id of the XDP program attached to `ifindex` in this mode (netlink), nil if none.
    public func attachedProgramID(ifindex: UInt32) -> UInt32? {
        var id: UInt32 = 0
        guard cmip6_xdp_query_id(Int32(ifindex), flags, &id) == 0, id != 0 else { return nil }
        return id
    }
}
