import ControlPlane
import Foundation
import Testing
@testable import Mip6Store

/// The binding store against a real 3-member etcd (Debian's etcd-server; scripts/install-deps
/// installs it, and CI runs these).
@Suite("etcd binding store", .serialized, .enabled(if: EtcdCluster.available, "needs /usr/bin/etcd: run scripts/install-deps"))
struct EtcdBindingStoreTests {
    nonisolated(unsafe) static let cluster: Result<EtcdCluster, Error> = Result { try EtcdCluster() }
    static let clocks = BindingRecord.Clocks(monotonicNs: 1_000_000_000_000, wallNs: 1_800_000_000_000_000_000)

    func store(_ name: String, _ api: EtcdClient.API) throws -> EtcdBindingStore {
        let client = EtcdClient(endpoints: try Self.cluster.get().clientURLs, api: api)
        #expect(client.api == api)
        return EtcdBindingStore(client: client, prefix: "/mip6test/\(name)-\(api)")
    }

    func record(_ coa: String, seq: UInt16, writer: String = "ha1") -> BindingRecord {
        let b = Binding(homeAddress: IPv6Address("2001:db8:1::100")!, careOfAddress: IPv6Address(coa)!, sequence: seq,
                        flags: [.ack, .home], lifetime: 600, registeredAt: Self.clocks.monotonicNs)
        return BindingRecord(b, clocks: Self.clocks, authTimestamp: nil, writer: writer)
    }

    @Test func gatewayPrefixEnd() {
        #expect(Wire.prefixEnd(Array("a/b/".utf8)) == Array("a/b0".utf8))
        #expect(Wire.prefixEnd([0x61, 0xff]) == [0x62])
    }

    @Test func storeURLParsing() throws {
        #expect(try EtcdClient.endpoints(fromStore: "etcd+http://127.0.0.1:2379,10.0.0.2:2379")
                == ["http://127.0.0.1:2379", "http://10.0.0.2:2379"])
        #expect(throws: EtcdError.self) { try EtcdClient.endpoints(fromStore: "http://127.0.0.1:2379") }
        #expect(throws: EtcdError.self) { try EtcdClient.endpoints(fromStore: "etcd+http://nohost") }
    }

    @Test func recordRoundTripsThroughWallClock() throws {
        let hoa = IPv6Address("2001:db8:1::100")!
        let r = record("2001:db8:f1::100", seq: 7)
        let b = try r.binding(homeAddress: hoa, clocks: Self.clocks)
        #expect(b.expiresAt - b.registeredAt == 600_000_000_000 && b.registeredAt == Self.clocks.monotonicNs)
        // Another host, booted at another time: the same wall times, its own monotonic ones.
        let other = BindingRecord.Clocks(monotonicNs: 5_000_000_000, wallNs: Self.clocks.wallNs + 2_000_000_000)
        let there = try r.binding(homeAddress: hoa, clocks: other)
        #expect(there.registeredAt == 3_000_000_000 && there.expiresAt == 603_000_000_000)
    }

    @Test("compare-and-swap: a stale revision writes nothing and returns what is there; two writers never both win", arguments: EtcdClient.API.allCases)
    func compareAndSwap(api: EtcdClient.API) async throws {
        let s = try store("cas", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        let hoa = IPv6Address("2001:db8:1::100")!
        let first = try await s.commit([.put(hoa, record("2001:db8:f1::100", seq: 1), expected: nil)], nowWallNs: Self.clocks.wallNs)
        #expect(first.succeeded)
        // A second "create" (another replica that has not seen it yet) fails and learns the value.
        let racing = try await s.commit([.put(hoa, record("2001:db8:f2::100", seq: 1, writer: "ha2"), expected: nil)],
                                        nowWallNs: Self.clocks.wallNs)
        #expect(!racing.succeeded)
        let seen = try #require(racing.current[hoa] ?? nil)
        #expect(seen.record.coa == IPv6Address("2001:db8:f1::100") && seen.record.writer == "ha1")
        // With the revision it learned, the next write goes through.
        let next = try await s.commit([.put(hoa, record("2001:db8:f2::100", seq: 2, writer: "ha2"), expected: seen.modRevision)],
                                      nowWallNs: Self.clocks.wallNs)
        #expect(next.succeeded)
        // The stale revision again: refused, nothing changed.
        let stale = try await s.commit([.put(hoa, record("2001:db8:f3::100", seq: 3), expected: seen.modRevision)],
                                       nowWallNs: Self.clocks.wallNs)
        #expect(!stale.succeeded)
        let listed = try await s.list()
        #expect(listed.bindings.map(\.record.coa) == [IPv6Address("2001:db8:f2::100")!])
    }

    @Test("a full batch is one transaction: all or nothing", arguments: EtcdClient.API.allCases)
    func batchIsAtomic(api: EtcdClient.API) async throws {
        let s = try store("batch", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        let hoas = (1...EtcdBindingStore.maxBatch).map { IPv6Address("2001:db8:1::\(String($0, radix: 16))")! }
        let r = try await s.commit(hoas.map { .put($0, record("2001:db8:f1::100", seq: 1), expected: nil) }, nowWallNs: Self.clocks.wallNs)
        #expect(r.succeeded)
        var (listed, _) = try await s.list(pageSize: 10) // paged: 7 requests
        #expect(Set(listed.map(\.homeAddress)) == Set(hoas))
        // One stale key in a batch: nothing of the batch is written.
        var writes: [BindingWrite] = listed.map { .put($0.homeAddress, record("2001:db8:f2::100", seq: 2), expected: $0.modRevision) }
        writes[10] = .put(listed[10].homeAddress, record("2001:db8:f2::100", seq: 2), expected: listed[10].modRevision - 1)
        let mixed = try await s.commit(writes, nowWallNs: Self.clocks.wallNs)
        #expect(!mixed.succeeded && mixed.current.count == EtcdBindingStore.maxBatch)
        (listed, _) = try await s.list()
        #expect(listed.allSatisfy { $0.record.coa == IPv6Address("2001:db8:f1::100") })
    }

    @Test("a value that is not a binding is skipped and counted: listing and watching go on", arguments: EtcdClient.API.allCases)
    func invalidValuesAreSkipped(api: EtcdClient.API) async throws {
        let s = try store("invalid", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        let good = IPv6Address("2001:db8:1::300")!
        _ = try await s.commit([.put(good, record("2001:db8:f1::100", seq: 1), expected: nil)], nowWallNs: Self.clocks.wallNs)
        _ = try await s.client.put(s.prefix + "/b/2001:db8:1::301", Array("not a record".utf8))
        _ = try await s.client.put(s.prefix + "/b/not-an-address", record("2001:db8:f1::100", seq: 1).encoded)
        let (listed, revision) = try await s.list()
        #expect(listed.map(\.homeAddress) == [good] && s.invalidValues == 2)

        var changes = s.watch(from: revision + 1).makeAsyncIterator()
        _ = try await s.client.put(s.prefix + "/b/2001:db8:1::302", [9, 9, 9])
        let next = IPv6Address("2001:db8:1::303")!
        _ = try await s.commit([.put(next, record("2001:db8:f1::100", seq: 1), expected: nil)], nowWallNs: Self.clocks.wallNs)
        var upserts: [IPv6Address] = []
        while upserts.isEmpty, let c = try await changes.next() { upserts += c.upserts.map(\.homeAddress) }
        #expect(upserts == [next] && s.invalidValues == 3)
    }

    @Test("list then watch from revision + 1 sees every later change; a compacted revision says re-list", arguments: EtcdClient.API.allCases)
    func listAndWatch(api: EtcdClient.API) async throws {
        let s = try store("watch", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        let hoa = IPv6Address("2001:db8:1::200")!
        let (_, revision) = try await s.list()
        var changes = s.watch(from: revision + 1).makeAsyncIterator()
        _ = try await s.commit([.put(hoa, record("2001:db8:f1::100", seq: 1), expected: nil)], nowWallNs: Self.clocks.wallNs)
        try await s.heartbeat(replica: "ha1", wallNs: 42)
        var seen: [BindingChanges] = []
        while seen.flatMap(\.upserts).isEmpty || seen.allSatisfy({ $0.heartbeats.isEmpty }) {
            guard let c = try await changes.next() else { break }
            seen.append(c)
        }
        #expect(seen.flatMap(\.upserts).map(\.homeAddress) == [hoa])
        #expect(seen.compactMap { $0.heartbeats["ha1"] } == [42])
        let rev = try #require(seen.flatMap(\.upserts).first?.modRevision)
        _ = try await s.commit([.delete(hoa, expected: rev)], nowWallNs: Self.clocks.wallNs)
        var deleted: [IPv6Address] = []
        while deleted.isEmpty, let c = try await changes.next() { deleted += c.deletes }
        #expect(deleted == [hoa])

        // Compaction past the watch's start: the stream says so instead of skipping changes.
        let now = try await s.client.put(s.prefix + "/hb/x", Array("1".utf8))
        _ = try await s.client.post("/v3/kv/compaction", .object([("revision", .int64(now)), ("physical", .bool(true))]))
        var stale = s.watch(from: revision + 1).makeAsyncIterator()
        await #expect(throws: EtcdWatchCompacted.self) { while try await stale.next() != nil {} }
    }

    @Test("one member killed: writes go on through the others", arguments: EtcdClient.API.allCases)
    func memberDown(api: EtcdClient.API) async throws {
        let cluster = try Self.cluster.get()
        let s = try store("member", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        cluster.kill(0) // the first endpoint the client tries
        defer {
            try? cluster.start(0)
            try? cluster.waitHealthy()
        }
        // If the killed member led, the others elect a new leader first (up to two election
        // timeouts): a request meanwhile times out, and the replica retries, as here.
        let t0 = Date()
        let hoa = IPv6Address("2001:db8:1::300")!, mine = record("2001:db8:f1::100", seq: 1)
        var written = false, lastError: Error?
        while !written && Date().timeIntervalSince(t0) < 3 {
            do {
                let r = try await s.commit([.put(hoa, mine, expected: nil)], nowWallNs: Self.clocks.wallNs)
                // A timed-out attempt may have gone through after all: then the key holds ours.
                written = r.succeeded || (r.current[hoa] ?? nil)?.record == mine
            } catch {
                lastError = error
            }
        }
        #expect(written, "not written in \(Date().timeIntervalSince(t0)) s: \(String(describing: lastError))")
    }

    @Test("the watched member killed: the stream breaks (not compacted), the next watch goes to another member first and, from the revision reached, misses nothing", arguments: EtcdClient.API.allCases)
    func watchedMemberKilled(api: EtcdClient.API) async throws {
        let cluster = try Self.cluster.get()
        let s = try store("rewatch", api)
        _ = try await s.client.deletePrefix(s.prefix + "/")
        let (_, revision) = try await s.list() // member 0 answers: the watch goes there too
        #expect(s.client.ordered().first?.0 == 0)
        var changes = s.watch(from: revision + 1).makeAsyncIterator()
        try await s.heartbeat(replica: "ha1", wallNs: 1)
        var reached = revision
        while let c = try await changes.next() {
            reached = c.revision
            if c.heartbeats["ha1"] == 1 { break }
        }
        cluster.kill(0)
        defer {
            try? cluster.start(0)
            try? cluster.waitHealthy()
        }
        var broke: Error?
        do { while try await changes.next() != nil {} } catch { broke = error }
        #expect(broke != nil && !(broke is EtcdWatchCompacted), "the stream ended without an error: \(String(describing: broke))")
        #expect(s.client.ordered().first?.0 != 0, "the dead member is still asked first")

        // Written while no watch runs (after an election if member 0 led): the resumed watch
        // delivers it.
        let hoa = IPv6Address("2001:db8:1::400")!
        let t0 = Date()
        var written = false
        while !written && Date().timeIntervalSince(t0) < 3 {
            written = (try? await s.commit([.put(hoa, record("2001:db8:f1::100", seq: 1), expected: nil)], nowWallNs: Self.clocks.wallNs)) != nil
        }
        #expect(written)
        var resumed = s.watch(from: reached + 1).makeAsyncIterator()
        var upserts: [IPv6Address] = []
        while upserts.isEmpty, let c = try await resumed.next() { upserts += c.upserts.map(\.homeAddress) }
        #expect(upserts == [hoa])
    }

    @Test("gRPC: 1000 calls on one HTTP/2 connection, though etcd sends a PING with nearly every reply (swift-nio-http2's default limit of 200 a window closed it)")
    func manyCallsOneConnection() async throws {
        let s = try store("pings", .grpc)
        for i in 0..<1000 { _ = try await s.client.put(s.prefix + "/k", Array("\(i)".utf8)) }
        #expect(s.client.grpc.map(\.connects).reduce(0, +) == 1)
    }

    @Test("gRPC: calls to a frozen member time out on time, also once its flow-control window is spent (a write then waits for good)")
    func frozenMemberTimesOut() async throws {
        let cluster = try Self.cluster.get()
        let client = EtcdClient(endpoints: [cluster.clientURLs[0]], api: .grpc, timeout: .milliseconds(500))
        _ = try await client.put("/mip6test/frozen/warm", [1]) // the connection is open
        cluster.freeze(0)
        defer {
            cluster.thaw(0)
            try? cluster.waitHealthy()
        }
        // 12 of them: more than the member's HTTP/2 flow-control window (grpc-go's 64 KiB), less
        // than the sockets buffer, so the writes wait in swift-nio-http2 for a window update.
        let value = [UInt8](repeating: 7, count: 25_000)
        let t0 = Date()
        // Unstructured, and counted as they end: a call that hangs must fail the test, not hang it.
        let ended = EndedCalls()
        for i in 0..<12 {
            Task { await ended.note(failed: (try? await client.put("/mip6test/frozen/\(i)", value)) == nil) }
        }
        while await ended.count < 12 && Date().timeIntervalSince(t0) < 5 { try await Task.sleep(nanoseconds: 20_000_000) }
        let (count, failed) = (await ended.count, await ended.failed)
        #expect(count == 12, "\(12 - count) calls unanswered after 5 s")
        #expect(failed == 12)
        #expect(Date().timeIntervalSince(t0) < 2, "took \(Date().timeIntervalSince(t0)) s")
    }
}

/// Calls that ended, and how many of them failed.
actor EndedCalls {
    private(set) var count = 0
    private(set) var failed = 0
    func note(failed f: Bool) {
        count += 1
        if f { failed += 1 }
    }
}
