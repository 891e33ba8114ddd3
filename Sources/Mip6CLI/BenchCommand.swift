import ArgumentParser
import DataPlane
import Foundation

/// `mip6 bench`: benchmarks for perf/ (not tests: they print figures).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of the data plane (see perf/README.md).",
        subcommands: [XDP.self, Signaling.self]
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
}

