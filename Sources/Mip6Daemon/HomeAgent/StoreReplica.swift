import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6Store

/// The asynchronous side of a home-agent replica's shared binding store (issue 12): list
/// then watch (Cilium's pattern: list at a revision, watch from the next one, re-list after
/// a compaction), heartbeats, and commits. Everything it learns goes to an inbox
/// the daemon's loop drains on the loop's thread (`wake`); nothing here touches the cache or
/// the maps.
final class StoreReplica: @unchecked Sendable {
    enum Event {
        /// Every binding at `revision`: what is not in it is gone.
        case listed([StoredBinding], revision: Int64)
        case changes(BindingChanges)
        /// The list failed or the watch cannot go on from where it was (compacted): a re-list follows.
        case syncLost(String)
        /// The watch broke (its member died, the connection dropped): it goes on from
        /// `resumingAt`, on another member first, and misses nothing.
        case watchBroken(String, resumingAt: Int64)
        case committed(id: Int, CommitResult)
        case commitFailed(id: Int, String)
        /// A heartbeat was written (the store answers; `wallNs` is what it carried,
        /// `acknowledgedWallNs` when the answer came) or could not be.
        case heartbeatWritten(ok: Bool, wallNs: Int64, acknowledgedWallNs: Int64)
    }

    let store: EtcdBindingStore
    let options: StoreOptions
    let logger: Logger
    private let inbox = Locked<[Event]>([])
    /// The watch running now (cancelled to take it again elsewhere).
    private let watching = Locked<Task<Void, Error>?>(nil)
    /// Uptime ns of the last watch given up for lagging.
    private let lastRestartNs = Locked<UInt64>(0)
    private let wake: @Sendable () -> Void
    private var tasks: [Task<Void, Never>] = []

    init(options: StoreOptions, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.options = options
        self.logger = logger
        self.wake = wake
        store = EtcdBindingStore(client: EtcdClient(endpoints: options.endpoints, api: options.api, firstChoice: EtcdClient.firstChoice(for: options.replicaID)),
                                 prefix: options.prefix)
    }

    func start() {
        tasks.append(Task.detached { [self] in await syncLoop() })
        tasks.append(Task.detached { [self] in await heartbeatLoop() })
    }

    func stop() {
        for t in tasks { t.cancel() }
        tasks.removeAll()
    }

    func takeEvents() -> [Event] {
        inbox.write { e in
            defer { e.removeAll(keepingCapacity: true) }
            return e
        }
    }

    private func post(_ e: Event) {
        inbox.write { $0.append(e) }
        wake()
    }

    /// Commits one batch (at most EtcdBindingStore.maxBatch writes); the result comes back as
    /// an event with `id`.
    /// A commit that fails (a member down, a leader election under way) is tried again for
    /// up to `retryForNs` (an election takes about one election timeout) before the batch is
    /// given up. A retry of a transaction that did go through fails its compare and comes
    /// back as a conflict, which is handled as one.
    func commit(id: Int, _ writes: [BindingWrite], retryForNs: UInt64 = 2_500_000_000) {
        let now = Self.wallNanoseconds()
        Task.detached { [self] in
            let deadline = DispatchTime.now().uptimeNanoseconds + retryForNs
            var delay: UInt64 = 50_000_000
            while true {
                do {
                    post(.committed(id: id, try await store.commit(writes, nowWallNs: now)))
                    return
                } catch {
                    logger.debug("store commit attempt failed", metadata: ["mip6.batch": "\(id)", "mip6.error": "\(error)"])
                    if DispatchTime.now().uptimeNanoseconds + delay > deadline || Task.isCancelled {
                        post(.commitFailed(id: id, "\(error)"))
                        return
                    }
                    try? await Task.sleep(nanoseconds: delay)
                    delay = min(delay * 2, 400_000_000)
                }
            }
        }
    }

    /// List once, then watch from the next revision for good. A broken watch goes on from
    /// where it was: a re-list (a linearizable read, which waits out a leader election)
    /// only after a compaction. Resuming is what kept a replica whose member was killed
    /// current within milliseconds instead of a second or more.
    private func syncLoop() async {
        var backoffNs: UInt64 = 0
        var next: Int64? = nil // the revision to watch from; nil: list first
        while !Task.isCancelled {
            do {
                if next == nil {
                    let (bindings, revision) = try await store.list()
                    post(.listed(bindings, revision: revision))
                    next = revision + 1
                }
                let progress = Locked((next: next!, taken: false))
                let watcher = Task { [store] in
                    for try await c in store.watch(from: progress.read { $0.next }) {
                        progress.write { $0.taken = true } // a member took the watch
                        if c.upserts.isEmpty && c.deletes.isEmpty && c.heartbeats.isEmpty { continue }
                        progress.write { $0.next = c.revision + 1 }
                        self.post(.changes(c))
                    }
                }
                watching.write { $0 = watcher }
                let result = await withTaskCancellationHandler { await watcher.result } onCancel: { watcher.cancel() }
                watching.write { $0 = nil }
                next = progress.read { $0.next }
                if progress.read { $0.taken } { backoffNs = 0 }
                try result.get()
                if watcher.isCancelled && !Task.isCancelled {
                    post(.watchBroken("it lagged behind the store (its member hears no leader?)", resumingAt: next!))
                }
                // Else the member closed the stream: watch again from the next revision.
            } catch {
                if Task.isCancelled { return }
                if error is EtcdWatchCompacted || next == nil {
                    next = nil
                    post(.syncLost("\(error)"))
                } else {
                    post(.watchBroken("\(error)", resumingAt: next!))
                }
                // The first retry at once (another member is likely fine), then backing off.
                if backoffNs > 0 { try? await Task.sleep(nanoseconds: backoffNs) }
                backoffNs = min(max(backoffNs * 2, 50_000_000), 2_000_000_000)
            }
        }
    }

    /// A watch that lags behind a store that takes writes sits on a member that no longer
    /// hears the others (cut off, frozen): at most once per `maxLagMilliseconds` it is given
    /// up and taken again from its revision, on another member first. Loop thread.
    func restartWatchIfLagging(lagMilliseconds: Double, maxLagMilliseconds: UInt32) {
        guard lagMilliseconds > Double(maxLagMilliseconds), let watcher = watching.read({ $0 }) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now >= lastRestartNs.read { $0 } + UInt64(maxLagMilliseconds) * 1_000_000 else { return }
        lastRestartNs.write { $0 = now }
        watcher.cancel()
    }

    /// Every 250 ms: the lag is measured on these coming back through the watch.
    private func heartbeatLoop() async {
        while !Task.isCancelled {
            let ns = Self.wallNanoseconds()
            do {
                try await store.heartbeat(replica: options.replicaID, wallNs: ns)
                post(.heartbeatWritten(ok: true, wallNs: ns, acknowledgedWallNs: Self.wallNanoseconds()))
            } catch {
                logger.debug("heartbeat failed", metadata: ["mip6.error": "\(error)"])
                post(.heartbeatWritten(ok: false, wallNs: ns, acknowledgedWallNs: 0))
            }
            try? await Task.sleep(nanoseconds: 250_000_000)
        }
    }

    static func wallNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// What the loop knows of the store (loop thread only).
struct StoreState {
    /// mod_revision of each home address's key, as last listed, watched or committed.
    var revisions: [IPv6Address: Int64] = [:]
    /// The first list is in the maps.
    var synced = false
    /// This replica's heartbeats the store took and the watch has not delivered yet. A store
    /// that takes no writes (an election, no quorum) adds none, so it never looks like a
    /// lagging watch.
    var heartbeats = HeartbeatTrail()
    /// Writes waiting for an earlier write of the same key to finish (its new revision).
    var deferred: [IPv6Address: DeferredWrite] = [:]
    /// Monotonic ns of the last heartbeat write that succeeded / failed.
    var lastWriteOkNs: UInt64 = 0
    var lastWriteFailedNs: UInt64 = 0
    /// Monotonic ns the replica started (a store down from the start counts from here).
    var startedNs: UInt64 = 0
    var nextBatch = 0
    var inFlight: [Int: StoreBatch] = [:]
    /// Batches waiting for a free transaction slot (HomeAgentDaemon.maxInFlightBatches).
    var queued: [StoreBatch] = []
    /// The keys of every in-flight or queued batch (a key is in one batch at most: a later
    /// write of it is deferred). Kept as batches come and go: rebuilding it from the batches
    /// on every flush cost more than the BUs themselves at 10,000/s.
    var pendingKeys: Set<IPv6Address> = []
    /// The BU behind each key's write in flight or deferred (the latest one for the key).
    var requests: [IPv6Address: PendingRequest] = [:]
    var counters = StoreCounters()
    /// The announcement as last set.
    var announced = Announcement.withdrawn
    /// Another replica accepted a BU -> its binding in our maps, ms (the last 4096).
    var convergence = LatencySamples()
    /// A batch submitted -> its commit result on the loop, ms (the last 4096).
    var commitLatency = LatencySamples()
}

/// A de-registration or binding of a key whose earlier write is still in flight.
/// A BU accepted in memory whose binding is not committed yet.
struct PendingRequest {
    var packet: [UInt8]
    var receivedNs: UInt64
    /// Already judged a second time after a conflict: a second conflict withholds its BA.
    var judgedAgain: Bool
}

struct DeferredWrite {
    var binding: Binding?
    var before: Binding?
    var removed: Binding?
    var sends: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]
}

/// A batch waiting for its commit: the writes, the bindings to put in the maps and the
/// answers to send once the store has them.
struct StoreBatch {
    var writes: [BindingWrite]
    var staged: BPFBindingTable.Staged
    /// Bindings a de-registration removed (put back if the commit fails).
    var removed: [IPv6Address: Binding]
    var sends: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]
    var retried = false
    /// Monotonic ns it was submitted (commit latency).
    var submittedNs: UInt64 = 0

    /// This batch and `other` (other keys) as one.
    func merged(with other: StoreBatch) -> StoreBatch {
        StoreBatch(writes: writes + other.writes,
                   staged: BPFBindingTable.Staged(bindings: staged.bindings.merging(other.staged.bindings) { $1 },
                                                  before: staged.before.merging(other.staged.before) { $1 }),
                   removed: removed.merging(other.removed) { $1 },
                   sends: sends + other.sends)
    }

    /// The part of the batch for `keys`.
    func subset(_ keys: Set<IPv6Address>) -> StoreBatch {
        StoreBatch(writes: writes.filter { keys.contains($0.homeAddress) },
                   staged: BPFBindingTable.Staged(bindings: staged.bindings.filter { keys.contains($0.key) },
                                                  before: staged.before.filter { keys.contains($0.key) }),
                   removed: removed.filter { keys.contains($0.key) },
                   sends: sends.filter { $0.hoa.map { keys.contains($0) } ?? false }, retried: retried)
    }
}

public struct StoreCounters: Codable, Sendable, Equatable {
    public var commits: UInt64 = 0
    public var committedWrites: UInt64 = 0
    public var conflicts: UInt64 = 0
    public var failures: UInt64 = 0
    public var lists: UInt64 = 0
    public var watchBreaks: UInt64 = 0
    public var remoteUpserts: UInt64 = 0
    public var remoteDeletes: UInt64 = 0
    public var heartbeatFailures: UInt64 = 0
    /// Values under the binding prefix that did not decode: skipped.
    public var invalidRecords: UInt64 = 0
    /// BUs judged a second time after a conflict (and answered then, if they still held).
    public var judgedAgain: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case commits, committedWrites, conflicts, failures, lists, watchBreaks, remoteUpserts, remoteDeletes,
             heartbeatFailures, invalidRecords, judgedAgain
    }

    /// A counter a state file written by an older daemon lacks reads as 0: `mip6 status`
    /// after an upgrade, before the daemon restarts, still works.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func n(_ k: CodingKeys) throws -> UInt64 { try c.decodeIfPresent(UInt64.self, forKey: k) ?? 0 }
        commits = try n(.commits)
        committedWrites = try n(.committedWrites)
        conflicts = try n(.conflicts)
        failures = try n(.failures)
        lists = try n(.lists)
        watchBreaks = try n(.watchBreaks)
        remoteUpserts = try n(.remoteUpserts)
        remoteDeletes = try n(.remoteDeletes)
        heartbeatFailures = try n(.heartbeatFailures)
        invalidRecords = try n(.invalidRecords)
        judgedAgain = try n(.judgedAgain)
    }
}

/// How this replica attracts traffic.
enum Announcement: String, Codable, Sendable {
    /// Not at all: starting (not synced) or stopping.
    case withdrawn
    /// Like every healthy replica.
    case preferred
    /// Less preferred (a longer AS path): its watch lags behind a store that answers.
    case lagging
}

/// The last 4096 of some latency, ms.
struct LatencySamples {
    private var samples: [Double] = []
    private var next = 0

    mutating func note(_ ms: Double) {
        if samples.count < 4096 { samples.append(ms) } else { samples[next] = ms }
        next = (next + 1) % 4096
    }

    var summary: ConvergenceSummary? {
        guard !samples.isEmpty else { return nil }
        let s = samples.sorted()
        func q(_ p: Double) -> Double { s[min(s.count - 1, Int(Double(s.count) * p))] }
        return ConvergenceSummary(samples: s.count, p50: q(0.5), p99: q(0.99), max: s.last!)
    }
}

/// p50, p99 and max of a latency, ms (convergence: from another replica's acceptance, the
/// record's registration time, to our map write; commits: submitted -> result on the loop).
public struct ConvergenceSummary: Codable, Sendable, Equatable {
    public var samples: Int
    public var p50: Double
    public var p99: Double
    public var max: Double
}
