import Foundation
import Testing
@testable import ControlPlane

@Suite("Binding cache")
struct BindingCacheTests {
    static let second: UInt64 = 1_000_000_000

    func home(_ n: Int) -> IPv6Address {
        IPv6Address(high: 0x2001_0db8_0001_0000, low: UInt64(n))
    }

    func binding(_ n: Int, coa c: IPv6Address = coa, seq: UInt16 = 1, at t: UInt64 = 0, lifetime: UInt32) -> Binding {
        Binding(homeAddress: home(n), careOfAddress: c, sequence: seq, flags: .home, lifetime: lifetime, registeredAt: t)
    }

    @Test func bindingRemaining() {
        let b = binding(1, at: 10 * Self.second, lifetime: 60)
        #expect(b.expiresAt == 70 * Self.second)
        #expect(b.remaining(at: 10 * Self.second) == 60)
        #expect(b.remaining(at: 10 * Self.second + 1) == 59)
        #expect(b.remaining(at: 70 * Self.second) == 0)
        #expect(b.remaining(at: 99 * Self.second) == 0)
    }

    @Test func bindingCodable() throws {
        let b = binding(0x100, lifetime: 3600)
        let json = try JSONEncoder().encode(b)
        #expect(String(decoding: json, as: UTF8.self).contains(#""homeAddress":"2001:db8:1::100""#))
        #expect(try JSONDecoder().decode(Binding.self, from: json) == b)
    }

    @Test func upsertLookupRemoveWritesThrough() throws {
        let dp = MockDataPlane()
        let cache = BindingCache(capacity: 10, dataPlane: dp)
        try cache.upsert(binding(2, lifetime: 10))
        try cache.upsert(binding(1, lifetime: 20))
        #expect(cache.count == 2)
        #expect(cache[home(1)]?.lifetime == 20)
        #expect(cache[home(3)] == nil)
        #expect(cache.all.map(\.homeAddress) == [home(1), home(2)])
        #expect(dp.installed.count == 2)

        let moved = binding(1, coa: addr("2001:db8:eeee::9"), seq: 2, lifetime: 20)
        try cache.upsert(moved)
        #expect(cache[home(1)] == moved && dp.installed[home(1)] == moved)
        #expect(cache.count == 2)

        #expect(try cache.remove(home(1)) == moved)
        #expect(dp.installed[home(1)] == nil)
        #expect(try cache.remove(home(1)) == nil)
        #expect(cache.count == 1)
    }

    @Test func capacity() throws {
        let cache = BindingCache(capacity: 2, dataPlane: MockDataPlane())
        try cache.upsert(binding(1, lifetime: 10))
        try cache.upsert(binding(2, lifetime: 10))
        #expect(cache.isFull)
        #expect(throws: BindingCacheError.self) { try cache.upsert(binding(3, lifetime: 10)) }
        // Replacing an existing binding is still allowed when full.
        try cache.upsert(binding(2, seq: 2, lifetime: 30))
        #expect(cache[home(2)]?.sequence == 2)
        try cache.remove(home(1))
        try cache.upsert(binding(3, lifetime: 10))
        #expect(cache.count == 2)
    }

    @Test func failingDataPlaneRollsBack() throws {
        let dp = MockDataPlane()
        let cache = BindingCache(capacity: 10, dataPlane: dp)
        let original = binding(1, lifetime: 10)
        try cache.upsert(original)

        dp.failInstalls = true
        #expect(throws: DataPlaneFailure.self) { try cache.upsert(binding(2, lifetime: 10)) }
        #expect(cache[home(2)] == nil && cache.count == 1)
        #expect(throws: DataPlaneFailure.self) { try cache.upsert(binding(1, seq: 9, lifetime: 99)) }
        #expect(cache[home(1)] == original)
        #expect(cache.nextExpiry == original.expiresAt)

        dp.failRemoves = true
        #expect(throws: DataPlaneFailure.self) { try cache.remove(home(1)) }
        #expect(cache[home(1)] == original)
    }

    @Test func expiryOrderAndNextExpiry() throws {
        let cache = BindingCache(capacity: 100, dataPlane: MockDataPlane())
        #expect(cache.nextExpiry == nil)
        for (n, lifetime) in [(1, 40), (2, 10), (3, 30), (4, 20), (5, 20)] {
            try cache.upsert(binding(n, lifetime: UInt32(lifetime)))
        }
        #expect(cache.nextExpiry == 10 * Self.second)
        #expect(try cache.expire(now: 10 * Self.second - 1).isEmpty)
        #expect(try cache.expire(now: 10 * Self.second).map(\.homeAddress) == [home(2)])
        #expect(cache.nextExpiry == 20 * Self.second)
        // Refreshing 4 pushes it behind 3; the stale heap entry is skipped.
        try cache.upsert(binding(4, seq: 2, at: 15 * Self.second, lifetime: 20))
        #expect(try cache.expire(now: 30 * Self.second).map(\.homeAddress) == [home(5), home(3)])
        #expect(cache.nextExpiry == 35 * Self.second)
        // Removing one drops it from the expiry order.
        try cache.remove(home(4))
        #expect(cache.nextExpiry == 40 * Self.second)
        #expect(try cache.expire(now: 1000 * Self.second).map(\.homeAddress) == [home(1)])
        #expect(cache.count == 0 && cache.nextExpiry == nil)
    }

    @Test func expiryInterruptedByDataPlane() throws {
        let dp = MockDataPlane()
        let cache = BindingCache(capacity: 100, dataPlane: dp)
        for n in 1...3 { try cache.upsert(binding(n, lifetime: UInt32(n * 10))) }
        dp.failRemoveOf = home(2)
        do {
            _ = try cache.expire(now: 100 * Self.second)
            Issue.record("expected an error")
        } catch BindingCacheError.expiryInterrupted(let expired, let underlying) {
            #expect(expired.map(\.homeAddress) == [home(1)])
            #expect(underlying is DataPlaneFailure)
        }
        #expect(cache[home(2)] != nil && cache[home(3)] != nil)
        #expect(cache.nextExpiry == 20 * Self.second)
        dp.failRemoveOf = nil
        #expect(try cache.expire(now: 100 * Self.second).map(\.homeAddress) == [home(2), home(3)])
    }

    @Test func restoreAdoptsWithoutWritingThrough() throws {
        let dp = MockDataPlane()
        let cache = BindingCache(capacity: 10, dataPlane: dp)
        try cache.upsert(binding(9, lifetime: 5))
        cache.restore([binding(1, lifetime: 50), binding(2, lifetime: 20)])
        #expect(dp.installCalls == 1)
        #expect(cache.count == 2 && cache[home(9)] == nil)
        #expect(cache.nextExpiry == 20 * Self.second)
        #expect(try cache.expire(now: 20 * Self.second).map(\.homeAddress) == [home(2)])
    }

    @Test func heapStaysBoundedUnderRefreshes() throws {
        let cache = BindingCache(capacity: 10, dataPlane: MockDataPlane())
        for n in 1...10 { try cache.upsert(binding(n, lifetime: 100)) }
        for round in 1...2000 {
            let n = round % 10 + 1
            try cache.upsert(binding(n, seq: UInt16(round), at: UInt64(round) * Self.second, lifetime: 100))
        }
        #expect(try cache.expire(now: 2050 * Self.second).isEmpty)
        let last = try cache.expire(now: 3000 * Self.second)
        #expect(last.count == 10)
        #expect(last.map(\.expiresAt) == last.map(\.expiresAt).sorted())
    }

    @Test func hundredThousandBindingsStayFast() throws {
        let dp = NullDataPlane()
        let n = 100_000
        let cache = BindingCache(capacity: 1_000_000, dataPlane: dp)
        let start = ContinuousClock.now
        for i in 0..<n {
            // Expiry order differs from insertion order.
            let lifetime = UInt32((i &* 7919) % 10_000 + 1)
            try cache.upsert(Binding(homeAddress: home(i), careOfAddress: coa, sequence: 1, flags: .home,
                                     lifetime: lifetime, registeredAt: 0))
        }
        let inserted = ContinuousClock.now
        #expect(cache.count == n)
        #expect(cache.nextExpiry == 1 * Self.second)
        // Expire about 1% at a time: each call only touches what is due.
        var total = 0
        var previous: UInt64 = 0
        for step in 1...100 {
            let now = UInt64(step) * 100 * Self.second
            let expired = try cache.expire(now: now)
            #expect(expired.allSatisfy { $0.expiresAt <= now && $0.expiresAt >= previous })
            previous = expired.last?.expiresAt ?? previous
            total += expired.count
        }
        let done = ContinuousClock.now
        #expect(total == n && cache.count == 0)
        // Debug build on a small machine: generous bounds that a full scan per expire() would miss.
        #expect(inserted - start < .seconds(10), "insert took \(inserted - start)")
        #expect(done - inserted < .seconds(10), "expire took \(done - inserted)")
    }
}

final class NullDataPlane: BindingDataPlane {
    func install(_ binding: Binding) throws {}
    func remove(homeAddress: IPv6Address) throws {}
}
