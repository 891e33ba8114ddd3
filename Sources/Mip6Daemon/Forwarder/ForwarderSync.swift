/// Whether a forwarder may forward from its maps (pure; the loop passes the clocks in).
///
/// A forwarder that is behind the store would tunnel to a care-of address a mobile node has
/// left, so it forwards only while it can prove it is current: its first list is in the maps,
/// the watch has not broken since, and one of its own heartbeats came back through the watch
/// within --max-lag (plus one heartbeat period). Otherwise every packet passes and is routed
/// to the replicas. Unlike a replica it does not trust its maps while the store is silent:
/// the replicas are there to fall back on.
public struct ForwarderSync: Sendable {
    public let maxLagNs: UInt64
    public let heartbeatPeriodNs: UInt64
    /// A list is in the maps and the watch has not broken since.
    public private(set) var listed = false
    /// The newest store revision the maps reflect.
    public private(set) var revision: Int64 = 0
    /// Wall ns of our heartbeats the store took but the watch has not delivered, oldest first.
    public private(set) var unseen: [Int64] = []
    /// Monotonic ns of the last proof the watch is current (a list, our heartbeat seen).
    public private(set) var confirmedNs: UInt64 = 0
    /// Heartbeats remembered at most (a watch that never delivers is stale long before).
    static let unseenLimit = 256

    public init(maxLagMilliseconds: UInt32, heartbeatPeriodNs: UInt64 = 250_000_000) {
        maxLagNs = UInt64(maxLagMilliseconds) * 1_000_000
        self.heartbeatPeriodNs = heartbeatPeriodNs
    }

    /// Every binding at `revision` is in the maps. Heartbeats written before it are at or
    /// below it: the watch from the next revision never delivers them.
    public mutating func listed(revision: Int64, nowNs: UInt64) {
        listed = true
        self.revision = revision
        confirmedNs = nowNs
        unseen.removeAll()
    }

    /// The watch broke: nothing is known until the next list.
    public mutating func watchBroken() { listed = false }

    /// A watch batch at `revision`; `ownHeartbeat`: the newest of ours in it.
    public mutating func changes(revision: Int64, ownHeartbeat: Int64?, nowNs: UInt64) {
        self.revision = max(self.revision, revision)
        guard let mine = ownHeartbeat else { return }
        unseen.removeAll { $0 <= mine }
        confirmedNs = nowNs
    }

    public mutating func heartbeatWritten(wallNs: Int64) {
        if unseen.count < Self.unseenLimit { unseen.append(wallNs) }
    }

    /// The watch's lag, ms: the age of the oldest heartbeat the store took and the watch has
    /// not delivered (0 when it delivered them all).
    public func lagMilliseconds(wallNs: Int64) -> Double {
        guard let oldest = unseen.first else { return 0 }
        return max(0, Double(wallNs - oldest) / 1e6)
    }

    /// Nil while the maps may be used; else why not.
    public func notSyncedReason(nowNs: UInt64, wallNs: Int64) -> String? {
        if !listed { return confirmedNs == 0 ? "first list not done" : "watch broken, listing again" }
        if lagMilliseconds(wallNs: wallNs) > Double(maxLagNs) / 1e6 {
            return "watch lags \(Int(lagMilliseconds(wallNs: wallNs))) ms behind the store"
        }
        let silence = nowNs &- confirmedNs
        if nowNs > confirmedNs && silence > maxLagNs + heartbeatPeriodNs {
            return "no heartbeat back through the watch for \(silence / 1_000_000) ms"
        }
        return nil
    }

    public func synced(nowNs: UInt64, wallNs: Int64) -> Bool { notSyncedReason(nowNs: nowNs, wallNs: wallNs) == nil }
}
