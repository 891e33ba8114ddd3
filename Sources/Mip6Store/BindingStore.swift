// The shared binding store on etcd: one key per home address under a prefix, written with
// compare-and-swap on each key's revision, listed and watched by every replica and forwarder.
import ControlPlane
import Foundation

/// A binding read from the store, with the revision a compare-and-swap must name.
public struct StoredBinding: Sendable, Equatable {
    public var homeAddress: IPv6Address
    public var record: BindingRecord
    public var modRevision: Int64
}

/// A change to commit. `expected`: the key's mod_revision as last seen, nil = must be absent.
public enum BindingWrite: Sendable {
    case put(IPv6Address, BindingRecord, expected: Int64?)
    case delete(IPv6Address, expected: Int64)

    public var homeAddress: IPv6Address {
        switch self {
        case let .put(h, _, _): return h
        case let .delete(h, _): return h
        }
    }
}

public struct CommitResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    /// On failure: what the store holds now for each key of the batch (nil: absent).
    public var current: [IPv6Address: StoredBinding?]
}

/// One batch of watch changes.
public struct BindingChanges: Sendable {
    public var revision: Int64
    public var upserts: [StoredBinding]
    public var deletes: [IPv6Address]
    /// Heartbeats seen in this batch: replica id -> wall-clock ns it wrote.
    public var heartbeats: [String: Int64]
}

public final class EtcdBindingStore: Sendable {
    public let client: EtcdClient
    /// e.g. "/mip6/v1/home1": bindings under PREFIX/b/, heartbeats under PREFIX/hb/.
    public let prefix: String
    /// A transaction carries at most this many BUs: a compare and a put each. etcd's default
    /// --max-txn-ops (128) bounds each list of a transaction apart (compares, success ops,
    /// failure ops), not their sum, so 128 would go; 64 measured the same CPU per BU and a
    /// shorter wait at 10,000 BU/s (perf/README.md).
    public static let maxBatch = 64
    /// Expiry buckets of this many seconds share one lease (garbage collection only).
    public static let leaseBucketSeconds: Int64 = 30
    /// A key outlives its binding's expiry by at most a bucket plus this.
    public static let leaseGraceSeconds: Int64 = 60
    let granted = LeaseSet()
    /// Values under the binding prefix that do not decode (written by something else, or a
    /// newer format): skipped and counted, never a reason to stop listing or watching.
    public var invalidValues: UInt64 { invalid.current }
    let invalid = Locked<UInt64>(0)

    public init(client: EtcdClient, prefix: String) {
        self.client = client
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
    }

    var bindingPrefix: String { prefix + "/b/" }
    var heartbeatPrefix: String { prefix + "/hb/" }
    func key(_ hoa: IPv6Address) -> [UInt8] { Array((bindingPrefix + "\(hoa)").utf8) }

    /// Every binding at one revision (paged).
    public func list(pageSize: Int = 5000) async throws -> (bindings: [StoredBinding], revision: Int64) {
        let (kvs, revision) = try await client.list(prefix: bindingPrefix, pageSize: pageSize)
        return (kvs.compactMap(decodeOrCount), revision)
    }

    func decode(_ kv: EtcdKeyValue) throws -> StoredBinding {
        let name = kv.keyString.dropFirst(bindingPrefix.count)
        guard let hoa = IPv6Address(String(name)) else { throw StoreError("key \(kv.keyString) does not name a home address") }
        do {
            return StoredBinding(homeAddress: hoa, record: try BindingRecord(decoding: kv.value),
                                 modRevision: kv.modRevision)
        } catch {
            throw StoreError("value of \(kv.keyString): \(error)")
        }
    }

    func decodeOrCount(_ kv: EtcdKeyValue) -> StoredBinding? {
        do { return try decode(kv) } catch {
            invalid.write { $0 += 1 }
            return nil
        }
    }

    /// Writes a batch in one transaction: all of it if every key is still at its expected
    /// revision, none of it otherwise (then `current` holds what is there instead).
    public func commit(_ writes: [BindingWrite], nowWallNs: Int64) async throws -> CommitResult {
        precondition(writes.count <= Self.maxBatch, "at most \(Self.maxBatch) writes a transaction")
        var compares: [EtcdCompare] = [], success: [EtcdOperation] = []
        for w in writes {
            let k = key(w.homeAddress)
            switch w {
            case let .put(_, record, expected):
                compares.append(expected.map { .modRevision(k, $0) } ?? .absent(k))
                let lease = try await lease(forExpiry: record.expiresUnixNs, nowWallNs: nowWallNs)
                success.append(.put(key: k, value: record.encoded, lease: lease))
            case let .delete(_, expected):
                compares.append(.modRevision(k, expected))
                success.append(.delete(key: k))
            }
        }
        // No failure branch: a range request per key in every transaction cost the gateway and
        // etcd as much to parse as the puts, for the rare conflict. A conflict reads the keys
        // in a second transaction instead (what is there then is at least as new).
        let r = try await client.txn(compares, success: success, failure: [])
        var current: [IPv6Address: StoredBinding?] = [:]
        if !r.succeeded {
            let now = try await client.txn([], success: writes.map { .get(key: key($0.homeAddress)) }, failure: [])
            for (w, kvs) in zip(writes, now.ranges) { current[w.homeAddress] = try kvs.first.map(decode) }
        }
        return CommitResult(succeeded: r.succeeded, revision: r.revision, current: current)
    }

    /// The lease of the expiry bucket `expires` falls in: its ID is a hash of the prefix and
    /// the bucket, so every replica names the same one and granting it twice is harmless.
    func lease(forExpiry expires: Int64, nowWallNs: Int64) async throws -> Int64 {
        let bucket = expires / 1_000_000_000 / Self.leaseBucketSeconds
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for b in Array(prefix.utf8) + withUnsafeBytes(of: bucket.littleEndian, Array.init) {
            h = (h ^ UInt64(b)) &* 0x100_0000_01b3
        }
        let id = Int64(bitPattern: h & 0x3fff_ffff_ffff_ffff) | 1
        if granted.contains(id) { return id }
        let ttl = max(1, (bucket + 1) * Self.leaseBucketSeconds - nowWallNs / 1_000_000_000 + Self.leaseGraceSeconds)
        try await client.grantLease(id: id, ttl: ttl)
        granted.insert(id, until: (bucket + 1) * Self.leaseBucketSeconds + Self.leaseGraceSeconds)
        return id
    }

    /// A replica's heartbeat: its lag is how old the newest heartbeat its watch delivered is.
    public func heartbeat(replica: String, wallNs: Int64) async throws {
        _ = try await client.put(heartbeatPrefix + replica, Array(String(wallNs).utf8))
    }

    /// Changes after `revision` (bindings and heartbeats), until the member closes the
    /// stream (EtcdWatchCompacted: re-list).
    public func watch(from revision: Int64) -> AsyncThrowingStream<BindingChanges, Error> {
        let upstream = client.watch(prefix: prefix + "/", from: revision)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await (rev, events) in upstream {
                        var c = BindingChanges(revision: rev, upserts: [], deletes: [], heartbeats: [:])
                        for e in events {
                            let k = e.kv.keyString
                            if k.hasPrefix(heartbeatPrefix) {
                                if e.kind == .put, let ns = Int64(String(decoding: e.kv.value, as: UTF8.self)) {
                                    c.heartbeats[String(k.dropFirst(heartbeatPrefix.count))] = ns
                                }
                            } else if k.hasPrefix(bindingPrefix) {
                                if e.kind == .delete {
                                    if let hoa = IPv6Address(String(k.dropFirst(bindingPrefix.count))) { c.deletes.append(hoa) }
                                } else {
                                    if let b = decodeOrCount(e.kv) { c.upserts.append(b) }
                                }
                            }
                        }
                        continuation.yield(c)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Leases granted by this process, forgotten once their bucket is over.
final class LeaseSet: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [Int64: Int64] = [:] // id -> wall seconds it is good until

    func contains(_ id: Int64) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let until = ids[id] else { return false }
        if until * 1_000_000_000 < Int64(Date().timeIntervalSince1970 * 1e9) {
            ids[id] = nil
            return false
        }
        return true
    }

    func insert(_ id: Int64, until: Int64) {
        lock.lock(); defer { lock.unlock() }
        ids[id] = until
    }
}
