import ArgumentParser
import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc

/// `mip6 bench`: benchmarks for perf/ (not tests: they print figures).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of the data plane (see perf/README.md).",
        subcommands: [XDP.self, Signaling.self, Gen.self, Hold.self]
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

        @Option(help: "Also write the results as JSON to this file.")
        var output: String?

        @OptionGroup var format: OutputOptions

        func validate() throws {
            if repeatCount == 0 { throw ValidationError("--repeat-count must be at least 1") }
            if rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        }

        func run() throws {
            let rows: [XDPBenchmark.Row]
            do {
                rows = try XDPBenchmark(repeatCount: repeatCount, rounds: rounds).run()
            } catch {
                FileHandle.standardError.write(Data("mip6 bench xdp: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try enc.encode(rows).write(to: URL(fileURLWithPath: output))
            }
            if format.json { return try printJSON(rows) }
            let pass = rows.first { $0.program == "mip6_bench_pass" }!.nsPerPacket
            let tx = rows.first { $0.program == "mip6_bench_tx" }!.nsPerPacket
            printTable(["CASE", "FRAME", "VERDICT", "NS/PACKET", "x XDP_PASS", "x XDP_TX"], rows.map {
                [$0.name, "\($0.frameBytes) B", $0.verdict, String(format: "%.1f", $0.nsPerPacket),
                 String(format: "%.2f", $0.nsPerPacket / max(pass, 0.1)), String(format: "%.2f", $0.nsPerPacket / max(tx, 0.1))]
            })
            print("\n\(repeatCount) packets per call, median of \(rounds) calls; mip6_bench_ha rows include the save/restore wrapper.")
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

        @Option(help: "Also write the results as JSON to this file.")
        var output: String?

        @OptionGroup var format: OutputOptions

        func run() throws {
            let counts = bindings.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--bindings: positive numbers, comma-separated") }
            var results: [SignalingBenchmark.Result] = []
            do {
                for n in counts { results.append(try SignalingBenchmark(bindings: n, refreshRounds: refreshRounds).run()) }
            } catch {
                FileHandle.standardError.write(Data("mip6 bench signaling: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let output {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try enc.encode(results).write(to: URL(fileURLWithPath: output))
            }
            if format.json { return try printJSON(results) }
            printTable(["BINDINGS", "BU/S", "P50 US", "P99 US", "RSS B/BINDING", "MAP B/BINDING", "RSS MIB DURING REFRESHES"], results.map {
                ["\($0.bindings)", String(format: "%.0f", $0.busPerSecond), String(format: "%.1f", $0.p50Microseconds),
                 String(format: "%.1f", $0.p99Microseconds), String(format: "%.0f", $0.rssBytesPerBinding),
                 String(format: "%.0f", $0.mapBytesPerBinding), $0.refreshStreamRSSMiB.map { String(format: "%.0f", $0) }.joined(separator: " ")]
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
                FileHandle.standardError.write(Data("mip6 bench gen: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if format.json { return try printJSON(r) }
            print(String(format: "%d-byte frames: %u sent in %.3f s (%.2f Mpps offered); back: %llu frames, %llu tunneled (%.2f Mpps)",
                         r.frameBytes, r.packets, r.seconds, r.offeredMpps, r.receivedFrames, r.receivedTunneled, r.tunneledMpps))
        }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach one of the benchmark programs (e.g. the bare XDP_TX bounce) to an interface until SIGTERM.",
            discussion: "For perf/: the baseline in the same topology as the home agent. Programs: mip6_bench_tx, mip6_bench_pass."
        )
        @Option(help: "Program name.") var program: String = "mip6_bench_tx"
        @Option(help: "Interface.") var interface: String
        @Option(help: "XDP mode.") var xdpMode: XDPMode = .native

        func run() throws {
            guard ["mip6_bench_tx", "mip6_bench_pass"].contains(program) else { throw ValidationError("--program: mip6_bench_tx or mip6_bench_pass") }
            let signals = try SignalFD([SIGTERM, SIGINT])
            let object = try BPFObject(.bench)
            try object.setMaxEntries(map: MIP6_MAP_BINDINGS, 16)
            try object.setMaxEntries(map: MIP6_MAP_BINDING_STATS, 16)
            try object.load()
            let link = try XDPLink(program: object.program(program), ifindex: NetworkInterface(named: interface).index, mode: xdpMode)
            print("attached \(program) to \(interface) (\(link.mode.rawValue)); SIGTERM detaches")
            FileHandle.standardOutput.synchronizeFile()
            var pfd = pollfd(fd: signals.raw, events: Int16(POLLIN), revents: 0)
            while poll(&pfd, 1, -1) <= 0 {}
            _ = link
        }
    }
}

func parseMAC(_ s: String) -> [UInt8]? {
    let b = s.split(separator: ":").compactMap { UInt8($0, radix: 16) }
    return b.count == 6 ? b : nil
}

