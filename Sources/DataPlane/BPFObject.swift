// libbpf objects: open from embedded bytes, size and pin maps, load (bpf_object__*).
import CMip6
import Glibc

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
        obj = try Syscall.pointer("bpf_object__open_mem", name) {
            bytes.withUnsafeBytes { cmip6_object_open_mem($0.baseAddress, $0.count, name) }
        }
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
        try Syscall.check(bpf_map__set_max_entries(try mapPointer(map), n), "bpf_map__set_max_entries", map)
    }

    /// Pin every map under `directory` on load; libbpf reuses a compatible map already
    /// pinned there and refuses an incompatible one (bpf_map__set_pin_path).
    public func pinMaps(under directory: String) throws(SystemError) {
        var m: OpaquePointer? = bpf_object__next_map(obj, nil)
        while let map = m {
            let mapName = String(cString: bpf_map__name(map))
            try Syscall.check(bpf_map__set_pin_path(map, "\(directory)/\(mapName)"), "bpf_map__set_pin_path", mapName)
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
        try Syscall.check(bpf_object__load(obj), "bpf_object__load", name)
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
        try Syscall.check(fd, "bpf_map__fd", name)
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
        try Syscall.check(fd, "bpf_program__fd", name)
        return BPFProgram(fd: fd, name: name, owner: self)
    }
}

