/// A replica's or forwarder's own heartbeats on their way into the store and back out through
/// its watch (pure; loop thread). The watch's lag is how long ago the store acknowledged the
/// oldest heartbeat the watch has not delivered.
///
/// Counted from the acknowledgement, not from the send: a write that waited out a leader
/// election took a second because of the store, and its watch may be perfectly current.
/// Counting from the send made every replica look lagging for a moment after each election.
public struct HeartbeatTrail: Sendable, Equatable {
    public struct Pending: Sendable, Equatable {
        /// The value the heartbeat carried (wall ns it was sent).
        public var carried: Int64
        /// Wall ns the store's acknowledgement came back.
        public var acknowledgedWallNs: Int64
    }

    /// Acknowledged but not delivered by the watch yet, oldest first.
    public private(set) var pending: [Pending] = []
    /// The newest heartbeat the watch delivered: one delivered before its acknowledgement
    /// came back is not waited for.
    public private(set) var newestDelivered = Int64.min
    /// Heartbeats remembered at most (a watch that never delivers is stale long before).
    static let limit = 256

    public init() {}

    public mutating func acknowledged(carried: Int64, atWallNs: Int64) {
        guard carried > newestDelivered, pending.count < Self.limit else { return }
        pending.append(Pending(carried: carried, acknowledgedWallNs: atWallNs))
    }

    /// The watch delivered our heartbeat carrying `carried` (and so every older one).
    public mutating func delivered(_ carried: Int64) {
        newestDelivered = max(newestDelivered, carried)
        pending.removeAll { $0.carried <= carried }
    }

    /// A list: every heartbeat acknowledged before it is at or below its revision, and the
    /// watch from the next revision never delivers them.
    public mutating func listed() { pending.removeAll() }

    /// ms since the store acknowledged the oldest undelivered heartbeat; 0 when none is.
    public func lagMilliseconds(nowWallNs: Int64) -> Double {
        guard let oldest = pending.first else { return 0 }
        return max(0, Double(nowWallNs - oldest.acknowledgedWallNs) / 1e6)
    }
}
