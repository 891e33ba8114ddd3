/// Whether a forwarder may forward from its maps (pure; the loop passes the clocks in).
///
/// A forwarder that is behind the store would tunnel to a care-of address a mobile node has
/// left, so it forwards only while it can prove it is current: its first list is in the maps,
/// a watch that broke since has brought back one of its own heartbeats, and one came back
/// within --max-lag (plus one heartbeat period). Otherwise every packet passes and is routed
/// to the replicas. Unlike a replica it does not trust its maps while the store is silent:
/// the replicas are there to fall back on.
public struct ForwarderSync: Sendable {
    public let maxLagNs: UInt64
    public let heartbeatPeriodNs: UInt64
    /// A list is in the maps (none since the watch was compacted away).
    public private(set) var listed = false
    /// The watch broke and watches again from where it was; until one of our heartbeats
    /// comes back through it, what it missed meanwhile may not be in the maps.
    public private(set) var resuming = false
    /// The newest store revision the maps reflect.
    public private(set) var revision: Int64 = 0
    public private(set) var heartbeats = HeartbeatTrail()
    /// Monotonic ns of the last proof the watch is current (a list, our heartbeat seen).
    public private(set) var confirmedNs: UInt64 = 0

    public init(maxLagMilliseconds: UInt32, heartbeatPeriodNs: UInt64 = 250_000_000) {
        maxLagNs = UInt64(maxLagMilliseconds) * 1_000_000
        self.heartbeatPeriodNs = heartbeatPeriodNs
    }

    /// Every binding at `revision` is in the maps.
    public mutating func listed(revision: Int64, nowNs: UInt64) {
        listed = true
        resuming = false
        self.revision = revision
        confirmedNs = nowNs
        heartbeats.listed()
    }

    /// The watch cannot go on from where it was (compacted): nothing is known until the next list.
    public mutating func syncLost() { listed = false }

    /// The watch broke and goes on from the next revision (on another member).
    public mutating func watchBroken() { resuming = true }

    /// A watch batch at `revision`; `ownHeartbeat`: the newest of ours in it.
    public mutating func changes(revision: Int64, ownHeartbeat: Int64?, nowNs: UInt64) {
        self.revision = max(self.revision, revision)
        guard let mine = ownHeartbeat else { return }
        heartbeats.delivered(mine)
        resuming = false
        confirmedNs = nowNs
    }

    public mutating func heartbeatAcknowledged(carried: Int64, atWallNs: Int64) {
        heartbeats.acknowledged(carried: carried, atWallNs: atWallNs)
    }

    /// The watch's lag, ms (HeartbeatTrail).
    public func lagMilliseconds(wallNs: Int64) -> Double { heartbeats.lagMilliseconds(nowWallNs: wallNs) }

    /// Nil while the maps may be used; else why not.
    public func notSyncedReason(nowNs: UInt64, wallNs: Int64) -> String? {
        if !listed { return confirmedNs == 0 ? "first list not done" : "watch compacted away, listing again" }
        if resuming { return "watch broken, watching again" }
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
