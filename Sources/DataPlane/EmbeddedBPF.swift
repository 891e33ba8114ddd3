import Foundation

/// A BPF object compiled from `bpf/NAME.bpf.c` (or `perf/bpf/` for the benchmarks) at build time and carried in the binary
/// (the BPFBuilder plugin generates one `static let` per object in an extension).
public struct EmbeddedBPF: Sendable {
    public let name: String
    let base64: String

    /// The generated files call this, in DataPlane and in the benchmark target.
    package init(name: String, base64: String) {
        self.name = name
        self.base64 = base64
    }

    /// The ELF object bytes.
    public var bytes: [UInt8] {
        // The plugin wrote it; a decode failure means a corrupted build, not bad input.
        guard let data = Data(base64Encoded: base64) else { fatalError("embedded BPF object \(name) is corrupt") }
        return [UInt8](data)
    }

    /// The home-agent XDP program (bpf/mip6_ha.bpf.c).
    public static var homeAgent: EmbeddedBPF { mip6_ha }
    /// The mobile node's TC programs (bpf/mip6_mn.bpf.c).
    public static var mobileNode: EmbeddedBPF { mip6_mn }
    /// The local mobility anchor's XDP and TC programs (bpf/mip6_lma.bpf.c).
    public static var localMobilityAnchor: EmbeddedBPF { mip6_lma }
    /// The mobile access gateway's TC programs, access links and core (bpf/mip6_mag.bpf.c).
    public static var mobileAccessGateway: EmbeddedBPF { mip6_mag }
}
