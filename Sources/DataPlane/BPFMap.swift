import CMip6
import ControlPlane
import Glibc

/// A typed view of a map whose key and value are structs from mip6_shared.h.
/// The sizes are checked against libbpf's view once, when the view is made.
public struct BPFMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    public let handle: BPFMapHandle

    public init(_ handle: BPFMapHandle) throws {
        guard handle.keySize == MemoryLayout<Key>.size, handle.valueSize == MemoryLayout<Value>.size else {
            throw SystemError("map layout", errno: EINVAL,
                              "\(handle.name): the map has key/value \(handle.keySize)/\(handle.valueSize) bytes, "
                              + "this build expects \(MemoryLayout<Key>.size)/\(MemoryLayout<Value>.size) (pinned by another version?)")
        }
        self.handle = handle
    }

    public func lookup(_ key: Key) throws -> Value? {
        precondition(!handle.isPerCPU, "use lookupPerCPU on \(handle.name)")
        var k = key
        var v: Value = zeroed()
        let found = try withUnsafeMutableBytes(of: &v) { (vp) throws -> Bool in
            try withUnsafeBytes(of: &k) { (kp) throws -> Bool in
                try handle.lookup(key: kp.baseAddress!, value: vp.baseAddress!)
            }
        }
        return found ? v : nil
    }

    /// One value per possible CPU, or nil when the key is absent.
    public func lookupPerCPU(_ key: Key) throws -> [Value]? {
        precondition(handle.isPerCPU)
        var k = key
        let slot = (MemoryLayout<Value>.size + 7) & ~7
        var buf = [UInt8](repeating: 0, count: handle.lookupValueSize)
        let found = try buf.withUnsafeMutableBytes { (vp) throws -> Bool in
            try withUnsafeBytes(of: &k) { (kp) throws -> Bool in
                try handle.lookup(key: kp.baseAddress!, value: vp.baseAddress!)
            }
        }
        guard found else { return nil }
        return buf.withUnsafeBytes { raw in
            (0..<Int(BPFMapHandle.possibleCPUs)).map { raw.loadUnaligned(fromByteOffset: $0 * slot, as: Value.self) }
        }
    }

    public func update(_ key: Key, _ value: Value, flags: UInt64 = UInt64(BPF_ANY)) throws {
        var k = key
        var v = value
        try withUnsafeBytes(of: &k) { (kp) throws in
            try withUnsafeBytes(of: &v) { (vp) throws in
                try handle.update(key: kp.baseAddress!, value: vp.baseAddress!, flags: flags)
            }
        }
    }

    /// One bpf_map_update_batch for all `pairs` (BPF_ANY). Returns how many were written;
    /// fewer than pairs.count means pairs[result] failed and the rest were not tried.
    public func updateBatch(_ pairs: ArraySlice<(Key, Value)>) -> Int {
        if pairs.isEmpty { return 0 }
        let keys = pairs.map(\.0)
        let values = pairs.map(\.1)
        return keys.withUnsafeBytes { kp in
            values.withUnsafeBytes { vp in
                handle.updateBatch(keys: kp.baseAddress!, values: vp.baseAddress!, count: pairs.count)
            }
        }
    }

    /// Writes the same value on every CPU (per-CPU maps).
    public func updatePerCPU(_ key: Key, _ value: Value, flags: UInt64 = UInt64(BPF_ANY)) throws {
        var k = key
        let slot = (MemoryLayout<Value>.size + 7) & ~7
        var buf = [UInt8](repeating: 0, count: handle.lookupValueSize)
        buf.withUnsafeMutableBytes { raw in
            for cpu in 0..<Int(BPFMapHandle.possibleCPUs) {
                raw.storeBytes(of: value, toByteOffset: cpu * slot, as: Value.self)
            }
        }
        try withUnsafeBytes(of: &k) { (kp) throws in
            try buf.withUnsafeBytes { (vp) throws in
                try handle.update(key: kp.baseAddress!, value: vp.baseAddress!, flags: flags)
            }
        }
    }

    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        var k = key
        return try withUnsafeBytes(of: &k) { (kp) throws -> Bool in try handle.delete(key: kp.baseAddress!) }
    }

    /// All keys, each once (bpf_map_get_next_key walk). When the key the walk stands on is
    /// deleted meanwhile (a binding expiring), the kernel restarts it from the first bucket,
    /// so keys already returned come again: they are dropped here by their bytes. The walk
    /// gives up after `limit` keys or as many steps as 4× the map's size, whichever comes first.
    public func keys(limit: Int = Int.max) throws -> [Key] {
        try keys(limit: limit, afterEach: nil)
    }

    /// The walk, with a hook after each step (tests delete keys mid-walk with it).
    func keys(limit: Int, afterEach: ((Key) throws -> Void)?) throws -> [Key] {
        var result: [Key] = []
        var seen = Set<[UInt8]>()
        var cur: Key = zeroed()
        var next = cur
        var first = true
        let maxSteps = Int(max(try handle.maxEntries(), 1)) * 4
        var steps = 0
        while result.count < limit && steps < maxSteps {
            steps += 1
            let more = try withUnsafeMutableBytes(of: &next) { (np) throws -> Bool in
                if first { return try handle.nextKey(after: nil, into: np.baseAddress!) }
                return try withUnsafeBytes(of: &cur) { (cp) throws -> Bool in
                    try handle.nextKey(after: cp.baseAddress!, into: np.baseAddress!)
                }
            }
            if !more { break }
            first = false
            cur = next
            if seen.insert(withUnsafeBytes(of: &next) { Array($0) }).inserted { result.append(next) }
            try afterEach?(next)
        }
        return result
    }

    /// Every entry (a key walk, then one lookup each; an entry deleted in between is skipped).
    public func entries() throws -> [(Key, Value)] {
        try keys().compactMap { k in try lookup(k).map { (k, $0) } }
    }
}

extension BPFMap where Key == UInt32, Value == UInt64 {
    /// A per-CPU array of counters (an X-macro table in mip6_shared.h) by name, summed over
    /// CPUs, in index order. `name` is the table's generated name function.
    public func namedCounters(count: UInt32, name: (UInt32) -> UnsafePointer<CChar>?) throws -> [(name: String, value: UInt64)] {
        var out: [(String, UInt64)] = []
        for i in 0..<count {
            let total = try (lookupPerCPU(i) ?? []).reduce(0, &+)
            out.append((name(i).map { String(cString: $0) } ?? "counter_\(i)", total))
        }
        return out
    }

    /// One counter of such an array by its name, summed over CPUs; a name the table does not
    /// have throws EINVAL.
    public func counter(named wanted: String, count: UInt32, name: (UInt32) -> UnsafePointer<CChar>?) throws -> UInt64 {
        for i in 0..<count where name(i).map({ String(cString: $0) }) == wanted {
            return try (lookupPerCPU(i) ?? []).reduce(0, &+)
        }
        throw SystemError(handle.name, errno: EINVAL, "no counter named \(wanted)")
    }

    /// Every counter of such an array as name -> sum over CPUs (for /metrics and status).
    public func counterDictionary(count: UInt32, name: (UInt32) -> UnsafePointer<CChar>?) throws -> [String: UInt64] {
        Dictionary(try namedCounters(count: count, name: name).map { ($0.name, $0.value) }, uniquingKeysWith: +)
    }
}

/// An all-zero value of an imported C struct (keys must have zeroed padding: hash maps compare it).
public func zeroed<T>() -> T {
    withUnsafeTemporaryAllocation(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment) { buf in
        buf.initializeMemory(as: UInt8.self, repeating: 0)
        return buf.load(as: T.self)
    }
}

// MARK: - Address conversion between ControlPlane and the shared structs

public typealias CAddress = (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                             UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
public typealias CMAC = (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

extension IPv6Address {
    /// The 16-byte array form used in mip6_shared.h (network order).
    public var cAddress: CAddress {
        var t: CAddress = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let b = bytes
        withUnsafeMutableBytes(of: &t) { raw in for i in 0..<16 { raw[i] = b[i] } }
        return t
    }

    public init(cAddress: CAddress) {
        var t = cAddress
        self = withUnsafeBytes(of: &t) { IPv6Address(bytes: Array($0)) }
    }
}

func macBytes(_ t: CMAC) -> [UInt8] {
    var t = t
    return withUnsafeBytes(of: &t) { Array($0) }
}

func cMAC(_ b: [UInt8]) -> CMAC {
    precondition(b.count == 6)
    return (b[0], b[1], b[2], b[3], b[4], b[5])
}

