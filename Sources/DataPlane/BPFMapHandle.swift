// Untyped map handles: by fd from an object or a pin, element calls, pins. BPFMap.swift types them.
import CMip6
import Glibc

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
        let fd = try Syscall.negErrno("bpf_map_create", name) { bpf_map_create(BPF_MAP_TYPE_ARRAY, name, 4, UInt32(valueSize), entries, nil) }
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
        try Syscall.negErrno("bpf_obj_pin", path) { bpf_obj_pin(fd, path) }
    }

    /// max_entries as the kernel has it (bpf_obj_get_info_by_fd).
    public func maxEntries() throws(SystemError) -> UInt32 {
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        try Syscall.negErrno("bpf_obj_get_info_by_fd", name) { bpf_obj_get_info_by_fd(fd, &info, &len) }
        return info.max_entries
    }

    /// bpf_obj_get on a pinned map, sizes from bpf_obj_get_info_by_fd.
    public init(pinned path: String) throws(SystemError) {
        let fd = try Syscall.negErrno("bpf_obj_get", path) { bpf_obj_get(path) }
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        do throws(SystemError) {
            try Syscall.negErrno("bpf_obj_get_info_by_fd", path) { bpf_obj_get_info_by_fd(fd, &info, &len) }
        } catch {
            close(fd)
            throw error
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
            return try BPFMapHandle(pinned: BPFFS.visible("\(directory)/\(name)"))
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
        try Syscall.found("bpf_map_lookup_elem", name) { bpf_map_lookup_elem(fd, key, value) }
    }

    /// bpf_map_update_elem with BPF_ANY / BPF_NOEXIST / BPF_EXIST.
    public func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64 = UInt64(BPF_ANY)) throws(SystemError) {
        try Syscall.negErrno("bpf_map_update_elem", name) { bpf_map_update_elem(fd, key, value, flags) }
    }

    /// bpf_map_update_batch (BPF_ANY): `count` elements, keys and values packed back to back.
    /// Returns how many were written before an error stopped it (`count` on success); the
    /// caller retries element [result] alone to learn its error.
    public func updateBatch(keys: UnsafeRawPointer, values: UnsafeRawPointer, count: Int) -> Int {
        var n = UInt32(count)
        if Syscall.succeeds({ bpf_map_update_batch(fd, keys, values, &n, nil) }) { return count }
        return min(Int(n), count - 1)
    }

    /// bpf_map_delete_elem; false when the key was absent.
    @discardableResult
    public func delete(key: UnsafeRawPointer) throws(SystemError) -> Bool {
        try Syscall.found("bpf_map_delete_elem", name) { bpf_map_delete_elem(fd, key) }
    }

    /// bpf_map_get_next_key; false at the end.
    public func nextKey(after key: UnsafeRawPointer?, into next: UnsafeMutableRawPointer) throws(SystemError) -> Bool {
        try Syscall.found("bpf_map_get_next_key", name) { bpf_map_get_next_key(fd, key, next) }
    }
}

/// bpf_obj_pin / unlink of pins.
public enum BPFPin {
    public static func remove(_ path: String) { _ = try? Syscall.call("unlink", path) { unlink(path) } }
}

