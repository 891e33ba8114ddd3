import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 lma`: the Proxy Mobile IPv6 local mobility anchor (RFC 5213), and `mip6 lma bindings`.
struct LMACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lma",
        abstract: "Run the PMIPv6 local mobility anchor (RFC 5213) or list its bindings.",
        subcommands: [Run.self, Bindings.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run the local mobility anchor (the default: `mip6 lma --interface ...`).",
            discussion: """
                Attaches a TC program to each --interface: packets to a registered home network prefix \
                (/64) are tunneled to the node's MAG, the reverse tunnel from a MAG is decapsulated (the inner \
                source must be in a prefix bound to that MAG), Proxy Binding Updates to --address go to the \
                daemon. Which MAGs and mobile nodes are served, with which prefixes, comes from --policy \
                (lines `mag ADDRESS`, `pool PREFIX`, `mn NAI mac MAC prefix PREFIX|pool [lma ADDRESS]`), \
                read again on SIGHUP. The home network prefixes must be routed to this node.
                """
        )

        @Option(help: "Interfaces PBUs and traffic arrive on (repeat).") var interface: [String] = []
        @Option(help: "The LMA address (PBUs to it; the tunnels' outer source).") var address: IPv6Address
        @Option(help: "The policy file (mag, pool and mn lines).") var policy: String
        @Option(help: "Longest lifetime granted, seconds.") var maxLifetime: UInt32 = 3600
        @Option(help: "Directory on a BPF filesystem for the pinned maps.") var bpffs: String = "/sys/fs/bpf/mip6-lma"
        @Option(help: "Directory for the state file read by `mip6 lma bindings`.") var stateDir: String = "/run/mip6-lma"
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

        func validate() throws {
            if interface.isEmpty { throw ValidationError("--interface is required") }
            if !address.isUnicastRoutable { throw ValidationError("--address must be a global unicast address") }
            if maxLifetime < 4 || maxLifetime > 262_140 { throw ValidationError("--max-lifetime must be 4...262140 seconds") }
        }

        func run() async throws {
            LogSetup.bootstrap(level: logLevel)
            let logger = Logger(label: "mip6.lma")
            let daemon = LocalMobilityAnchorDaemon(
                options: LocalMobilityAnchorOptions(interfaces: interface, address: address, policyPath: policy,
                                                    maxLifetime: maxLifetime, bpffs: bpffs, stateDir: stateDir),
                logger: logger)
            do {
                try daemon.start()
                try await DaemonService(daemon, threadName: "mip6-lma-loop").runGroup(logger: logger)
            } catch {
                logger.critical("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Bindings: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the proxy bindings: node, prefixes, MAG, expiry.")
        @Option(help: "The daemon's --state-dir.") var stateDir: String = "/run/mip6-lma"
        @Option(help: "The daemon's --bpffs (data-plane counters, read live).") var bpffs: String = "/sys/fs/bpf/mip6-lma"
        @OptionGroup var output: OutputOptions

        func run() throws {
            var saved: LocalMobilityAnchorReport
            do { saved = try LocalMobilityAnchorReport.read(stateDir: stateDir) } catch {
                FileHandle.standardError.write(Data("mip6: no LMA state in \(stateDir) (is `mip6 lma` running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            // The counters as they are now (the state file is written on signaling only).
            if let live = try? LocalMobilityAnchorMaps(pinnedAt: bpffs).counterValues() { saved.dataplane = live }
            if output.json { return try printJSON(saved) }
            print("identifier                       prefixes                    MAG                       expires  state")
            for b in saved.bindings {
                let prefixes = b.prefixes.map { "\($0)" }.joined(separator: ",")
                print("\(b.identifier.padding(toLength: 32, withPad: " ", startingAt: 0)) \(prefixes.padding(toLength: 27, withPad: " ", startingAt: 0)) "
                      + "\("\(b.mag)".padding(toLength: 25, withPad: " ", startingAt: 0)) \(String(b.secondsToExpiry).padding(toLength: 8, withPad: " ", startingAt: 0)) "
                      + (b.active ? "active" : "de-registered"))
            }
            let c = saved.counters
            print("\(saved.bindings.count) bindings; PBUs \(c.proxyBindingUpdates), registrations \(c.registrations), "
                  + "handoffs \(c.handoffs), refreshes \(c.refreshes), de-registrations \(c.deregistrations), expirations \(c.expirations)")
        }
    }
}
