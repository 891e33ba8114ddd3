import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport
import Mip6Daemon
import Mip6HTTP
import Mip6Store
import ServiceLifecycle

/// `mip6 forwarder [run]` and `mip6 forwarder status`: a data-plane-only node fed from the
/// shared binding store (issue 12, the SDN variant).
struct ForwarderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forwarder",
        abstract: "Run a forwarder-only node (the home agent's data plane, programmed from the shared store), or show its status.",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the forwarder (the default subcommand).",
            discussion: """
                Loads the home agent's program with the forwarder flag, attaches it to each --interface and fills \
                its maps from the store (list, then watch). It tunnels packets for registered home addresses to \
                their care-of addresses (outer source --address) and decapsulates reverse tunnels to --address; \
                Binding Updates and everything else pass to the kernel, which routes them on to the replicas. \
                Only while its maps are shown current (first list in, its heartbeats back through the watch within \
                --max-lag) does it forward; otherwise, and after it stops, every packet passes. Needs CAP_BPF, \
                CAP_NET_ADMIN (root) and a BPF filesystem; enables IPv6 forwarding in its network namespace.
                """)

        @Option(name: .long, help: "Interface to attach to (repeat).")
        var interface: [String] = []
        @Option(name: .long, help: "The (anycast) home agent address: outer source of the tunnel, destination of the reverse tunnel.")
        var address: IPv6Address
        @Option(name: .long, help: "The home prefix, e.g. 2001:db8:1::/64.")
        var homePrefix: IPv6Prefix
        @Option(name: .long, help: ArgumentHelp("The shared binding store: etcd+http://HOST:PORT[,HOST:PORT...].", valueName: "URL"))
        var store: String
        @Option(name: .long, help: ArgumentHelp("How to reach etcd: grpc (its own API, over HTTP/2) or gateway (its JSON gateway over HTTP/1.1).", valueName: "API"))
        var storeAPI: EtcdClient.API = .grpc
        @Option(name: .long, help: "Key prefix of this home network in the store (as the replicas': default /mip6/v1/ and the home prefix).")
        var storePrefix: String?
        @Option(name: .long, help: "This forwarder's name in the store (its heartbeats; default: the host name).")
        var forwarderID: String?
        @Option(name: .long, help: "Stop forwarding (pass everything to the replicas) when the store's watch is this many milliseconds behind.")
        var maxLag: UInt32 = 1000
        @Option(name: .long, help: "xdp (native), xdp-generic, tc (clsact ingress), or auto: native XDP on device-backed interfaces, TC on virtual ones.")
        var attachMode: AttachMode = .auto
        @Option(name: .long, help: "Directory on a BPF filesystem for the forwarder's pins.")
        var bpffs: String = "/sys/fs/bpf/mip6-fwd"
        @Option(name: .long, help: "Directory for the state file (`mip6 forwarder status`).")
        var stateDir: String = "/run/mip6-fwd"
        @Option(name: .long, help: "Binding table capacity.")
        var maxBindings: Int = 1_048_576
        @Option(name: .long, help: ArgumentHelp("Load the home-agent BPF object from this file instead of the built-in one.", valueName: "FILE"))
        var programObject: String?
        @Option(name: .long, help: "Serve /healthz, /readyz and /metrics on ADDR:PORT (off by default).")
        var httpListen: String?
        @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .info

        func validate() throws {
            if interface.isEmpty { throw ValidationError("--interface is required") }
            if !address.isUnicastRoutable { throw ValidationError("--address \(address) must be a global unicast address") }
            if homePrefix.length == 0 || homePrefix.length > 128 { throw ValidationError("--home-prefix length must be 1...128") }
            do { _ = try EtcdClient.endpoints(fromStore: store) } catch { throw ValidationError("\(error)") }
            if let p = storePrefix, !p.hasPrefix("/") { throw ValidationError("--store-prefix must start with /") }
            if maxLag < 100 { throw ValidationError("--max-lag must be at least 100 ms") }
            if maxBindings < 1 || maxBindings > Int(MIP6_MAX_BINDINGS_LIMIT) {
                throw ValidationError("--max-bindings must be 1...\(MIP6_MAX_BINDINGS_LIMIT)")
            }
            if !bpffs.hasPrefix("/") { throw ValidationError("--bpffs must be an absolute path") }
            if let httpListen { do { _ = try ListenAddress(parsing: httpListen) } catch { throw ValidationError("\(error)") } }
        }

        func run() async throws {
            LogSetup.bootstrap(level: logLevel)
            let logger = Logger(label: "mip6.forwarder")
            // The replicas' default prefix, so both find the same keys.
            let prefix = storePrefix ?? "/mip6/v1/" + "\(homePrefix)".replacingOccurrences(of: "/", with: "_")
            var s = StoreOptions(endpoints: try EtcdClient.endpoints(fromStore: store), prefix: prefix,
                                 replicaID: forwarderID ?? ProcessInfo.processInfo.hostName)
            s.maxLagMilliseconds = maxLag
            s.api = storeAPI
            var options = ForwarderOptions(interfaces: interface, address: address, homePrefix: homePrefix, store: s,
                                           maxBindings: maxBindings, bpffs: bpffs, stateDir: stateDir, attachMode: attachMode)
            options.programObject = programObject
            let daemon = ForwarderDaemon(options: options, logger: logger)
            let service = DaemonService(daemon, threadName: "mip6-fwd-loop")
            let box = service.box
            try await runDaemon(service, httpListen: httpListen, name: "mip6 forwarder", logger: logger,
                                metrics: { ForwarderMetrics.render(box.daemon) })
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the running forwarder's state: synced, store revision and lag, bindings, interfaces (exit 1 if none runs).")
        @Option(help: "The forwarder's --state-dir.")
        var stateDir: String = "/run/mip6-fwd"
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var running: Bool
            var state: ForwarderState
        }

        func run() throws {
            guard let st = try? ForwarderState.read(stateDir: stateDir) else {
                FileHandle.standardError.write(Data("mip6: no forwarder state in \(stateDir) (not running with this --state-dir?)\n".utf8))
                throw ExitCode(1)
            }
            let running = st.runningPid != nil
            if output.json { return try printJSON(Report(running: running, state: st)) }
            let c = st.counters
            var lines: [(String, String)] = [
                ("forwarder", "\(st.forwarderID) (pid \(st.pid), \(running ? "running" : "not running"))"),
                ("synced", st.synced ? "yes: forwarding" : "no: passing every packet to the replicas (\(st.notSyncedReason ?? "?"))"),
                ("store", "\(st.storePrefix) at revision \(st.revision), lag \(String(format: "%.0f", st.lagMilliseconds)) ms"),
                ("first sync", st.firstSyncMilliseconds.map { String(format: "%.0f ms after start", $0) } ?? "not yet"),
                ("bindings", "\(st.bindings) of \(st.maxBindings)"),
                ("convergence", st.convergence.map { String(format: "a replica's acceptance -> these maps: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d",
                                                            $0.p50, $0.p99, $0.max, $0.samples) } ?? "none watched yet"),
            ]
            for (name, i) in st.interfaces.sorted(by: { $0.key < $1.key }) {
                lines.append(("interface", "\(name) \(i.attach) program \(i.programID)"))
            }
            lines.append(("counters", "lists \(c.lists), watch breaks \(c.watchBreaks), upserts \(c.upserts), deletes \(c.deletes), "
                          + "expirations \(c.expirations), sync losses \(c.syncLosses), heartbeat failures \(c.heartbeatFailures), "
                          + "map failures \(c.mapUpdateFailures), invalid \(c.invalidRecords), table full \(c.cacheFull)"))
            for (k, v) in lines { print("\(k.padding(toLength: 12, withPad: " ", startingAt: 0)) \(v)") }
            if !running { throw ExitCode(1) }
        }
    }
}

/// /metrics of a forwarder: its store view and the data plane's counters.
enum ForwarderMetrics {
    static func render(_ d: ForwarderDaemon) -> String {
        var out = ""
        if let s = d.publishedState {
            out += "# TYPE mip6_forwarder_synced gauge\nmip6_forwarder_synced \(s.synced ? 1 : 0)\n"
            out += "# TYPE mip6_store_lag_seconds gauge\nmip6_store_lag_seconds \(s.lagMilliseconds / 1000)\n"
            out += "# TYPE mip6_bindings gauge\nmip6_bindings \(s.bindings)\n"
            out += "# TYPE mip6_store_relists_total counter\nmip6_store_relists_total \(s.counters.lists)\n"
        }
        out += "# TYPE mip6_dataplane_packets_total counter\n"
        for (name, v) in d.dataPlaneCounters() { out += "mip6_dataplane_packets_total{reason=\"\(name)\"} \(v)\n" }
        return out
    }
}
