import DataPlane
import Mip6TestSupport
import CMip6
import ControlPlane
import Foundation
import Glibc
import Logging

/// The control plane under load, in process: Binding Updates for many distinct home
/// addresses go through HomeAgentCore (parse, checks, cache, a real BPF map update per
/// binding, BA built) as fast as one core takes them. Reports BU/s, per-BU latency
/// (BU handed over -> map updated -> BA ready), memory per binding (process RSS and the
/// kernel's map memory), and RSS over a long stream of refreshes (must stay flat).
public struct SignalingBenchmark {
    public struct Result: Codable, Sendable {
        public var bindings: Int
        /// BUs per map-update batch (1: one bpf_map_update_elem per BU, as without batching).
        public var batch: Int = 1
        public var busPerSecond: Double
        public var p50Microseconds: Double
        public var p99Microseconds: Double
        public var rssBytesPerBinding: Double
        public var mapBytesPerBinding: Double
        public var refreshStreamRSSMiB: [Double]
    }

    public var bindings: Int
    public var refreshRounds: Int
    /// As the daemon does per ring drain: stage the map writes of `batch` BUs, then one
    /// bpf_map_update_batch. A BU's latency is then until its batch is written.
    public var batch: Int

    public init(bindings: Int, refreshRounds: Int = 5, batch: Int = 1) {
        self.bindings = bindings
        self.refreshRounds = refreshRounds
        self.batch = max(1, batch)
    }

    static let prefixHi: UInt64 = 0x2001_0db8_0001_0000 // 2001:db8:1::/64, the home prefix

    static func hoa(_ i: Int) -> IPv6Address { IPv6Address(high: prefixHi, low: 0x1000_0000 + UInt64(i)) }
    static func coa(_ i: Int) -> IPv6Address { IPv6Address(high: 0x2001_0db8_00f1_0000 + UInt64(i >> 16), low: UInt64(i & 0xffff) + 1) }

    static func rssBytes() -> Double {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The kernel's own accounting of a map (fdinfo "memlock").
    static func mapBytes(fd: Int32) -> Double {
        let info = (try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("memlock:") }
        return line.flatMap { Double($0.dropFirst("memlock:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    public func run() throws -> Result {
        let object = try BPFObject(.homeAgent)
        try object.setBindingCapacity(UInt32(bindings))
        try object.load()
        let maps = try HomeAgentMaps(object: object)
        let ha = PacketFixtures.homeAgent
        let table = BPFBindingTable(maps: maps, homeLinkIfindex: 1)
        table.deferring = batch > 1
        let cache = BindingCache(capacity: bindings, dataPlane: table)
        let core = HomeAgentCore(
            configuration: HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: PacketFixtures.homePrefix, maxLifetime: 3600,
                                                  capacity: bindings, duplicateAddressDetection: false),
            cache: cache, clock: SystemMonotonicClock(), logger: Logger(label: "mip6.bench", factory: { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = .error // a refused map update is worth seeing; nothing else is
                return h
            }))
        let local: Set<IPv6Address> = [ha]
        let mapsBefore = Self.mapBytes(fd: maps.bindings.handle.fd) + Self.mapBytes(fd: maps.bindingStats.handle.fd)
            + Self.mapBytes(fd: maps.slotNextHops.handle.fd)

        func bu(_ i: Int, seq: UInt16) -> [UInt8] {
            PacketBuilder.bindingUpdate(BindingUpdate(sequence: seq, flags: [.ack, .home], lifetime: 900),
                                        careOf: Self.coa(i), homeAgent: ha, homeAddress: Self.hoa(i))
        }

        // Registrations, in batches so building packets stays out of the timing.
        let rss0 = Self.rssBytes()
        var latencies: [UInt32] = []
        latencies.reserveCapacity(bindings)
        var busy: UInt64 = 0
        var i = 0
        while i < bindings {
            let n = min(10_000, bindings - i)
            let batch = (i..<i + n).map { bu($0, seq: 1) }
            var k = 0
            while k < batch.count {
                let chunk = batch[k..<min(k + self.batch, batch.count)]
                let t0 = monotonicNanoseconds()
                var started: [UInt64] = []
                for p in chunk {
                    started.append(monotonicNanoseconds())
                    let actions = core.handlePacket(p, localAddresses: local)
                    guard case .bindingInstalled = actions.first(where: { if case .bindingInstalled = $0 { true } else { false } }) else {
                        throw SystemError("benchmark", errno: EINVAL, "BU for \(Self.hoa(cache.count)) was not accepted (\(cache.count) bindings so far)")
                    }
                }
                if let failed = table.flush().first { throw SystemError("benchmark", errno: EIO, "map write for \(failed.homeAddress): \(failed.error)") }
                let t1 = monotonicNanoseconds()
                busy += t1 - t0
                for t in started { latencies.append(UInt32(min(t1 - t, UInt64(UInt32.max)))) }
                k += chunk.count
            }
            i += n
        }
        let rss1 = Self.rssBytes()
        let mapsAfter = Self.mapBytes(fd: maps.bindings.handle.fd) + Self.mapBytes(fd: maps.bindingStats.handle.fd)
            + Self.mapBytes(fd: maps.slotNextHops.handle.fd)
        latencies.sort()
        guard cache.count == bindings else { throw SystemError("benchmark", errno: EINVAL, "\(cache.count) bindings cached") }

        // A long stream of refreshes over the same bindings: memory must not grow.
        var stream: [Double] = []
        let sample = min(bindings, 50_000)
        for round in 0..<refreshRounds {
            for j in 0..<sample {
                _ = core.handlePacket(bu(j, seq: UInt16(round + 2)), localAddresses: local)
                if j % self.batch == self.batch - 1 { _ = table.flush() }
            }
            _ = table.flush()
            stream.append(Self.rssBytes() / 1_048_576)
        }
        func pct(_ p: Double) -> Double { Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1000 }
        return Result(bindings: bindings, batch: batch, busPerSecond: Double(bindings) / (Double(busy) / 1e9),
                      p50Microseconds: pct(0.50), p99Microseconds: pct(0.99),
                      rssBytesPerBinding: (rss1 - rss0) / Double(bindings),
                      mapBytesPerBinding: (mapsAfter - mapsBefore) / Double(bindings),
                      refreshStreamRSSMiB: stream)
    }
}
