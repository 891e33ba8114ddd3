import Testing
import Mip6Daemon

/// When a forwarder may forward from its maps: never before the first list, never after a
/// broken watch until the next list, never while its heartbeats do not come back in time.
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

    @Test("a broken watch stops forwarding until the next list")
    func brokenWatch() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 10, nowNs: 10 * Self.ms)
        s.watchBroken()
        #expect(s.notSyncedReason(nowNs: 11 * Self.ms, wallNs: 0) == "watch broken, listing again")
        s.listed(revision: 20, nowNs: 12 * Self.ms)
        #expect(s.synced(nowNs: 13 * Self.ms, wallNs: 0))
    }

    @Test("own heartbeats: lag is the oldest undelivered one's age; over --max-lag, not synced")
    func lag() {
        var s = ForwarderSync(maxLagMilliseconds: 1000)
        s.listed(revision: 1, nowNs: 0)
        s.heartbeatWritten(wallNs: 1_000 * Int64(Self.ms))
        s.heartbeatWritten(wallNs: 1_250 * Int64(Self.ms))
        #expect(s.lagMilliseconds(wallNs: 1_500 * Int64(Self.ms)) == 500)
        s.changes(revision: 5, ownHeartbeat: 1_000 * Int64(Self.ms), nowNs: 1_000 * Self.ms)
        #expect(s.lagMilliseconds(wallNs: 1_500 * Int64(Self.ms)) == 250)
        #expect(s.synced(nowNs: 1_500 * Self.ms, wallNs: 1_500 * Int64(Self.ms)))
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
