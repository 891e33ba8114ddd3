import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging

/// `mip6`: the Mobile IPv6 home agent and its tools.
public struct Mip6Command: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mip6",
        abstract: "Mobile IPv6 (RFC 6275) home agent with an XDP data plane, for stock kernels without MIPv6.",
        version: Mip6Build.version,
        subcommands: [HACommand.self, MNCommand.self, BindingsCommand.self, StatsCommand.self, DataplaneCommand.self, BenchCommand.self]
    )

    public init() {}
}

/// --bpffs, shared by the daemon and the inspection commands.
struct PinOptions: ParsableArguments {
    @Option(help: "Directory on a BPF filesystem where the home agent pins its maps.")
    var bpffs: String = "/sys/fs/bpf/mip6"
}

/// --json for inspection commands.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

extension IPv6Address: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension IPv6Prefix: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension XDPMode: ExpressibleByArgument {}
extension AttachMode: ExpressibleByArgument {}

enum LogSetup {
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Prints `value` as sorted, pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    enc.dateEncodingStrategy = .iso8601
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

/// A simple left-aligned table.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
    for r in rows { print(line(r)) }
}

extension Mip6Command {
    /// The entry point: the async `main` (from an async context, so `mip6 ha` can run its service group).
    public static func runAsync() async {
        await main()
    }
}
