import DataPlane
import Mip6TestSupport

extension EmbeddedBPF {
    /// The benchmark programs (perf/bpf/mip6_bench.bpf.c): the home-agent body wrapped for
    /// repeated test runs, the XDP_PASS / XDP_TX baselines and the live-frames generator.
    static var bench: EmbeddedBPF { mip6_bench }
}
