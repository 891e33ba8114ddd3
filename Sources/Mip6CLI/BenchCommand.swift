import ArgumentParser
import DataPlane
import Foundation

/// `mip6 bench`: benchmarks for perf/ (not tests: they print figures).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of the data plane (see perf/README.md).",
        subcommands: [XDP.self]
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
}
