import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 bindings list|show|delete|flush`: the binding cache as the data plane holds it
/// (pinned maps), and evicting bindings from it.
struct BindingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bindings",
        abstract: "Inspect the binding cache (read from the maps pinned under --bpffs; works while the daemon runs).",
        subcommands: [List.self, Show.self, Delete.self, Flush.self],
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

        /// FLAGS shows the link-local address L defends: "AHL fe80::100".
        static func row(_ v: BindingView) -> [String] {
            [v.homeAddress, v.careOfAddress, "\(v.sequence)", "\(v.lifetime)s", "\(v.remaining)s",
             v.flags.joined() + (v.linkLocal.map { " \($0)" } ?? ""),
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
            var lines: [(String, String)] = [
                ("home address", v.homeAddress), ("care-of address", v.careOfAddress), ("sequence", "\(v.sequence)"),
                ("lifetime", "\(v.lifetime)s"), ("remaining", "\(v.remaining)s"), ("flags", v.flags.joined()),
                ("to MN", "\(v.packetsToMN) packets, \(v.bytesToMN) bytes"),
                ("from MN", "\(v.packetsFromMN) packets, \(v.bytesFromMN) bytes"),
            ]
            if let ll = v.linkLocal { lines.insert(("link-local", "\(ll) (defended, never tunneled)"), at: 6) }
            for (k, val) in lines { print("\(k.padding(toLength: 16, withPad: " ", startingAt: 0)) \(val)") }
        }
    }
}

extension BindingsCommand {
    /// --state-dir: where the running daemon's pid is, to tell it about an eviction.
    struct DaemonOptions: ParsableArguments {
        @Option(help: "The home agent's --state-dir (its pid, to tell it about the eviction).")
        var stateDir: String = "/run/mip6"
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evict the binding of one home address (exit 1 if there is none).",
            discussion: """
                Removes it from the data plane at once (tunneling and proxy ND for the home address, and for \
                its link-local address with the L flag, stop), \
                then tells a running `mip6 ha` (SIGHUP), which drops it from its binding cache too. The \
                mobile node's next Binding Update registers it again, as a new registration.
                """)
        @Argument(help: "Home address.") var homeAddress: IPv6Address
        @OptionGroup var pins: PinOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let removed = try withMaps(pins) { maps -> BindingView? in
                guard let v = try maps.bindingView(homeAddress) else { return nil }
                try maps.remove(homeAddress)
                return v
            }
            guard let removed else {
                FileHandle.standardError.write(Data("mip6: no binding for \(homeAddress)\n".utf8))
                throw ExitCode(1)
            }
            let told = notifyDaemon(stateDir: daemon.stateDir)
            if output.json { return try printJSON(Evicted(evicted: [removed], daemonNotified: told)) }
            print("evicted \(removed.homeAddress) (care-of address \(removed.careOfAddress))" + (told ? "; mip6 ha told" : ""))
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evict every binding.",
            discussion: "As `delete`, for all of them: every mobile node registers again with its next Binding Update.")
        @OptionGroup var pins: PinOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let removed = try withMaps(pins) { maps -> [BindingView] in
                let views = try maps.bindingViews()
                for v in views { try maps.remove(IPv6Address(v.homeAddress)!) }
                return views
            }
            let told = removed.isEmpty ? false : notifyDaemon(stateDir: daemon.stateDir)
            if output.json { return try printJSON(Evicted(evicted: removed, daemonNotified: told)) }
            print("evicted \(removed.count) binding\(removed.count == 1 ? "" : "s")" + (told ? "; mip6 ha told" : ""))
        }
    }

    struct Evicted: Encodable {
        var evicted: [BindingView]
        /// Whether a running daemon was told (SIGHUP) to drop them from its cache.
        var daemonNotified: Bool
    }
}

/// SIGHUP to the home agent whose state file is in `stateDir`, when it runs: it reloads its
/// keys and drops from its cache what the maps no longer hold.
func notifyDaemon(stateDir: String) -> Bool {
    guard let pid = ControlPlaneState.runningDaemon(stateDir: stateDir) else { return false }
    return (try? Syscall.call("kill(SIGHUP)") { kill(pid, SIGHUP) }) != nil
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
