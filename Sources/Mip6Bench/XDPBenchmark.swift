import DataPlane
import Mip6TestSupport
import CMip6
import ControlPlane
import Foundation

/// Per-packet cost of the home-agent program with BPF_PROG_TEST_RUN, next to the bare
/// XDP_PASS and parse + XDP_TX bounce programs, all measured in the same run on the
/// same fixture frames the BPF tests use. The TC attach mode (`mip6_ha_tc`, the same body
/// on skbs) is measured beside it the same way, against the TC floor (TC_ACT_OK) and a
/// parse + redirect-back bounce (compare TC rows with the TC floors: the per-run overhead
/// of an skb test run is not that of an XDP one).
public struct XDPBenchmark {
    public struct Row: Codable, Sendable {
        public var name: String
        public var program: String
        public var frameBytes: Int
        public var verdict: String
        public var nsPerPacket: Double
        /// Each round's average, to show the spread.
        public var rounds: [Double]
    }

    public var repeatCount: UInt32
    public var rounds: Int
    /// Only the cases whose name contains this (for profiling one path with perf record).
    public var only: String?
    /// Set: the one-packet-per-call method instead (`calls` calls of repeat = 1 per round,
    /// the mean of the kernel's per-call durations; the program unwrapped).
    public var singleCalls: Int?

    public init(repeatCount: UInt32 = 1_000_000, rounds: Int = 5, only: String? = nil, singleCalls: Int? = nil) {
        self.repeatCount = repeatCount
        self.rounds = rounds
        self.only = only
        self.singleCalls = singleCalls
    }

    static let verdictNames: [UInt32: String] = [0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"]
    static let tcVerdictNames: [UInt32: String] = [0: "TC_ACT_OK", 2: "TC_ACT_SHOT", 7: "TC_ACT_REDIRECT", UInt32(bitPattern: -1): "TC_ACT_UNSPEC"]

    /// Runs every case; throws if a case does not take the path it is named after.
    public func run() throws -> [Row] {
        let env = try XDPFixtureEnvironment(object: .bench, tag: "bench")
        if let singleCalls { return try runSingle(env, calls: singleCalls) }
        typealias F = PacketFixtures
        let cases: [(String, String, [UInt8], UInt32)] = [
            ("bare XDP_PASS", "mip6_bench_pass", F.encapFrame(), 2),
            ("bare parse + XDP_TX bounce", "mip6_bench_tx", F.encapFrame(), 3),
            ("save/restore wrapper alone", "mip6_bench_restore_only", F.encapFrame(), 2),
            ("encapsulation HoA->CoA (XDP_TX)", "mip6_bench_ha", F.encapFrame(), 3),
            ("reverse-tunnel decapsulation (XDP_TX)", "mip6_bench_ha", F.decapFrame(), 3),
            ("proxy NA for an NS (XDP_TX)", "mip6_bench_ha", F.neighborSolicitationFrame(), 3),
            ("pass-through, not a home address", "mip6_bench_ha", F.passThroughFrame(), 2),
            // TC (sched_cls on clsact ingress): "back out" is bpf_redirect to the same device.
            ("TC: bare TC_ACT_OK", "mip6_bench_pass_tc", F.encapFrame(), 0),
            ("TC: bare parse + redirect bounce", "mip6_bench_tx_tc", F.encapFrame(), 7),
            ("TC: save/restore wrapper alone", "mip6_bench_restore_only_tc", F.encapFrame(), 0),
            ("TC: encapsulation HoA->CoA (redirect)", "mip6_bench_ha_tc", F.encapFrame(), 7),
            ("TC: reverse-tunnel decapsulation (redirect)", "mip6_bench_ha_tc", F.decapFrame(), 7),
            ("TC: proxy NA for an NS (redirect)", "mip6_bench_ha_tc", F.neighborSolicitationFrame(), 7),
            ("TC: pass-through, not a home address", "mip6_bench_ha_tc", F.passThroughFrame(), UInt32(bitPattern: -1)),
        ]
        var rows: [Row] = []
        for (name, program, frame, expected) in cases where only.map({ name.contains($0) }) ?? true {
            let tc = program.hasSuffix("_tc")
            let names = tc ? Self.tcVerdictNames : Self.verdictNames
            func once(_ count: UInt32) throws -> (verdict: UInt32, output: [UInt8], ns: UInt32) {
                if tc {
                    let r = try env.runSKB(frame, program: program, repeat: count)
                    return (r.verdict, r.output, r.durationNanoseconds)
                }
                let r = try env.run(frame, program: program, repeat: count)
                return (r.verdict, r.output, r.durationNanoseconds)
            }
            // One checked run first: the figures must be of the path the row names.
            let check = try once(1)
            guard check.verdict == expected else {
                throw SystemError("benchmark", errno: EINVAL,
                                  "\(name): verdict \(names[check.verdict] ?? "\(check.verdict)"), expected \(names[expected]!)")
            }
            if program.hasPrefix("mip6_bench_ha") || program.hasPrefix("mip6_bench_restore_only") {
                guard check.output == frame else {
                    throw SystemError("benchmark", errno: EINVAL, "\(name): the wrapper did not restore the frame")
                }
            }
            var samples: [Double] = []
            for _ in 0..<rounds {
                samples.append(Double(try once(repeatCount).ns))
            }
            let median = samples.sorted()[samples.count / 2]
            rows.append(Row(name: name, program: program, frameBytes: frame.count, verdict: names[expected]!,
                            nsPerPacket: median, rounds: samples))
        }
        return rows
    }

    /// One packet per BPF_PROG_TEST_RUN call (repeat = 1), as a user measures the program
    /// attached after a registration: each call gets the original frame, so the home-agent
    /// program runs without the save/restore wrapper. The kernel's per-call duration includes
    /// its own clock reads around the one run (the same for every row): ratios to the bare
    /// programs come out lower than with repeat = 1,000,000, and that is the method's point.
    func runSingle(_ env: XDPFixtureEnvironment, calls: Int) throws -> [Row] {
        typealias F = PacketFixtures
        let cases: [(String, String, [UInt8], UInt32)] = [
            ("bare XDP_PASS", "mip6_bench_pass", F.encapFrame(), 2),
            ("bare parse + XDP_TX bounce", "mip6_bench_tx", F.encapFrame(), 3),
            ("encapsulation HoA->CoA (XDP_TX)", "mip6_bench_ha_direct", F.encapFrame(), 3),
            ("reverse-tunnel decapsulation (XDP_TX)", "mip6_bench_ha_direct", F.decapFrame(), 3),
            ("proxy NA for an NS (XDP_TX)", "mip6_bench_ha_direct", F.neighborSolicitationFrame(), 3),
            ("pass-through, not a home address", "mip6_bench_ha_direct", F.passThroughFrame(), 2),
        ]
        var rows: [Row] = []
        for (name, program, frame, expected) in cases where only.map({ name.contains($0) }) ?? true {
            let prog = try env.object.program(program)
            let t0 = env.t0
            let samples: [Double] = try env.ns.run {
                var out: [Double] = []
                for _ in 0..<rounds {
                    var total: UInt64 = 0
                    for _ in 0..<calls {
                        let r = try prog.testRun(frame, repeat: 1, ingressIfindex: t0)
                        guard r.verdict == expected else {
                            throw SystemError("benchmark", errno: EINVAL, "\(name): verdict \(Self.verdictNames[r.verdict] ?? "\(r.verdict)")")
                        }
                        total += UInt64(r.durationNanoseconds)
                    }
                    out.append(Double(total) / Double(calls))
                }
                return out
            }
            rows.append(Row(name: name, program: program, frameBytes: frame.count, verdict: Self.verdictNames[expected]!,
                            nsPerPacket: samples.sorted()[samples.count / 2], rounds: samples))
        }
        return rows
    }
}
