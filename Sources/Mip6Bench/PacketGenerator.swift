import DataPlane
import Mip6TestSupport
import CMip6
import CMip6Bench
import ControlPlane
import Foundation
import Glibc

/// A pktgen-style load for the home agent (this kernel has no pktgen): BPF_PROG_RUN with
/// live frames runs `mip6_gen`, which restores a template's headers and redirects every
/// frame out of an interface towards the home agent; `mip6_gen_sink`, attached where the
/// home agent sends its output back, counts the frames that come back tunneled.
public struct PacketGenerator {
    public struct Result: Codable, Sendable {
        public var frameBytes: Int
        public var packets: UInt32
        public var seconds: Double
        public var offeredMpps: Double
        public var receivedFrames: UInt64
        public var receivedTunneled: UInt64
        public var receivedMpps: Double
        public var tunneledMpps: Double
    }

    public var interface: String
    public var sinkInterface: String
    public var destinationMAC: [UInt8]
    public var source: IPv6Address
    public var destination: IPv6Address
    public var frameBytes: Int
    public var packets: UInt32

    public init(interface: String, sinkInterface: String, destinationMAC: [UInt8], source: IPv6Address,
                destination: IPv6Address, frameBytes: Int, packets: UInt32) {
        self.interface = interface
        self.sinkInterface = sinkInterface
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.frameBytes = frameBytes
        self.packets = packets
    }

    /// Ethernet + IPv6 + UDP to `destination`, padded to `frameBytes`.
    public static func template(dstMAC: [UInt8], srcMAC: [UInt8], source: IPv6Address, destination: IPv6Address,
                                frameBytes: Int) -> [UInt8] {
        let payload = max(frameBytes - 14 - 40 - 8, 0)
        var udp: [UInt8] = [0x30, 0x39, 0x13, 0x89, UInt8((8 + payload) >> 8), UInt8((8 + payload) & 0xff), 0, 0]
        udp += [UInt8](repeating: 0x5a, count: payload)
        let c = InternetChecksum.upperLayer(source: source, destination: destination, nextHeader: 17, payload: udp)
        (udp[6], udp[7]) = (UInt8(c >> 8), UInt8(c & 0xff))
        return PacketFixtures.ethernet(dst: dstMAC, src: srcMAC,
                                       PacketFixtures.ipv6Header(src: source, dst: destination, nextHeader: 17,
                                                                 payloadLength: udp.count, hopLimit: 64) + udp)
    }

    public func run() throws -> Result {
        let out = try NetworkInterface(named: interface)
        let sinkIf = try NetworkInterface(named: sinkInterface)
        let frame = Self.template(dstMAC: destinationMAC, srcMAC: out.mac, source: source, destination: destination,
                                  frameBytes: frameBytes)
        let object = try BPFObject(.bench)
        try object.setBindingCapacity(16)
        try object.load()
        let cfgMap = try BPFMap<UInt32, mip6_gen_cfg>(object.map(MIP6_MAP_GEN_CFG))
        let counts = try BPFMap<UInt32, UInt64>(object.map(MIP6_MAP_GEN_COUNT))
        var cfg: mip6_gen_cfg = zeroed()
        cfg.ifindex = out.index
        withUnsafeMutableBytes(of: &cfg.head) { raw in
            for i in 0..<min(raw.count, frame.count) { raw[i] = frame[i] }
        }
        try cfgMap.update(0, cfg)
        let sink = try XDPLink(program: object.program("mip6_gen_sink"), ifindex: sinkIf.index, mode: .native)
        defer { _ = sink }
        func total(_ i: UInt32) throws -> UInt64 { try (counts.lookupPerCPU(i) ?? []).reduce(0, &+) }

        let gen = try object.program("mip6_gen")
        let t0 = monotonicNanoseconds()
        _ = try gen.runLiveFrames(frame, repeat: packets, ingressIfindex: out.index)
        let t1 = monotonicNanoseconds()
        usleep(200_000) // let the last frames come back
        let seconds = Double(t1 - t0) / 1e9
        let frames = try total(0), tunneled = try total(1)
        return Result(frameBytes: frame.count, packets: packets, seconds: seconds,
                      offeredMpps: Double(packets) / seconds / 1e6, receivedFrames: frames, receivedTunneled: tunneled,
                      receivedMpps: Double(frames) / seconds / 1e6, tunneledMpps: Double(tunneled) / seconds / 1e6)
    }
}
