#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A source of monotonic time in nanoseconds.
public protocol MonotonicClock: Sendable {
    func nanoseconds() -> UInt64
}

/// CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() reads, so expiry times written to BPF maps
/// compare directly with the kernel's.
public struct SystemMonotonicClock: MonotonicClock {
    public init() {}

    public func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// One home registration (RFC 6275 §9.1 Binding Cache entry, home registration flag set).
public struct Binding: Equatable, Hashable, Sendable, Codable {
    public var homeAddress: IPv6Address
    public var careOfAddress: IPv6Address
    /// Sequence number of the last accepted Binding Update.
    public var sequence: UInt16
    /// Flags of the last accepted Binding Update.
    public var flags: BUFlags
    /// Granted lifetime in seconds (a multiple of 4).
    public var lifetime: UInt32
    /// Monotonic time (ns) the last accepted Binding Update was processed.
    public var registeredAt: UInt64
    /// Monotonic time (ns) the binding expires.
    public var expiresAt: UInt64

    public init(homeAddress: IPv6Address, careOfAddress: IPv6Address, sequence: UInt16, flags: BUFlags,
                lifetime: UInt32, registeredAt: UInt64, expiresAt: UInt64) {
        self.homeAddress = homeAddress
        self.careOfAddress = careOfAddress
        self.sequence = sequence
        self.flags = flags
        self.lifetime = lifetime
        self.registeredAt = registeredAt
        self.expiresAt = expiresAt
    }

    /// Convenience: expiry computed from `registeredAt + lifetime`.
    public init(homeAddress: IPv6Address, careOfAddress: IPv6Address, sequence: UInt16, flags: BUFlags,
                lifetime: UInt32, registeredAt: UInt64) {
        self.init(homeAddress: homeAddress, careOfAddress: careOfAddress, sequence: sequence, flags: flags,
                  lifetime: lifetime, registeredAt: registeredAt,
                  expiresAt: registeredAt + UInt64(lifetime) * 1_000_000_000)
    }

    /// Whole seconds left at `now` (0 once expired).
    public func remaining(at now: UInt64) -> UInt32 {
        guard expiresAt > now else { return 0 }
        return UInt32(clamping: (expiresAt - now) / 1_000_000_000)
    }
}

/// Where bindings take effect: the BPF maps. Every cache change is written through here first.
public protocol BindingDataPlane: AnyObject {
    /// Adds or replaces the binding for `binding.homeAddress`.
    func install(_ binding: Binding) throws
    /// The same, told whether the home address is new to the cache (a data plane may keep
    /// per-binding state next to the binding that only a new one needs created).
    func install(_ binding: Binding, isNew: Bool) throws
    func remove(homeAddress: IPv6Address) throws
}

extension BindingDataPlane {
    public func install(_ binding: Binding, isNew: Bool) throws { try install(binding) }
}

public enum BindingCacheError: Error, CustomStringConvertible {
    /// A new home address when the cache already holds `capacity` bindings.
    case full(capacity: Int)
    /// `expire(now:)` stopped at a binding the data plane refused to remove. `expired` were
    /// removed before that and are gone; the failing one is still cached and still due.
    case expiryInterrupted(expired: [Binding], underlying: any Error)

    public var description: String {
        switch self {
        case .full(let capacity): return "binding cache full (\(capacity) bindings)"
        case .expiryInterrupted(let expired, let underlying):
            return "expiry interrupted after \(expired.count) bindings: \(underlying)"
        }
    }
}

/// The home agent's Binding Cache. Not thread-safe: owned by one event loop.
///
/// Lookups go through a dictionary; expiry through a binary min-heap of (expiresAt, home address).
/// Heap entries are invalidated lazily: an entry counts only while the cached binding for its home
/// address still has that expiry. Stale entries are skipped when they reach the top, and the heap
/// is rebuilt when they outnumber live ones, so memory stays O(n) and expire() is O(k log n).
public final class BindingCache {
    public let capacity: Int
    private let dataPlane: BindingDataPlane
    private var bindings: [IPv6Address: Binding]
    private var heap = ExpiryHeap<IPv6Address>()
    /// Derived link-local address -> the home address whose binding (L flag) defends it.
    private var linkLocalOwners: [IPv6Address: IPv6Address] = [:]

    public init(capacity: Int, dataPlane: BindingDataPlane) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.dataPlane = dataPlane
        self.bindings = Dictionary(minimumCapacity: min(capacity, 1 << 16))
    }

    public subscript(homeAddress: IPv6Address) -> Binding? {
        bindings[homeAddress]
    }

    /// The home address whose binding defends `linkLocal` (L flag, RFC 6275 §10.3.1), if any.
    /// Two can only claim one when the home prefix is shorter than /64.
    public func linkLocalOwner(_ linkLocal: IPv6Address) -> IPv6Address? {
        linkLocalOwners[linkLocal]
    }

    public var count: Int { bindings.count }
    public var isFull: Bool { bindings.count >= capacity }

    /// All bindings ordered by home address.
    public var all: [Binding] {
        bindings.values.sorted { $0.homeAddress < $1.homeAddress }
    }

    /// Adds or replaces a binding. The data plane is written first; if it throws, the cache is
    /// left as it was and the error is rethrown.
    public func upsert(_ binding: Binding) throws {
        let old = bindings[binding.homeAddress]
        if old == nil && isFull { throw BindingCacheError.full(capacity: capacity) }
        try dataPlane.install(binding, isNew: old == nil)
        bindings[binding.homeAddress] = binding
        reindex(from: old, to: binding)
        if old?.expiresAt != binding.expiresAt {
            heap.push(ExpiryHeap.Entry(expiresAt: binding.expiresAt, key: binding.homeAddress))
            compactIfNeeded()
        }
    }

    /// Removes the binding for `hoa`, data plane first. Returns nil if there was none.
    @discardableResult
    public func remove(_ hoa: IPv6Address) throws -> Binding? {
        guard let old = bindings[hoa] else { return nil }
        try dataPlane.remove(homeAddress: hoa)
        bindings[hoa] = nil
        reindex(from: old, to: nil)
        compactIfNeeded()
        return old
    }

    /// Puts the entry for `hoa` back to `previous` (nil: no entry) without writing to the data
    /// plane: for a write the data plane took as staged and then refused, so that it still
    /// holds `previous`. The cache and the maps agree again.
    public func revert(_ hoa: IPv6Address, to previous: Binding?) {
        reindex(from: bindings[hoa], to: previous)
        bindings[hoa] = previous
        if let previous {
            heap.push(ExpiryHeap.Entry(expiresAt: previous.expiresAt, key: hoa))
        }
        compactIfNeeded()
    }

    /// Removes and returns every binding with `expiresAt <= now`, earliest first.
    /// On a data plane failure throws `BindingCacheError.expiryInterrupted`.
    public func expire(now: UInt64) throws -> [Binding] {
        var expired: [Binding] = []
        while let top = heap.top, top.expiresAt <= now {
            heap.pop()
            guard let binding = bindings[top.key], binding.expiresAt == top.expiresAt else { continue }
            do {
                try dataPlane.remove(homeAddress: top.key)
            } catch {
                heap.push(top) // still cached, still due
                throw BindingCacheError.expiryInterrupted(expired: expired, underlying: error)
            }
            bindings[top.key] = nil
            reindex(from: binding, to: nil)
            expired.append(binding)
        }
        return expired
    }

    /// The earliest expiry time among cached bindings.
    public var nextExpiry: UInt64? {
        while let top = heap.top {
            if let binding = bindings[top.key], binding.expiresAt == top.expiresAt {
                return top.expiresAt
            }
            heap.pop()
        }
        return nil
    }

    /// Adopts `bindings` as the whole cache content without writing to the data plane (after a
    /// restart, from state the data plane already holds). Capacity is not enforced here.
    public func restore(_ restored: [Binding]) {
        bindings.removeAll(keepingCapacity: true)
        linkLocalOwners.removeAll()
        for b in restored {
            bindings[b.homeAddress] = b
            reindex(from: nil, to: b)
        }
        rebuildHeap()
    }

    private func reindex(from old: Binding?, to new: Binding?) {
        if let old, old.flags.contains(.linkLocal) {
            let ll = old.homeAddress.derivedLinkLocal
            if linkLocalOwners[ll] == old.homeAddress { linkLocalOwners[ll] = nil }
        }
        if let new, new.flags.contains(.linkLocal) {
            linkLocalOwners[new.homeAddress.derivedLinkLocal] = new.homeAddress
        }
    }

    private func compactIfNeeded() {
        if heap.count > 2 * bindings.count + 1024 { rebuildHeap() }
    }

    private func rebuildHeap() {
        heap = ExpiryHeap(bindings.values.map { ExpiryHeap.Entry(expiresAt: $0.expiresAt, key: $0.homeAddress) })
    }
}

/// Binary min-heap on (expiresAt, key), invalidated lazily by its users: the binding cache
/// (key: home address), the LMA (an entry's first prefix) and the MAG (a MAC as an integer).
struct ExpiryHeap<Key: Comparable> {
    struct Entry {
        var expiresAt: UInt64
        var key: Key

        @inline(__always)
        static func < (a: Entry, b: Entry) -> Bool {
            (a.expiresAt, a.key) < (b.expiresAt, b.key)
        }
    }

    private(set) var storage: [Entry] = []

    init() {}

    /// Floyd's O(n) heapify.
    init(_ entries: [Entry]) {
        storage = entries
        var i = storage.count / 2
        while i > 0 {
            i -= 1
            siftDown(i)
        }
    }

    var count: Int { storage.count }
    var top: Entry? { storage.first }

    mutating func push(_ e: Entry) {
        storage.append(e)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child] < storage[parent] else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard !storage.isEmpty else { return nil }
        let last = storage.removeLast()
        guard !storage.isEmpty else { return last }
        let first = storage[0]
        storage[0] = last
        siftDown(0)
        return first
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let n = storage.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { return }
            var smallest = left
            let right = left + 1
            if right < n && storage[right] < storage[left] { smallest = right }
            guard storage[smallest] < storage[parent] else { return }
            storage.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
