import Testing
import Mip6Daemon

/// When a forwarder may forward from its maps: never before the first list, never after a
/// broken watch until it is proved current again, never while its heartbeats do not come
/// back in time.
@Suite("Forwarder sync (pure)")
struct ForwarderSyncTests {
    static let ms: UInt64 = 1_000_000

    @Test("not synced before the first list; synced right after it")
    func firstList() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        #expect(s.notSyncedReason(nowNs: 5 * Self.ms, wallNs: 0) == "first list not done")
        s.listed(revision: 10, nowNs: 10 * Self.ms)
        #expect(s.synced(nowNs: 11 * Self.ms, wallNs: 0))
        #expect(s.revision == 10)
    }

    @Test("a broken watch, resumed from its revision: not synced until one of our heartbeats comes back through it")
    func brokenWatch() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 10, nowNs: 10 * Self.ms)
        s.watchBroken()
        #expect(s.notSyncedReason(nowNs: 11 * Self.ms, wallNs: 0) == "watch broken, watching again")
        s.changes(revision: 12, ownHeartbeat: nil, nowNs: 12 * Self.ms) // someone else's change: not proof enough
        #expect(!s.synced(nowNs: 12 * Self.ms, wallNs: 0))
        s.changes(revision: 13, ownHeartbeat: 5, nowNs: 13 * Self.ms)
        #expect(s.synced(nowNs: 14 * Self.ms, wallNs: 0))
        #expect(s.revision == 13)
    }

    @Test("a watch compacted away stops forwarding until the next list")
    func compactedWatch() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 10, nowNs: 10 * Self.ms)
        s.syncLost()
        #expect(s.notSyncedReason(nowNs: 11 * Self.ms, wallNs: 0) == "watch compacted away, listing again")
        s.changes(revision: 12, ownHeartbeat: 5, nowNs: 12 * Self.ms)
        #expect(!s.synced(nowNs: 12 * Self.ms, wallNs: 0))
        s.listed(revision: 20, nowNs: 13 * Self.ms)
        #expect(s.synced(nowNs: 14 * Self.ms, wallNs: 0))
    }

    @Test("own heartbeats: lag is how long ago the store acknowledged the oldest undelivered one; over --max-lag, not synced")
    func lag() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 1, nowNs: 0)
        s.heartbeatAcknowledged(carried: 1_000 * Int64(Self.ms), atWallNs: 1_010 * Int64(Self.ms))
        s.heartbeatAcknowledged(carried: 1_250 * Int64(Self.ms), atWallNs: 1_260 * Int64(Self.ms))
        #expect(s.lagMilliseconds(wallNs: 1_510 * Int64(Self.ms)) == 500)
        s.changes(revision: 5, ownHeartbeat: 1_000 * Int64(Self.ms), nowNs: 1_000 * Self.ms)
        #expect(s.lagMilliseconds(wallNs: 1_510 * Int64(Self.ms)) == 250)
        #expect(s.synced(nowNs: 1_500 * Self.ms, wallNs: 1_510 * Int64(Self.ms)))
        // The watch stops delivering while the store takes writes.
        #expect(!s.synced(nowNs: 2_100 * Self.ms, wallNs: 2_300 * Int64(Self.ms)))
    }

    @Test("a silent store (no heartbeat written, none seen): not synced after --max-lag plus a period")
    func silentStore() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 1, nowNs: 1_000 * Self.ms)
        #expect(s.synced(nowNs: 2_200 * Self.ms, wallNs: 0))
        #expect(s.notSyncedReason(nowNs: 2_300 * Self.ms, wallNs: 0)?.hasPrefix("no heartbeat back") == true)
        s.changes(revision: 2, ownHeartbeat: 7, nowNs: 2_400 * Self.ms)
        #expect(s.synced(nowNs: 2_500 * Self.ms, wallNs: 0))
    }
}

/// The watch's lag as a replica and a forwarder measure it from their own heartbeats.
@Suite("Heartbeat trail (pure)")
struct HeartbeatTrailTests {
    static let ms: Int64 = 1_000_000

    @Test("a heartbeat that waited out an election is no lag: counted from its acknowledgement")
    func fromAcknowledgement() {
        var t = HeartbeatTrail()
        // Sent at 0, taken by the new leader 1.2 s later, delivered 5 ms after that.
        t.acknowledged(carried: 0, atWallNs: 1_200 * Self.ms)
        #expect(t.lagMilliseconds(nowWallNs: 1_205 * Self.ms) == 5)
        t.delivered(0)
        #expect(t.lagMilliseconds(nowWallNs: 1_206 * Self.ms) == 0)
    }

    @Test("delivered before its acknowledgement came back: not waited for")
    func deliveredFirst() {
        var t = HeartbeatTrail()
        t.delivered(250 * Self.ms)
        t.acknowledged(carried: 250 * Self.ms, atWallNs: 260 * Self.ms)
        #expect(t.pending.isEmpty)
        #expect(t.lagMilliseconds(nowWallNs: 900 * Self.ms) == 0)
        t.acknowledged(carried: 500 * Self.ms, atWallNs: 510 * Self.ms)
        #expect(t.lagMilliseconds(nowWallNs: 900 * Self.ms) == 390)
    }

    @Test("a list forgets what the watch will never deliver; the count is bounded")
    func listedAndBounded() {
        var t = HeartbeatTrail()
        for i in 0..<1000 { t.acknowledged(carried: Int64(i), atWallNs: Int64(i)) }
        #expect(t.pending.count == 256)
        t.listed()
        #expect(t.lagMilliseconds(nowWallNs: 10_000 * Self.ms) == 0)
    }
}
