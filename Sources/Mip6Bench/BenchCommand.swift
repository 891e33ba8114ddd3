import ArgumentParser
import CMip6
import ControlPlane
import DataPlane
import Foundation
import UnixSignals
import Glibc
import Mip6CommandSupport
import Mip6TestSupport

/// `mip6-bench`: benchmarks for perf/ (not tests: they print figures). A binary of its own,
/// so the shipped `mip6` carries no benchmark code or benchmark BPF programs.
public struct BenchCommand: AsyncParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "mip6-bench",
        abstract: "Benchmarks of the mip6 data plane and signaling (see perf/README.md).",
        subcommands: [XDP.self, Signaling.self, ProxySignaling.self, Gen.self, Hold.self, BULoad.self, PBULoad.self, PBUPolicy.self]
    )

    struct XDP: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-packet cost of the XDP program with BPF_PROG_TEST_RUN, next to bare XDP_PASS and XDP_TX programs.",
            discussion: "Runs in a scratch network namespace it creates and removes. Needs root."
        )

        @Option(help: "Packets per BPF_PROG_TEST_RUN call.")
        var repeatCount: UInt32 = 1_000_000

        @Option(help: "Calls per case; the median is reported.")
        var rounds: Int = 5

        @Option(help: "Only the cases whose name contains this, e.g. \"encapsulation\" (to profile one path: perf record -g -- mip6-bench xdp --only ...).")
        var only: String?

        @Option(help: "Measure one packet per call instead (repeat = 1, the program unwrapped): this many calls per round, the mean of the kernel's per-call durations.")
        var singleCalls: Int?

        @Option(help: "Also write the results as JSON to this file.")
        var output: String?

        @OptionGroup var format: OutputOptions

        func validate() throws {
            if let singleCalls, singleCalls < 1 { throw ValidationError("--single-calls must be at least 1") }
            if repeatCount == 0 { throw ValidationError("--repeat-count must be at least 1") }
            if rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        }

        func run() throws {
            let rows: [XDPBenchmark.Row]
            do {
                rows = try XDPBenchmark(repeatCount: repeatCount, rounds: rounds, only: only, singleCalls: singleCalls).run()
            } catch {
                FileHandle.standardError.write(Data("mip6-bench xdp: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                try writeJSON(rows, to: output)
            }
            if format.json { return try printJSON(rows) }
            // Each row against the floors of its own hook: XDP rows against XDP_PASS / the XDP_TX
            // bounce, TC rows against TC_ACT_OK / the redirect bounce (absent with --only: "-").
            func floor(_ program: String) -> Double? { rows.first { $0.program == program }?.nsPerPacket }
            func ratio(_ v: Double, _ f: Double?) -> String { f.map { String(format: "%.2f", v / max($0, 0.1)) } ?? "-" }
            printTable(["CASE", "FRAME", "VERDICT", "NS/PACKET", "x PASS FLOOR", "x BOUNCE"], rows.map {
                let tc = $0.program.hasSuffix("_tc")
                let pass = floor(tc ? "mip6_bench_pass_tc" : "mip6_bench_pass")
                let tx = floor(tc ? "mip6_bench_tx_tc" : "mip6_bench_tx")
                return [$0.name, "\($0.frameBytes) B", $0.verdict, String(format: "%.1f", $0.nsPerPacket),
                        ratio($0.nsPerPacket, pass), ratio($0.nsPerPacket, tx)]
            })
            if let singleCalls {
                print("\nOne packet per call (repeat = 1), mean of \(singleCalls) calls, median of \(rounds) rounds; the home-agent"
                      + " program unwrapped; the kernel's per-call timing overhead is in every row.")
            } else {
                print("\n\(repeatCount) packets per call, median of \(rounds) calls; mip6_bench_ha rows include the save/restore wrapper;"
                      + " ratios against the floors of the same hook (XDP or TC).")
            }
        }
    }

    struct Signaling: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Binding Updates per second through the home-agent control plane, latency, memory per binding.",
            discussion: "In process on one core: parse, checks, binding cache, one BPF map update per binding, BA built. Needs root (BPF maps)."
        )

        @Option(help: "Binding counts to measure, comma-separated.")
        var bindings: String = "10000,100000,1000000"

        @Option(help: "Rounds of refreshes over the same bindings, watching memory.")
        var refreshRounds: Int = 5

        @Option(help: "BUs per map-update batch to compare, comma-separated (1: one map update per BU; the daemon batches up to 64 per ring drain).")
        var batch: String = "1,64"

        var batches: [Int] { batch.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        @Option(help: "Also write the results as JSON to this file.")
        var output: String?

        @OptionGroup var format: OutputOptions

        func run() throws {
            let counts = bindings.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--bindings: positive numbers, comma-separated") }
            guard !batches.isEmpty, batches.allSatisfy({ (1...4096).contains($0) }) else { throw ValidationError("--batch: numbers 1...4096, comma-separated") }
            var results: [SignalingBenchmark.Result] = []
            do {
                for n in counts {
                    for b in batches { results.append(try SignalingBenchmark(bindings: n, refreshRounds: refreshRounds, batch: b).run()) }
                }
            } catch {
                FileHandle.standardError.write(Data("mip6-bench signaling: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                try writeJSON(results, to: output)
            }
            if format.json { return try printJSON(results) }
            printTable(["BINDINGS", "BATCH", "BU/S", "P50 US", "P99 US", "RSS B/BINDING", "MAP B/BINDING", "RSS MIB DURING REFRESHES"], results.map {
                ["\($0.bindings)", "\($0.batch)", String(format: "%.0f", $0.busPerSecond), String(format: "%.1f", $0.p50Microseconds),
                 String(format: "%.1f", $0.p99Microseconds), String(format: "%.0f", $0.rssBytesPerBinding),
                 String(format: "%.0f", $0.mapBytesPerBinding), $0.refreshStreamRSSMiB.map { String(format: "%.0f", $0) }.joined(separator: " ")]
            })
        }
    }

    struct ProxySignaling: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pmip",
            abstract: "Proxy Binding Updates per second through the LMA's control plane, latency, memory per binding (issue 13).",
            discussion: "In process on one core: parse, RFC 5213 checks, binding cache, one BPF map write per /64, PBA built; "
                + "then every node hands off to a second MAG. Needs root (BPF maps)."
        )

        @Option(help: "Binding counts to measure, comma-separated.") var bindings: String = "10000,100000,1000000"
        @Option(help: "Also write the results as JSON to this file.") var output: String?
        @OptionGroup var format: OutputOptions

        func run() throws {
            let counts = bindings.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 && $0 <= 16_777_216 }) else {
                throw ValidationError("--bindings: numbers 1...16777216, comma-separated")
            }
            var results: [ProxySignalingBenchmark.Result] = []
            do {
                for n in counts { results.append(try ProxySignalingBenchmark(bindings: n).run()) }
            } catch {
                FileHandle.standardError.write(Data("mip6-bench pmip: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                try writeJSON(results, to: output)
            }
            if format.json { return try printJSON(results) }
            printTable(["BINDINGS", "PBU/S", "P50 US", "P99 US", "MAX US", "HANDOFFS/S", "RSS B/BINDING", "MAP B/BINDING"], results.map {
                ["\($0.bindings)", String(format: "%.0f", $0.pbusPerSecond), String(format: "%.1f", $0.p50Microseconds),
                 String(format: "%.1f", $0.p99Microseconds), String(format: "%.0f", $0.maxMicroseconds), String(format: "%.0f", $0.handoffsPerSecond),
                 String(format: "%.0f", $0.rssBytesPerBinding), String(format: "%.0f", $0.mapBytesPerBinding)]
            })
        }
    }

    struct Gen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Live-frames packet generator: frames for a home address into the home agent, count what comes back tunneled.",
            discussion: """
                Runs in the namespace of the home agent's neighbour (the testbed's router): frames leave by \
                --interface towards the home agent, and an XDP sink on --sink-interface (default the same) counts \
                the IPv6-in-IPv6 frames the home agent sends back, and drops them. perf/packet_rate.py drives it.
                """
        )
        @Option(help: "Interface the frames leave by.") var interface: String
        @Option(help: "Interface to count returning frames on (default: --interface).") var sinkInterface: String?
        @Option(help: "Destination MAC (the home agent's).") var destinationMac: String
        @Option(help: "Source address of the frames.") var source: IPv6Address
        @Option(help: "Destination address (a registered home address).") var destination: IPv6Address
        @Option(help: "Frame size in bytes (64...1514).") var frameSize: Int = 64
        @Option(help: "Frames to send.") var packets: UInt32 = 2_000_000
        @OptionGroup var format: OutputOptions

        func validate() throws {
            if !(64...1514).contains(frameSize) { throw ValidationError("--frame-size must be 64...1514") }
            if parseMAC(destinationMac) == nil { throw ValidationError("--destination-mac: six hex bytes, e.g. 02:00:00:00:01:0a") }
        }

        func run() throws {
            let g = PacketGenerator(interface: interface, sinkInterface: sinkInterface ?? interface,
                                    destinationMAC: parseMAC(destinationMac)!, source: source, destination: destination,
                                    frameBytes: frameSize, packets: packets)
            let r: PacketGenerator.Result
            do { r = try g.run() } catch {
                FileHandle.standardError.write(Data("mip6-bench gen: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if format.json { return try printJSON(r) }
            print(String(format: "%d-byte frames: %u sent in %.3f s (%.2f Mpps offered); back: %llu frames, %llu tunneled (%.2f Mpps)",
                         r.frameBytes, r.packets, r.seconds, r.offeredMpps, r.receivedFrames, r.receivedTunneled, r.tunneledMpps))
        }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach one of the benchmark programs (e.g. the bare XDP_TX bounce) to an interface until SIGTERM.",
            discussion: "For perf/: the baseline in the same topology as the home agent. Programs: mip6_bench_tx, mip6_bench_pass."
        )
        @Option(help: "Program name.") var program: String = "mip6_bench_tx"
        @Option(help: "Interface.") var interface: String
        @Option(help: "XDP mode.") var xdpMode: XDPMode = .native

        func run() async throws {
            guard ["mip6_bench_tx", "mip6_bench_pass"].contains(program) else { throw ValidationError("--program: mip6_bench_tx or mip6_bench_pass") }
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint) // trapped before anything is attached
            let object = try BPFObject(.bench)
            try object.setBindingCapacity(16)
            try object.load()
            let link = try XDPLink(program: object.program(program), ifindex: NetworkInterface(named: interface).index, mode: xdpMode)
            print("attached \(program) to \(interface) (\(link.mode.rawValue)); SIGTERM detaches")
            FileHandle.standardOutput.synchronizeFile()
            for await _ in signals { break }
            withExtendedLifetime(link) {}
        }
    }
}

func parseMAC(_ s: String) -> [UInt8]? {
    let b = s.split(separator: ":").compactMap { UInt8($0, radix: 16) }
    return b.count == 6 ? b : nil
}


extension BenchCommand {
    /// `mip6-bench bu-load`: Binding Updates over the wire from the care-of side, BAs matched back.
    struct BULoad: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bu-load",
            abstract: "Over-the-wire signaling load: BUs for many home addresses at offered rates, BAs matched back (BU/s accepted, round-trip latency).",
            discussion: """
                Runs on the care-of side (the testbed's mobile-node namespace, --interface mn-f1): pre-built Binding \
                Updates (A and H flags) from --care-of for distinct home addresses of --home-prefix leave by AF_PACKET \
                and sendmmsg, paced in bursts at each offered rate (open loop; "max": as fast as possible); a second \
                thread receives the Binding Acknowledgements on the same interface and matches each to its BU (home \
                address in the Type 2 Routing Header + sequence). The home agent must accept unauthenticated BUs \
                (no --auth-keys), run with --no-dad, --punt-rate 0 --punt-rate-per-source 0 and a --max-bindings \
                as large as the run. perf/signaling_wire.py drives it. Needs root (AF_PACKET).
                """
        )
        @Option(help: "Interface the BUs leave by and the BAs arrive on.") var interface: String = "mn-f1"
        @Option(help: "Destination MAC of the BUs (the next hop's, e.g. the foreign link's router).") var destinationMac: String
        @Option(help: "Care-of address (source of the BUs; the BAs come back to it).") var careOf: IPv6Address
        @Option(help: "The home agent's address.") var homeAgent: IPv6Address
        @Option(help: "Home prefix the home addresses are taken from (/64 or shorter).") var homePrefix: IPv6Prefix = IPv6Prefix("2001:db8:1::/64")!
        @Option(help: "Interface identifier of the first home address, hex.") var firstHomeAddress: String = "b000000000000000"
        @Option(help: "Distinct home addresses, cycled with sequence+1 per round (0: one per BU of the run, all new registrations).")
        var homeAddresses: Int = 0
        @Option(help: "Sequence number of the first round.") var firstSequence: UInt16 = 1
        @Option(help: "Requested lifetime, seconds.") var lifetime: UInt32 = 600
        @Option(help: "Offered rates in BU/s, comma-separated, one step each; \"max\" (or 0) sends as fast as possible.")
        var rates: String = "20000,50000,100000,150000,max"
        @Option(help: "Seconds per paced step (BUs = rate x seconds).") var seconds: Double = 2
        @Option(help: "BUs in a \"max\" step.") var maxCount: Int = 400_000
        @Option(help: "BUs per sendmmsg call (pacing granularity).") var burst: Int = 32
        @Option(help: "Longest wait for late BAs after each step, seconds.") var drain: Double = 2
        @Flag(help: "Send only (no BA receiver): the generator's own ceiling, e.g. into a dummy interface.") var noReceive = false
        @Option(help: "Also write the results as JSON to this file.") var output: String?
        @OptionGroup var format: OutputOptions

        func parsedRates() throws -> [Double] { try Self.rates(rates) }

        /// "10000,20000,max" -> [10000, 20000, 0].
        static func rates(_ text: String) throws -> [Double] {
            let r = try text.split(separator: ",").map { r in
                let t = r.trimmingCharacters(in: .whitespaces).lowercased()
                if t == "max" { return 0.0 }
                guard let v = Double(t), v >= 0 else { throw ValidationError("--rates: numbers or max, comma-separated") }
                return v
            }
            if r.isEmpty { throw ValidationError("--rates: at least one") }
            return r
        }

        static func printProgress(_ step: WireLoadGenerator.Step) {
            FileHandle.standardError.write(Data(String(format: "step %@: %d sent at %.0f/s, %d accepted, p99 %.0f us\n",
                step.offeredRate > 0 ? String(format: "%.0f", step.offeredRate) : "max", step.sent, step.sendRate,
                step.accepted, step.p99Microseconds).utf8))
        }

        /// The steps as a table; `names`: what is sent and what answers ("BU", "BA").
        static func printSteps(_ steps: [WireLoadGenerator.Step], names: (sent: String, ack: String)) {
            let (m, a) = names
            printTable(["OFFERED \(m)/S", "SENT", "SEND \(m)/S", "\(a)S", "ACCEPTED", "OTHER STATUS", "MISSING", "ACCEPTED \(m)/S",
                        "\(a) ARRIVAL/S", "P50 US", "P90 US", "P99 US", "P99.9 US", "MAX US"], steps.map { s in
                let other = s.bindingAcksByStatus.filter { $0.key != "0" }.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }
                return [s.offeredRate > 0 ? String(format: "%.0f", s.offeredRate) : "max", "\(s.sent)", String(format: "%.0f", s.sendRate),
                        "\(s.bindingAcks)", "\(s.accepted)", other.isEmpty ? "-" : other.joined(separator: " "), "\(s.missing)",
                        String(format: "%.0f", s.acceptedPerSecond), String(format: "%.0f", s.baArrivalRate),
                        String(format: "%.0f", s.p50Microseconds), String(format: "%.0f", s.p90Microseconds),
                        String(format: "%.0f", s.p99Microseconds), String(format: "%.0f", s.p999Microseconds),
                        String(format: "%.0f", s.maxMicroseconds)]
            })
        }

        func validate() throws {
            if parseMAC(destinationMac) == nil { throw ValidationError("--destination-mac: six hex bytes, e.g. 02:00:00:00:f1:01") }
            if UInt64(firstHomeAddress, radix: 16) == nil { throw ValidationError("--first-home-address: hex interface identifier") }
            _ = try parsedRates()
            if seconds <= 0 || maxCount < 1 || burst < 1 || burst > 1024 || homeAddresses < 0 {
                throw ValidationError("--seconds > 0, --max-count >= 1, --burst 1...1024, --home-addresses >= 0")
            }
        }

        func run() throws {
            var c = BULoadGenerator.Configuration(interface: interface, destinationMAC: parseMAC(destinationMac)!, careOf: careOf,
                                                  homeAgent: homeAgent, homePrefix: homePrefix)
            c.firstHomeAddress = UInt64(firstHomeAddress, radix: 16)!
            c.homeAddresses = homeAddresses
            c.firstSequence = firstSequence
            c.lifetimeSeconds = lifetime
            c.wire.rates = try parsedRates()
            c.wire.seconds = seconds
            c.wire.maxCount = maxCount
            c.wire.burst = burst
            c.wire.drainSeconds = drain
            c.wire.receive = !noReceive
            let result: BULoadGenerator.Result
            do {
                result = try BULoadGenerator(c).run { step in
                    if !format.json { Self.printProgress(step) }
                }
            } catch {
                FileHandle.standardError.write(Data("mip6-bench bu-load: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                try writeJSON(result, to: output)
            }
            if format.json { return try printJSON(result) }
            Self.printSteps(result.steps, names: ("BU", "BA"))
            print("\n\(result.frameBytes)-byte frames, bursts of \(result.burst), \(result.homeAddresses) home addresses; latency: BU handed to the kernel -> BA received on \(result.interface).")
        }
    }
}

extension BenchCommand {
    /// `mip6-bench pbu-load`: Proxy Binding Updates over the wire from a MAG's side, PBAs matched back.
    struct PBULoad: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pbu-load",
            abstract: "Over-the-wire LMA load: PBUs for many mobile nodes at offered rates, PBAs matched back (PBU/s accepted, round-trip latency).",
            discussion: """
                Runs on a MAG's side (the testbed's mobile-node namespace, --interface mn-f1): pre-built Proxy Binding \
                Updates (A and P flags; MN-ID, HNP, HI, ATT, MN-LL-ID, Timestamp) from --mag for distinct mobile nodes \
                leave by AF_PACKET and sendmmsg, paced in bursts at each offered rate (open loop; "max": as fast as \
                possible), each with the Timestamp of the moment it is sent; a second thread receives the PBAs on the \
                same interface and matches each to its PBU (NAI in the MN-ID option + sequence). The LMA's policy must \
                list the nodes and the MAG (`mip6-bench pbu-policy` writes it) and its signaling rate limits be off \
                (--punt-rate 0 --punt-rate-per-mag 0). perf/pmip_wire.py drives it. Needs root (AF_PACKET).
                """
        )
        @Option(help: "Interface the PBUs leave by and the PBAs arrive on.") var interface: String = "mn-f1"
        @Option(help: "Destination MAC of the PBUs (the next hop's, e.g. the MAG link's router).") var destinationMac: String
        @Option(help: "The MAG's Proxy-CoA (source of the PBUs; the PBAs come back to it).") var mag: IPv6Address
        @Option(help: "The LMA address.") var lma: IPv6Address
        @Option(help: "Index of the first mobile node.") var firstNode: Int = 0
        @Option(help: "Distinct mobile nodes, cycled with sequence+1 per round (0: one per PBU of the run, all new registrations).")
        var nodes: Int = 0
        @Option(help: "Sequence number of the first round.") var firstSequence: UInt16 = 1
        @Option(help: "Requested lifetime, seconds.") var lifetime: UInt32 = 600
        @Option(help: "Offered rates in PBU/s, comma-separated, one step each; \"max\" (or 0) sends as fast as possible.")
        var rates: String = "10000,20000,50000,max"
        @Option(help: "Seconds per paced step (PBUs = rate x seconds).") var seconds: Double = 2
        @Option(help: "PBUs in a \"max\" step.") var maxCount: Int = 200_000
        @Option(help: "PBUs per sendmmsg call (pacing granularity).") var burst: Int = 4
        @Option(help: "Longest wait for late PBAs after each step, seconds.") var drain: Double = 2
        @Flag(help: "Send only (no PBA receiver): the generator's own ceiling, e.g. into a veth whose peer drops.") var noReceive = false
        @Option(help: "Also write the results as JSON to this file.") var output: String?
        @OptionGroup var format: OutputOptions

        func validate() throws {
            if parseMAC(destinationMac) == nil { throw ValidationError("--destination-mac: six hex bytes, e.g. 02:00:00:00:f1:01") }
            _ = try BULoad.rates(rates)
            if seconds <= 0 || maxCount < 1 || burst < 1 || burst > 1024 || nodes < 0 || firstNode < 0 {
                throw ValidationError("--seconds > 0, --max-count >= 1, --burst 1...1024, --nodes >= 0, --first-node >= 0")
            }
        }

        func run() throws {
            var c = PBULoadGenerator.Configuration(interface: interface, destinationMAC: parseMAC(destinationMac)!, mag: mag, lma: lma)
            c.firstNode = firstNode
            c.nodes = nodes
            c.firstSequence = firstSequence
            c.lifetimeSeconds = lifetime
            c.wire.rates = try BULoad.rates(rates)
            c.wire.seconds = seconds
            c.wire.maxCount = maxCount
            c.wire.burst = burst
            c.wire.drainSeconds = drain
            c.wire.receive = !noReceive
            let result: PBULoadGenerator.Result
            do {
                result = try PBULoadGenerator(c).run { step in
                    if !format.json { BULoad.printProgress(step) }
                }
            } catch {
                FileHandle.standardError.write(Data("mip6-bench pbu-load: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                try writeJSON(result, to: output)
            }
            if format.json { return try printJSON(result) }
            BULoad.printSteps(result.steps, names: ("PBU", "PBA"))
            print("\n\(result.frameBytes)-byte frames, bursts of \(result.burst), \(result.nodes) mobile nodes from \(result.firstNode); "
                  + "latency: PBU handed to the kernel -> PBA received on \(result.interface).")
        }
    }

    /// `mip6-bench pbu-policy`: the LMA policy file listing the nodes `pbu-load` sends for.
    struct PBUPolicy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pbu-policy",
            abstract: "Write the LMA policy file for `pbu-load`: the MAG and one mn line per mobile node (NAI, MAC, /64).")
        @Option(help: "Index of the first mobile node.") var firstNode: Int = 0
        @Option(help: "Mobile nodes.") var nodes: Int
        @Option(help: "A MAG the LMA accepts PBUs from (repeat).") var mag: [IPv6Address] = []
        @Option(help: "The file to write.") var output: String

        func validate() throws {
            if nodes < 1 || firstNode < 0 || firstNode + nodes > PBUWorkload.maxNodes {
                throw ValidationError("--nodes >= 1, --first-node >= 0, at most \(PBUWorkload.maxNodes) in all")
            }
            if mag.isEmpty { throw ValidationError("--mag is required") }
        }

        func run() throws {
            try PBULoadGenerator.policy(first: firstNode, count: nodes, mags: mag).write(toFile: output, atomically: true, encoding: .utf8)
        }
    }
}

extension BenchCommand {
    /// The entry point: the async `main` (`hold` waits for a signal).
    public static func runAsync() async {
        await main()
    }
}

/// `--output FILE`: the results as indented JSON with sorted keys, as perf/run reads them.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try enc.encode(value).write(to: URL(fileURLWithPath: path))
}
