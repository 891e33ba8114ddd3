import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 mn`: the mobile-node daemon, and `mip6 mn status`.
struct MNCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mn",
        abstract: "Run the mobile-node daemon (RFC 6275 home registration, TC tunnel) or show its status.",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run the mobile node (the default: `mip6 mn --home-address ...`).",
            discussion: """
                Puts the home address on lo, attaches TC programs to each --interface (ingress: decapsulate \
                the tunnel from the home agent, take Binding Acknowledgements; egress: reverse-tunnel packets \
                from the home address), and registers the care-of address: the global address of the first \
                listed interface that is up with carrier and has finished DAD (or is optimistic). Moves at once \
                when netlink reports a change. An interface with an address in the home prefix means home: it \
                de-registers. Packets from the home address are routed through the registered care-of \
                address's link (a rule "from HOA lookup --route-table"). SIGTERM de-registers and exits 0.
                """
        )

        @Option(help: "The mobile node's home address.") var homeAddress: IPv6Address
        @Option(help: "The home agent's address.") var homeAgent: IPv6Address
        @Option(help: "Interfaces to use, most preferred first (repeat).") var interface: [String] = []
        @Option(help: "Lifetime asked for in each BU, seconds.") var lifetime: UInt32 = 600
        @Option(help: "The home prefix (default: the home address's /64).") var homePrefix: IPv6Prefix?
        @Option(help: "Directory on a BPF filesystem for the pinned maps.") var bpffs: String = "/sys/fs/bpf/mip6-mn"
        @Option(help: "Directory for the status file read by `mip6 mn status`.") var stateDir: String = "/run/mip6-mn"
        @Option(help: "First BU sequence number (testing; random by default).") var initialSequence: UInt16?
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info
        @Option(help: "RFC 4283 identifier (NAI) for authenticated BUs, e.g. mn1@example.net.") var nai: String?
        @Option(help: "RFC 4285 Mobility SPI shared with the home agent.") var spi: UInt32?
        @Option(help: "File holding the MN-HA key in hex (one line; chmod 600).") var keyFile: String?
        @Option(help: "Routing table for packets from the home address (1-252 or 256 and up).") var routeTable: UInt32 = 6275
        @Option(help: "Priority of the rule 'from HOA lookup --route-table' (below the main table's 32766).")
        var rulePriority: UInt32 = 6275

        func validate() throws {
            if interface.isEmpty { throw ValidationError("--interface is required") }
            if !homeAddress.isUnicastRoutable { throw ValidationError("--home-address must be a global unicast address") }
            if !homeAgent.isUnicastRoutable { throw ValidationError("--home-agent must be a global unicast address") }
            if let p = homePrefix, !p.contains(homeAddress) { throw ValidationError("--home-prefix \(p) does not contain \(homeAddress)") }
            let auth = [nai != nil, spi != nil, keyFile != nil]
            if auth.contains(true) && auth.contains(false) { throw ValidationError("--nai, --spi and --key-file go together") }
            if let spi, spi < 256 { throw ValidationError("--spi must be 256 or more (0-255 are reserved, RFC 4285)") }
            if routeTable == 0 || (253...255).contains(routeTable) {
                throw ValidationError("--route-table \(routeTable) is reserved (0 unspec, 253 default, 254 main, 255 local)")
            }
            if rulePriority == 0 || rulePriority >= 32766 {
                throw ValidationError("--rule-priority must be 1...32765 (the main table's rule is 32766)")
            }
            if lifetime < 4 || lifetime > 262_140 { throw ValidationError("--lifetime must be 4...262140 seconds (4-second units)") }
        }

        func run() async throws {
            LogSetup.bootstrap(level: logLevel)
            let logger = Logger(label: "mip6.mn")
            var options = MobileNodeOptions(
                homeAddress: homeAddress, homeAgent: homeAgent,
                homePrefix: homePrefix ?? IPv6Prefix(address: homeAddress, length: 64)!, interfaces: interface,
                lifetime: lifetime, bpffs: bpffs, stateDir: stateDir, initialSequence: initialSequence)
            (options.nai, options.spi, options.keyPath) = (nai, spi, keyFile)
            (options.routeTable, options.rulePriority) = (routeTable, rulePriority)
            let daemon = MobileNodeDaemon(options: options, logger: logger)
            do {
                try daemon.start()
                // SIGTERM/SIGINT de-register and exit 0; the loop runs on a thread of its own.
                try await DaemonService(daemon, threadName: "mip6-mn-loop").runGroup(logger: logger)
            } catch {
                logger.critical("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show registration state, care-of address, timers and counters.")
        @Option(help: "The daemon's --state-dir.") var stateDir: String = "/run/mip6-mn"
        @Option(help: "The daemon's --bpffs (for data-plane counters).") var bpffs: String = "/sys/fs/bpf/mip6-mn"
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var status: MobileNodeStatus
            var pid: Int32
            var updatedAt: Date
            var dataplane: [String: UInt64]?
            var reassembledTunnel: [String: UInt64]

            func encode(to encoder: Encoder) throws {
                // Flat: the status fields at the top level, as operators read them.
                try status.encode(to: encoder)
                var c = encoder.container(keyedBy: Key.self)
                // Absent values are null, not missing keys: scripts read `careOfAddress == null` as "home".
                try c.encode(status.careOfAddress, forKey: .careOfAddress)
                try c.encode(status.tunnelCareOf, forKey: .tunnelCareOf)
                try c.encode(status.secondsToRefresh, forKey: .secondsToRefresh)
                try c.encode(status.secondsToExpiry, forKey: .secondsToExpiry)
                try c.encode(status.sequence, forKey: .sequence)
                try c.encode(status.lastStatus, forKey: .lastStatus)
                try c.encode(pid, forKey: .pid)
                try c.encode(updatedAt, forKey: .updatedAt)
                try c.encode(dataplane, forKey: .dataplane)
                try c.encode(reassembledTunnel, forKey: .reassembledTunnel)
            }

            enum Key: String, CodingKey {
                case pid, updatedAt, dataplane, reassembledTunnel
                case careOfAddress, tunnelCareOf, secondsToRefresh, secondsToExpiry, sequence, lastStatus
            }
        }

        func run() throws {
            let saved: MobileNodeReport
            do { saved = try MobileNodeReport.read(stateDir: stateDir) } catch {
                FileHandle.standardError.write(Data("mip6: no mobile-node status in \(stateDir) (is `mip6 mn` running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            let counters = try? MobileNodeMaps(pinnedAt: bpffs).readCounters()
            let dp = counters.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.name, $0.value) }) }
            if output.json {
                return try printJSON(Report(status: saved.status, pid: saved.pid, updatedAt: saved.updatedAt, dataplane: dp,
                                            reassembledTunnel: saved.reassembledTunnel))
            }
            let s = saved.status
            var rows: [(String, String)] = [
                ("home address", "\(s.homeAddress)"), ("home agent", "\(s.homeAgent)"),
                ("care-of address", s.careOfAddress.map { "\($0)" } ?? "-"), ("tunnel from", s.tunnelCareOf.map { "\($0)" } ?? "-"),
                ("state", s.state), ("granted lifetime", "\(s.grantedLifetime)s"),
                ("refresh in", s.secondsToRefresh.map { "\($0)s" } ?? "-"), ("expires in", s.secondsToExpiry.map { "\($0)s" } ?? "-"),
                ("sequence", s.sequence.map { "\($0)" } ?? "-"), ("last status", s.lastStatus.map { "\($0)" } ?? "-"),
                ("BUs sent", "\(s.counters.busSent) (\(s.counters.retransmissions) retransmissions)"),
                ("BAs", "\(s.counters.acksAccepted) accepted, \(s.counters.acksIgnored) ignored, \(s.counters.resyncs135) resyncs (135)"),
                ("last registration", s.counters.lastRegistrationMs.map { "\($0) ms" } ?? "-"),
            ]
            if !saved.reassembledTunnel.isEmpty {
                let counts: [String] = saved.reassembledTunnel.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                rows.append(("reassembled tunnel", counts.joined(separator: ", ")))
            }
            for (k, v) in rows { print("\(k.padding(toLength: 18, withPad: " ", startingAt: 0)) \(v)") }
            if let counters {
                print("")
                printTable(["DATA PLANE", "PACKETS"], counters.filter { $0.value != 0 }.map { [$0.name, "\($0.value)"] })
            }
        }
    }
}
