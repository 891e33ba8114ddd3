import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// The LMA's control plane under load, in process (issue 13): Proxy Binding Updates for many
/// distinct mobile nodes go through LocalMobilityAnchorCore (parse, RFC 5213 §5.3.1 checks,
/// binding cache, one BPF map write per /64, PBA built) as fast as one core takes them; then
/// every node hands off to a second MAG. Reports PBU/s, per-PBU latency and memory per
/// binding (process RSS, the policy included; the kernel's map memory for a map sized to
/// the bindings).
public struct ProxySignalingBenchmark {
    public struct Result: Codable, Sendable {
        public var bindings: Int
        public var pbusPerSecond: Double
        public var p50Microseconds: Double
        public var p99Microseconds: Double
        /// The slowest PBU (a dictionary of a million entries growing under it shows here).
        public var maxMicroseconds: Double
        public var handoffsPerSecond: Double
        public var rssBytesPerBinding: Double
        public var mapBytesPerBinding: Double
    }

    public var bindings: Int
    public init(bindings: Int) { self.bindings = bindings }

    static let lma = IPv6Address("2001:db8:a::1")!
    static let mags = [IPv6Address("2001:db8:b1::2")!, IPv6Address("2001:db8:b2::2")!]
    static func prefix(_ i: Int) -> IPv6Prefix { IPv6Prefix(address: IPv6Address(high: 0x2001_0db8_0200_0000 + UInt64(i), low: 0), length: 64)! }
    static func nai(_ i: Int) -> String { "mn\(i)@pmip.example" }
    static func mac(_ i: Int) -> [UInt8] { [2, 0, UInt8(i >> 24 & 0xff), UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)] }

    public func run() throws -> Result {
        let object = try BPFObject(.localMobilityAnchor)
        try object.setProxyBindingCapacity(UInt32(bindings))
        try object.load()
        let maps = try LocalMobilityAnchorMaps(object: object)
        try maps.setConfig(lmaAddress: Self.lma, enabled: true)
        let rss0 = SignalingBenchmark.rssBytes()
        let policy = try ProxyPolicy(mobileNodes: (0..<bindings).map {
            ProxyPolicy.MobileNode(identifier: Self.nai($0), linkLayerAddresses: [Self.mac($0)], prefixes: [Self.prefix($0)])
        }, mags: Self.mags)
        let core = LocalMobilityAnchorCore(
            configuration: LocalMobilityAnchorConfiguration(address: Self.lma, capacity: bindings), policy: policy, dataPlane: maps,
            clock: SystemMonotonicClock(), logger: Logger(label: "mip6.bench", factory: { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = .error
                return h
            }))

        func pbu(_ i: Int, mag: IPv6Address, hi: UInt8) -> [UInt8] {
            PacketBuilder.proxyBindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .proxy], lifetime: 900, options: [
                .mobileNodeIdentifier(subtype: 1, identifier: Array(Self.nai(i).utf8)), .homeNetworkPrefix(Self.prefix(i)),
                .handoffIndicator(hi), .accessTechnologyType(3), .mobileNodeLinkLayerIdentifier(Self.mac(i)),
                .timestamp(ProxyTimestamp.now()),
            ]), from: mag, to: Self.lma)
        }
        /// One pass over every node from `mag`, built 1,000 at a time (building stays out of
        /// the timing; the Timestamps stay within the LMA's 300 ms window even when a
        /// dictionary of a million entries grows under a chunk).
        func pass(mag: IPv6Address, hi: UInt8, latencies: inout [UInt32]) throws -> UInt64 {
            var busy: UInt64 = 0
            var i = 0
            while i < bindings {
                let n = min(1_000, bindings - i)
                let packets = (i..<i + n).map { pbu($0, mag: mag, hi: hi) }
                for (k, p) in packets.enumerated() {
                    let t0 = monotonicNanoseconds()
                    let actions = core.handlePacket(p)
                    let t1 = monotonicNanoseconds()
                    busy += t1 - t0
                    latencies.append(UInt32(min(t1 - t0, UInt64(UInt32.max))))
                    guard case .installed = actions.first else {
                        throw SystemError("benchmark", errno: EINVAL, "PBU for \(Self.nai(i + k)) not accepted: \(actions)")
                    }
                }
                i += n
            }
            return busy
        }
        var latencies: [UInt32] = []
        latencies.reserveCapacity(bindings)
        let busy = try pass(mag: Self.mags[0], hi: MobilityOption.HandoffIndicator.unknown, latencies: &latencies)
        let rss1 = SignalingBenchmark.rssBytes()
        // Preallocated: the map holds its memory from the load, sized to `bindings`.
        let mapBytes = SignalingBenchmark.mapBytes(fd: maps.prefixes.handle.fd)
        guard core.count == bindings else { throw SystemError("benchmark", errno: EINVAL, "\(core.count) bindings cached") }
        var handoffLatencies: [UInt32] = []
        let handoffBusy = try pass(mag: Self.mags[1], hi: MobilityOption.HandoffIndicator.handoffBetweenMAGsSameInterface,
                                   latencies: &handoffLatencies)
        latencies.sort()
        func pct(_ p: Double) -> Double { Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1000 }
        return Result(bindings: bindings, pbusPerSecond: Double(bindings) / (Double(busy) / 1e9),
                      p50Microseconds: pct(0.50), p99Microseconds: pct(0.99), maxMicroseconds: Double(latencies.last ?? 0) / 1000,
                      handoffsPerSecond: Double(bindings) / (Double(handoffBusy) / 1e9),
                      rssBytesPerBinding: (rss1 - rss0) / Double(bindings),
                      mapBytesPerBinding: mapBytes / Double(bindings))
    }
}
