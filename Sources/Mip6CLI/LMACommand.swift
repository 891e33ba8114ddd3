import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging
import Mip6CommandSupport
import Mip6Daemon
import Mip6HTTP
import ServiceLifecycle
import UnixSignals

/// `mip6 lma`: the Proxy Mobile IPv6 local mobility anchor (RFC 5213), `mip6 lma bindings`
/// and `mip6 lma status`.
struct LMACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lma",
        abstract: "Run the PMIPv6 local mobility anchor (RFC 5213), list its bindings or show its counters.",
        subcommands: [Run.self, Bindings.self, Status.self],
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
        @Option(help: "Directory for the state file read by `mip6 lma bindings` and `mip6 lma status`.") var stateDir: String = "/run/mip6-lma"
        @Option(help: "Signaling packets per second handed to the control plane, all MAGs together (0: no limit).")
        var puntRate: UInt32 = PuntLimits.default.rate
        @Option(help: "Burst allowed above --punt-rate, packets.") var puntBurst: UInt32 = PuntLimits.default.burst
        @Option(help: "Signaling packets per second from one MAG (source address) (0: no limit).")
        var puntRatePerMag: UInt32 = PuntLimits.default.perSourceRate
        @Option(help: "Burst allowed above --punt-rate-per-mag, packets.") var puntBurstPerMag: UInt32 = PuntLimits.default.perSourceBurst
        @Option(help: "Serve /healthz, /readyz and Prometheus /metrics on ADDR:PORT, e.g. [::1]:9465 or *:9465 (off by default).")
        var httpListen: String?
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

        func validate() throws {
            if interface.isEmpty { throw ValidationError("--interface is required") }
            if !address.isUnicastRoutable { throw ValidationError("--address must be a global unicast address") }
            if maxLifetime < 4 || maxLifetime > 262_140 { throw ValidationError("--max-lifetime must be 4...262140 seconds") }
            if !bpffs.hasPrefix("/") { throw ValidationError("--bpffs must be an absolute path") }
            if let httpListen {
                do { _ = try ListenAddress(parsing: httpListen) } catch { throw ValidationError("\(error)") }
            }
        }

        func run() async throws {
            // Trapped before anything else: `mip6 lma bindings` sends it to the pid of the state file.
            let user1 = await UnixSignalsSequence(trapping: .sigusr1)
            LogSetup.bootstrap(level: logLevel)
            let logger = Logger(label: "mip6.lma")
            var options = LocalMobilityAnchorOptions(interfaces: interface, address: address, policyPath: policy,
                                                     maxLifetime: maxLifetime, bpffs: bpffs, stateDir: stateDir)
            options.puntLimits = PuntLimits(rate: puntRate, burst: puntBurst, perSourceRate: puntRatePerMag,
                                            perSourceBurst: puntBurstPerMag)
            let daemon = LocalMobilityAnchorDaemon(options: options, logger: logger)
            let service = DaemonService(daemon, threadName: "mip6-lma-loop")
            let metrics = LocalMobilityAnchorMetrics()
            daemon.onAckLatency = { metrics.observeAckLatency(seconds: $0) }
            let endpoints = LocalMobilityAnchorEndpoints(box: service.box, metrics: metrics)
            try await runDaemon(service, httpListen: httpListen, name: "mip6 lma", logger: logger,
                                also: [.init(service: DumpListOnUser1(box: service.box, signals: user1))],
                                metrics: { endpoints.render() })
        }
    }

    struct Bindings: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the proxy bindings: node, prefixes, MAG, expiry.",
            discussion: """
                Asks the running daemon for its list (SIGUSR1 to the pid in --state-dir; it writes \
                lma-bindings.json from another thread, so a large list does not hold up signaling) and \
                waits for it up to --wait seconds. When the daemon is not running, or does not answer, \
                the last list written (at its shutdown, or for an earlier request) is shown, and stderr \
                says so.
                """)
        @Option(help: "The daemon's --state-dir.") var stateDir: String = "/run/mip6-lma"
        @Option(help: "The daemon's --bpffs (data-plane counters, read live).") var bpffs: String = "/sys/fs/bpf/mip6-lma"
        @Option(help: "Longest wait for the daemon's list, seconds.") var wait: Double = 10
        @OptionGroup var output: OutputOptions

        /// What `--json` prints.
        struct Listing: Encodable {
            var pid: Int32
            var running: Bool
            /// The list was written for this request (else: the last one written).
            var fresh: Bool
            var takenAt: Date
            var address: IPv6Address
            var bindings: [LocalMobilityAnchorBindings.Entry]
            var counters: LocalMobilityAnchorCounters
            var dataplane: [String: UInt64]
            var puntsMalformed: UInt64
            var sendFailures: UInt64
        }

        func validate() throws {
            if !(0...300).contains(wait) { throw ValidationError("--wait must be 0...300 seconds") }
        }

        func run() throws {
            let saved: LocalMobilityAnchorReport
            do { saved = try LocalMobilityAnchorReport.read(stateDir: stateDir) } catch {
                FileHandle.standardError.write(Data("mip6: no LMA state in \(stateDir) (is `mip6 lma` running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            let reply = requestList(LocalMobilityAnchorBindings.self, pid: saved.pid, stateDir: stateDir, wait: wait)
            guard let list = reply.list, let takenAt = reply.takenAt else { throw ExitCode(1) }
            let (running, fresh) = (reply.running, reply.fresh)
            // The data-plane counters as they are now.
            let live = (try? LocalMobilityAnchorMaps(pinnedAt: bpffs).counterValues()) ?? saved.dataplane
            if output.json {
                return try printJSON(Listing(pid: saved.pid, running: running, fresh: fresh, takenAt: takenAt, address: saved.address,
                                             bindings: list.bindings, counters: saved.counters, dataplane: live,
                                             puntsMalformed: saved.puntsMalformed, sendFailures: saved.sendFailures))
            }
            print("identifier                       prefixes                    MAG                       expires  state")
            for b in list.bindings {
                let prefixes = b.prefixes.map { "\($0)" }.joined(separator: ",")
                print("\(b.identifier.padding(toLength: 32, withPad: " ", startingAt: 0)) \(prefixes.padding(toLength: 27, withPad: " ", startingAt: 0)) "
                      + "\("\(b.mag)".padding(toLength: 25, withPad: " ", startingAt: 0)) \(String(b.secondsToExpiry).padding(toLength: 8, withPad: " ", startingAt: 0)) "
                      + (b.active ? "active" : "de-registered"))
            }
            let c = saved.counters
            print("\(list.bindings.count) bindings; PBUs \(c.proxyBindingUpdates), registrations \(c.registrations), "
                  + "handoffs \(c.handoffs), refreshes \(c.refreshes), de-registrations \(c.deregistrations), expirations \(c.expirations)")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The LMA's counters: bindings, PBUs and PBAs by status, control-plane events, data-plane counters (read live).")
        @Option(help: "The daemon's --state-dir.") var stateDir: String = "/run/mip6-lma"
        @Option(help: "The daemon's --bpffs (data-plane counters, read live).") var bpffs: String = "/sys/fs/bpf/mip6-lma"
        @OptionGroup var output: OutputOptions

        /// What `--json` prints: the state file without the binding list, the data-plane
        /// counters as they are now.
        struct Report: Encodable {
            var pid: Int32
            var running: Bool
            var updatedAt: Date
            var address: IPv6Address
            var bindings: Int
            var activeBindings: Int
            var deregisteredBindings: Int
            var proxyBindingUpdates: UInt64
            /// PBAs sent by status code.
            var acksByStatus: [String: UInt64]
            /// Registrations, handoffs, ..., send_failures, punts_malformed (as /metrics' events).
            var events: [String: UInt64]
            /// Signaling dropped without an answer, by reason.
            var dropped: [String: UInt64]
            /// Data-plane counters by name; `dataplaneLive`: read from the pinned maps now (else
            /// as of the state file).
            var dataplane: [String: UInt64]
            var dataplaneLive: Bool
        }

        func run() throws {
            let saved: LocalMobilityAnchorReport
            do { saved = try LocalMobilityAnchorReport.read(stateDir: stateDir) } catch {
                FileHandle.standardError.write(Data("mip6: no LMA state in \(stateDir) (is `mip6 lma` running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            let live = try? LocalMobilityAnchorMaps(pinnedAt: bpffs).counterValues()
            var events = saved.counters.events
            events["send_failures"] = saved.sendFailures
            events["punts_malformed"] = saved.puntsMalformed
            // Map entries an earlier daemon left: still forwarding, and deleted after expiring unrefreshed.
            events["inherited_entries"] = UInt64(saved.inheritedEntries)
            events["inherited_entries_removed"] = saved.inheritedEntriesRemoved
            let r = Report(pid: saved.pid, running: kill(saved.pid, 0) == 0 || errno == EPERM, updatedAt: saved.updatedAt,
                           address: saved.address, bindings: saved.activeBindings + saved.deregisteredBindings,
                           activeBindings: saved.activeBindings, deregisteredBindings: saved.deregisteredBindings,
                           proxyBindingUpdates: saved.counters.proxyBindingUpdates,
                           acksByStatus: Dictionary(uniqueKeysWithValues: saved.counters.acksByStatus.map { ("\($0.key)", $0.value) }),
                           events: events, dropped: saved.counters.drops, dataplane: live ?? saved.dataplane, dataplaneLive: live != nil)
            if output.json { return try printJSON(r) }
            print("mip6 lma \(r.address): pid \(r.pid) \(r.running ? "running" : "not running"), state written "
                  + String(format: "%.1f s ago", Date().timeIntervalSince(r.updatedAt)))
            print("bindings: \(r.bindings) (\(r.activeBindings) active, \(r.deregisteredBindings) de-registered)\n")
            var rows: [[String]] = [["proxy_binding_updates", "\(r.proxyBindingUpdates)"]]
            rows += r.acksByStatus.sorted { Int($0.key)! < Int($1.key)! }.map { ["pba_status_\($0.key)", "\($0.value)"] }
            rows += r.events.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] }
            rows += r.dropped.sorted { $0.key < $1.key }.map { ["dropped_\($0.key)", "\($0.value)"] }
            printTable(["CONTROL PLANE", "COUNT"], rows)
            print("")
            // The data-plane counters in mip6_shared.h order; zeros left out.
            printTable(["DATA PLANE" + (r.dataplaneLive ? "" : " (as of the state file)"), "PACKETS"],
                       LocalMobilityAnchorMaps.counterNames.compactMap { name in r.dataplane[name].flatMap { $0 == 0 ? nil : [name, "\($0)"] } })
        }
    }
}
