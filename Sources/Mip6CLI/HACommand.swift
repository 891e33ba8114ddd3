import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport
import Mip6Daemon
import Mip6HTTP
import ServiceLifecycle

/// `mip6 ha`: the home-agent daemon.
struct HACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha",
        abstract: "Run the home-agent daemon (RFC 6275 home registration, XDP tunneling, proxy ND).",
        discussion: """
            Attaches its program (XDP or TC) to each --interface, pins maps and attachments under --bpffs, and \
            answers Binding Updates sent to --address. Runs in the foreground; SIGTERM or SIGINT stops the control \
            plane and exits 0 while the data plane keeps forwarding from the pinned state, which the next start \
            adopts. `mip6 dataplane detach` removes it all. \
            Needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW (root), a BPF filesystem, and enables IPv6 forwarding \
            in its network namespace.
            """
    )

    @Option(name: .long, help: "Home-link interface (repeat for a home agent that is also a router).")
    var interface: [String] = []

    @Option(name: .long, help: "The home agent's address (must be configured on an --interface).")
    var address: IPv6Address

    @Option(name: .long, help: "The home prefix, e.g. 2001:db8:1::/64.")
    var homePrefix: IPv6Prefix

    @Option(name: .long, help: "Longest lifetime granted to a binding, seconds (RFC 6275 MaxHomeRegistration).")
    var maxLifetime: UInt32 = 3600

    @Option(name: .long, help: "Binding cache capacity; BUs beyond it get status 130.")
    var maxBindings: Int = 65536

    @OptionGroup var pins: PinOptions

    @Option(name: .long, help: "Directory for the control plane's state file (counters for `mip6 stats`).")
    var stateDir: String = "/run/mip6"

    @Option(name: .long, help: "How the program sits on each interface: xdp (native), xdp-generic, tc (clsact ingress, keeps GSO/TSO), or auto: native XDP on device-backed interfaces (TC if the driver refuses), TC on virtual ones such as veth.")
    var attachMode: AttachMode = .auto

    @Option(name: .long, help: ArgumentHelp("Load the home-agent BPF object from this file instead of the one built into mip6 (a rebuilt bpf/mip6_ha.bpf.c); it must have the built-in object's map layouts.", valueName: "FILE"))
    var programObject: String?

    @Option(name: .long, help: "Duplicate Address Detection wait in milliseconds (default: the interface's RetransTimer, 1000).")
    var dadTimeout: UInt32?

    @Flag(name: .long, help: "Skip Duplicate Address Detection for home addresses.")
    var noDad = false

    @Option(name: .long, help: "RFC 4285 key file: one `NAI HOME-ADDRESS|any SPI KEY-HEX` per line; re-read on SIGHUP. Without it bindings are unauthenticated.")
    var authKeys: String?

    @Option(name: .long, help: "Allowed clock difference for replay-protection timestamps, seconds (RFC 4285).")
    var authSkew: UInt32 = 7

    @Option(name: .long, help: "Signaling packets per second handed to the control plane, all sources together (0: no limit).")
    var puntRate: UInt32 = PuntLimits.default.rate

    @Option(name: .long, help: "Burst allowed above --punt-rate, packets.")
    var puntBurst: UInt32 = PuntLimits.default.burst

    @Option(name: .long, help: "Signaling packets per second from one source /64 (0: no limit).")
    var puntRatePerSource: UInt32 = PuntLimits.default.perSourceRate

    @Option(name: .long, help: "Burst allowed above --punt-rate-per-source, packets.")
    var puntBurstPerSource: UInt32 = PuntLimits.default.perSourceBurst

    @Option(name: .long, help: "Serve /healthz, /readyz and Prometheus /metrics on ADDR:PORT, e.g. [::1]:9464 or *:9464 (off by default).")
    var httpListen: String?

    @Option(name: .long, help: "Bindings with their own per-binding series in /metrics (the most bytes first; the rest are summed as hoa=\"other\"; 0: none, and no per-scrape scan of the binding counters).")
    var metricsTopBindings: Int = 100

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @OptionGroup(title: "Replicas (no single point of failure)") var cluster: HAClusterOptions

    func validate() throws {
        if interface.isEmpty { throw ValidationError("--interface is required") }
        if !address.isUnicastRoutable { throw ValidationError("--address \(address) must be a global unicast address") }
        if homePrefix.length == 0 || homePrefix.length > 128 { throw ValidationError("--home-prefix length must be 1...128") }
        if maxLifetime == 0 || maxLifetime > 262_140 { throw ValidationError("--max-lifetime must be 1...262140 seconds (16-bit field in 4 s units)") }
        if maxBindings < 1 || maxBindings > Int(MIP6_MAX_BINDINGS_LIMIT) {
            throw ValidationError("--max-bindings must be 1...\(MIP6_MAX_BINDINGS_LIMIT)")
        }
        if !pins.bpffs.hasPrefix("/") { throw ValidationError("--bpffs must be an absolute path") }
        if authSkew == 0 || authSkew > 3600 { throw ValidationError("--auth-skew must be 1...3600 seconds") }
        if let httpListen {
            do { _ = try ListenAddress(parsing: httpListen) } catch { throw ValidationError("\(error)") }
        }
        if metricsTopBindings < 0 || metricsTopBindings > 10_000 { throw ValidationError("--metrics-top-bindings must be 0...10000") }
    }

    func run() async throws {
        LogSetup.bootstrap(level: logLevel)
        let logger = Logger(label: "mip6.ha")
        var options = HomeAgentOptions(
            interfaces: interface, address: address, homePrefix: homePrefix, maxLifetime: maxLifetime,
            maxBindings: maxBindings, bpffs: pins.bpffs, stateDir: stateDir, attachMode: attachMode,
            dadTimeoutMilliseconds: dadTimeout, duplicateAddressDetection: !noDad)
        options.authKeysPath = authKeys
        options.programObject = programObject
        options.allowedSkew = authSkew
        options.puntLimits = PuntLimits(rate: puntRate, burst: puntBurst, perSourceRate: puntRatePerSource,
                                        perSourceBurst: puntBurstPerSource)
        try cluster.apply(to: &options)
        let daemon = HomeAgentDaemon(options: options, logger: logger)
        let service = DaemonService(daemon, threadName: "mip6-ha-loop")
        let metrics = HomeAgentMetrics(topBindings: metricsTopBindings)
        daemon.onAckLatency = { metrics.observeAckLatency(seconds: $0) }
        let endpoints = HomeAgentEndpoints(box: service.box, metrics: metrics)
        try await runDaemon(service, httpListen: httpListen, name: "mip6 home agent", logger: logger, metrics: { endpoints.render() })
    }
}

/// Upper bound for --max-bindings (the map is allocated on demand; memory grows with use).
let MIP6_MAX_BINDINGS_LIMIT: UInt32 = 16_777_216
