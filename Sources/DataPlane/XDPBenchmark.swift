import CMip6
import ControlPlane
import Foundation

/// Per-packet cost of the home-agent program with BPF_PROG_TEST_RUN, next to the bare
/// XDP_PASS and parse + XDP_TX bounce programs, all measured in the same run on the
/// same fixture frames the BPF tests use.
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

    public init(repeatCount: UInt32 = 1_000_000, rounds: Int = 5) {
        self.repeatCount = repeatCount
        self.rounds = rounds
    }

    static let verdictNames: [UInt32: String] = [0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"]

    /// Runs every case; throws if a case does not take the path it is named after.
    public func run() throws -> [Row] {
        let env = try XDPFixtureEnvironment(object: .bench, tag: "bench")
        typealias F = PacketFixtures
        let cases: [(String, String, [UInt8], UInt32)] = [
            ("bare XDP_PASS", "mip6_bench_pass", F.encapFrame(), 2),
            ("bare parse + XDP_TX bounce", "mip6_bench_tx", F.encapFrame(), 3),
            ("save/restore wrapper alone", "mip6_bench_restore_only", F.encapFrame(), 2),
            ("encapsulation HoA->CoA (XDP_TX)", "mip6_bench_ha", F.encapFrame(), 3),
            ("reverse-tunnel decapsulation (XDP_TX)", "mip6_bench_ha", F.decapFrame(), 3),
            ("proxy NA for an NS (XDP_TX)", "mip6_bench_ha", F.neighborSolicitationFrame(), 3),
            ("pass-through, not a home address", "mip6_bench_ha", F.passThroughFrame(), 2),
        ]
        var rows: [Row] = []
        for (name, program, frame, expected) in cases {
            // One checked run first: the figures must be of the path the row names.
            let check = try env.run(frame, program: program)
            guard check.verdict == expected else {
                throw SystemError("benchmark", errno: EINVAL,
                                  "\(name): verdict \(Self.verdictNames[check.verdict] ?? "\(check.verdict)"), expected \(Self.verdictNames[expected]!)")
            }
            if program == "mip6_bench_ha" || program == "mip6_bench_restore_only" {
                guard check.output == frame else {
                    throw SystemError("benchmark", errno: EINVAL, "\(name): the wrapper did not restore the frame")
                }
            }
            var samples: [Double] = []
            for _ in 0..<rounds {
                samples.append(Double(try env.run(frame, program: program, repeat: repeatCount).durationNanoseconds))
            }
            let median = samples.sorted()[samples.count / 2]
            rows.append(Row(name: name, program: program, frameBytes: frame.count, verdict: Self.verdictNames[expected]!,
                            nsPerPacket: median, rounds: samples))
        }
        return rows
    }
}
