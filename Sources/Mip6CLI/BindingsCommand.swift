import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 bindings list|show`: the binding cache as the data plane holds it (pinned maps).
struct BindingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bindings",
        abstract: "Inspect the binding cache (read from the maps pinned under --bpffs; works while the daemon runs).",
        subcommands: [List.self, Show.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every binding.")
        @OptionGroup var pins: PinOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let views = try withMaps(pins) { try $0.bindingViews() }
            if output.json { return try printJSON(views) }
            if views.isEmpty { return print("no bindings") }
            printTable(["HOME ADDRESS", "CARE-OF ADDRESS", "SEQ", "LIFETIME", "REMAINING", "FLAGS", "TO MN (pkts/bytes)", "FROM MN (pkts/bytes)"],
                       views.map(Self.row))
        }

        static func row(_ v: BindingView) -> [String] {
            [v.homeAddress, v.careOfAddress, "\(v.sequence)", "\(v.lifetime)s", "\(v.remaining)s", v.flags.joined(),
             "\(v.packetsToMN)/\(v.bytesToMN)", "\(v.packetsFromMN)/\(v.bytesFromMN)"]
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the binding of one home address (exit 1 if none).")
        @Argument(help: "Home address.") var homeAddress: IPv6Address
        @OptionGroup var pins: PinOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            guard let v = try withMaps(pins, { try $0.bindingView(homeAddress) }) else {
                FileHandle.standardError.write(Data("mip6: no binding for \(homeAddress)\n".utf8))
                throw ExitCode(1)
            }
            if output.json { return try printJSON(v) }
            let lines: [(String, String)] = [
                ("home address", v.homeAddress), ("care-of address", v.careOfAddress), ("sequence", "\(v.sequence)"),
                ("lifetime", "\(v.lifetime)s"), ("remaining", "\(v.remaining)s"), ("flags", v.flags.joined()),
                ("to MN", "\(v.packetsToMN) packets, \(v.bytesToMN) bytes"),
                ("from MN", "\(v.packetsFromMN) packets, \(v.bytesFromMN) bytes"),
            ]
            for (k, val) in lines { print("\(k.padding(toLength: 16, withPad: " ", startingAt: 0)) \(val)") }
        }
    }
}

/// Opens the pinned maps, turning a failure into one clear line and exit 1.
func withMaps<T>(_ pins: PinOptions, _ body: (HomeAgentMaps) throws -> T) throws -> T {
    do {
        return try body(HomeAgentMaps(pinnedAt: pins.bpffs))
    } catch {
        FileHandle.standardError.write(Data("mip6: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
