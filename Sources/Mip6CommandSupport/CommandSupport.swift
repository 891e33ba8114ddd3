// What every command-line entry point shares (`mip6`, `mip6-bench`): --json, tables, JSON,
// log set-up and argument parsing of the project's types.
import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging

/// --json for inspection commands.
public struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    public var json = false
    public init() {}
}

extension IPv6Address: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension IPv6Prefix: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension XDPMode: ExpressibleByArgument {}
extension AttachMode: ExpressibleByArgument {}

public enum LogSetup {
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Prints `value` as sorted, pretty JSON on stdout.
public func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    enc.dateEncodingStrategy = .iso8601
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

/// A simple left-aligned table.
public func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
    for r in rows { print(line(r)) }
}

