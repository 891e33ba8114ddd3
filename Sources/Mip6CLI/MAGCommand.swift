import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport
import Mip6Daemon
import Mip6HTTP
import ServiceLifecycle
import UnixSignals

/// `mip6 mag`: the Proxy Mobile IPv6 mobile access gateway (RFC 5213 §6), and `mip6 mag status`.
struct MAGCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mag",
        abstract: "Run the PMIPv6 mobile access gateway (RFC 5213) or show its Binding Update List.",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run the mobile access gateway (the default: `mip6 mag --access ... --core ...`).",
            discussion: """
                Unmodified hosts attach on the --access links. A host is noticed by the fastest of: the link's \
                carrier coming up (the MAG then pings all-nodes and the host's answer shows its MAC), any frame \
                from a MAC the MAG does not serve yet, a Router Solicitation. Its MAC is looked up in --policy \
                (`mn NAI mac MAC prefix PREFIX|pool [lma ADDRESS]` lines, the LMA's file works as is), a Proxy \
                Binding Update goes to its LMA from --proxy-coa, and only once it is accepted does the host get \
                a unicast Router Advertisement with its prefix and an MTU 40 bytes below the tunnel's path. \
                Its traffic is then tunneled to the LMA and back in TC programs. Every access link takes the \
                same --mac and --link-local on every MAG, so a host that moves between MAGs keeps its router.
                """
        )

        @Option(help: "An access link where mobile nodes attach (repeat).") var access: [String] = []
        @Option(help: "The core interface, towards the LMAs.") var core: String
        @Option(name: .customLong("proxy-coa"), help: "The Proxy-CoA: this MAG's address on --core (PBU source, tunnel end).")
        var proxyCoA: IPv6Address
        @Option(help: "The LMA for mobile nodes whose policy line names none.") var lma: IPv6Address
        @Option(help: "The policy file (mn lines; the LMA's file works as is).") var policy: String
        @Option(help: "The link-local address of every access link, the same on every MAG.") var linkLocal: IPv6Address = IPv6Address("fe80::1")!
        @Option(help: "The MAC of every access link, the same on every MAG.") var mac: String = formatMAC(MobileAccessGatewayOptions.defaultMAC)
        @Option(help: "Lifetime asked for in each PBU, seconds (4...262140).") var lifetime: UInt32 = 60
        @Option(help: "Seconds between unicast RAs to each registered node (0: only after registration and on RS).") var raPeriod: Double = 3
        @Option(help: "Directory on a BPF filesystem for the pinned maps.") var bpffs: String = "/sys/fs/bpf/mip6-mag"
        @Option(help: "Directory for the state files read by `mip6 mag status`.") var stateDir: String = "/run/mip6-mag"
        @Option(help: "Serve /healthz, /readyz and Prometheus /metrics on ADDR:PORT, e.g. [::1]:9466 or *:9466 (off by default).")
        var httpListen: String?
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

        func validate() throws {
            if access.isEmpty { throw ValidationError("--access is required (an access link where mobile nodes attach)") }
            if !proxyCoA.isUnicastRoutable { throw ValidationError("--proxy-coa must be a global unicast address") }
            if !lma.isUnicastRoutable { throw ValidationError("--lma must be a global unicast address") }
            if !linkLocal.isLinkLocal { throw ValidationError("--link-local must be a link-local address (fe80::/10)") }
            guard let m = ProxyPolicy.parseMAC(mac), m[0] & 1 == 0 else {
                throw ValidationError("--mac: a unicast Ethernet address, e.g. 02:00:5e:00:53:01")
            }
            if lifetime < 4 || lifetime > 262_140 { throw ValidationError("--lifetime must be 4...262140 seconds") }
            if !(0...3600).contains(raPeriod) { throw ValidationError("--ra-period must be 0...3600 seconds") }
            if let httpListen {
                do { _ = try ListenAddress(parsing: httpListen) } catch { throw ValidationError("\(error)") }
            }
        }

        func run() async throws {
            // Trapped before anything else: `mip6 mag status` sends it to the pid of the state file.
            let user1 = await UnixSignalsSequence(trapping: .sigusr1)
            LogSetup.bootstrap(level: logLevel)
            let logger = Logger(label: "mip6.mag")
            let daemon = MobileAccessGatewayDaemon(
                options: MobileAccessGatewayOptions(accessInterfaces: access, coreInterface: core, proxyCareOf: proxyCoA, lma: lma,
                                                    policyPath: policy, linkLocal: linkLocal, mac: ProxyPolicy.parseMAC(mac)!,
                                                    lifetime: lifetime, raPeriod: raPeriod, bpffs: bpffs, stateDir: stateDir),
                logger: logger)
            let service = DaemonService(daemon, threadName: "mip6-mag-loop")
            let metrics = MobileAccessGatewayMetrics()
            daemon.onRegistration = { metrics.observeRegistration(seconds: $0) }
            let endpoints = MobileAccessGatewayEndpoints(box: service.box, metrics: metrics)
            try await runDaemon(service, httpListen: httpListen, name: "mip6 mag", logger: logger,
                                also: [.init(service: DumpListOnUser1(box: service.box, signals: user1))],
                                metrics: { endpoints.render() })
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the Binding Update List: node, MAC, prefixes, state, expiry; and the counters.",
            discussion: """
                Asks the running daemon for its Binding Update List (SIGUSR1 to the pid in --state-dir; it \
                writes mag-nodes.json from another thread, so a large list does not hold up signaling) and \
                waits for it up to --wait seconds. When the daemon is not running, or does not answer, the \
                last list written (at its shutdown, or for an earlier request) is shown, and stderr says so; \
                with none, only the counts by state from the state file.
                """)
        @Option(help: "The daemon's --state-dir.") var stateDir: String = "/run/mip6-mag"
        @Option(help: "The daemon's --bpffs (data-plane counters, read live).") var bpffs: String = "/sys/fs/bpf/mip6-mag"
        @Option(help: "Longest wait for the daemon's list, seconds.") var wait: Double = 10
        @OptionGroup var output: OutputOptions

        /// What `--json` prints: the fields of the state file before the list had a file of its
        /// own (`status.entries` included), and how the list was got.
        struct Report: Encodable {
            var pid: Int32
            var running: Bool
            /// The entries were written for this request (else: the last list written, or none).
            var fresh: Bool
            /// When the daemon copied the entries; absent with no list.
            var takenAt: Date?
            /// When the state file (counters) was written.
            var updatedAt: Date
            /// proxyCareOf, defaultLMA, entries, counters (the list's with a fresh list, else the state file's).
            var status: MobileAccessGatewayStatus
            /// Entries by state, as listed (with no list: from the state file).
            var nodes: [String: Int]
            var daemon: MobileAccessGatewayDaemonCounters
            /// Data-plane counters by name, read from the pinned maps now (else as of the state file).
            var dataplane: [String: UInt64]
            var accessInterfaces: [String]
            var coreInterface: String
            var mac: String
            var linkLocal: IPv6Address
        }

        func validate() throws {
            if !(0...300).contains(wait) { throw ValidationError("--wait must be 0...300 seconds") }
        }

        func run() throws {
            let saved: MobileAccessGatewayReport
            do { saved = try MobileAccessGatewayReport.read(stateDir: stateDir) } catch {
                FileHandle.standardError.write(Data("mip6: no MAG state in \(stateDir) (is `mip6 mag` running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            let reply = requestList(MobileAccessGatewayNodes.self, pid: saved.pid, stateDir: stateDir, wait: wait)
            let (status, nodes) = saved.status(listed: reply.list, fresh: reply.fresh)
            // The data-plane counters as they are now (the state file is written on events only).
            let live = (try? MobileAccessGatewayMaps(pinnedAt: bpffs).counterValues()) ?? saved.dataplane
            let r = Report(pid: saved.pid, running: reply.running, fresh: reply.fresh, takenAt: reply.takenAt, updatedAt: saved.updatedAt,
                           status: status, nodes: nodes, daemon: saved.daemon, dataplane: live,
                           accessInterfaces: saved.accessInterfaces, coreInterface: saved.coreInterface, mac: saved.mac,
                           linkLocal: saved.linkLocal)
            if output.json { return try printJSON(r) }
            print("Proxy-CoA \(status.proxyCareOf), default LMA \(status.defaultLMA), access \(r.accessInterfaces.joined(separator: ",")) "
                  + "(\(r.mac), \(r.linkLocal)), core \(r.coreInterface)")
            print("identifier                       MAC                prefixes                    state         expires")
            for e in status.entries {
                let prefixes = (e.homeNetworkPrefixes.isEmpty ? e.requestedPrefixes : e.homeNetworkPrefixes).map { "\($0)" }.joined(separator: ",")
                print("\(e.identifier.padding(toLength: 32, withPad: " ", startingAt: 0)) \(e.mac.padding(toLength: 18, withPad: " ", startingAt: 0)) "
                      + "\(prefixes.padding(toLength: 27, withPad: " ", startingAt: 0)) \(e.state.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)) "
                      + (e.secondsToExpiry.map { "\($0)" } ?? "-"))
            }
            let c = status.counters
            let byState = nodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("\(nodes.values.reduce(0, +)) nodes\(byState.isEmpty ? "" : " (\(byState))"); attaches \(c.attaches), "
                  + "registrations \(c.registrations), refreshes \(c.refreshes), "
                  + "detaches \(c.detaches), PBUs \(c.pbusSent) (retransmitted \(c.retransmissions)), rejected \(c.pbasRejected), "
                  + "unknown nodes \(c.unknownMobileNodes), RAs \(c.rasSent)"
                  + (c.lastRegistrationMs.map { "; last registration \($0) ms" } ?? ""))
        }
    }
}
