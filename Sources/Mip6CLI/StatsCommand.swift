import ArgumentParser
import DataPlane
import Foundation
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 stats`: data-plane counters (pinned per-CPU array) and control-plane counters (state file).
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print data-plane counters per reason and the control plane's counters."
    )

    @OptionGroup var pins: PinOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "The daemon's --state-dir.")
    var stateDir: String = "/run/mip6"

    @Flag(help: "Show counters that are zero too.")
    var all = false

    struct Report: Encodable {
        var dataplane: [String: UInt64]
        var controlplane: ControlPlaneState?
        /// A forwarder's store view (its --state-dir given as --state-dir).
        var forwarder: ForwarderState?
    }

    func run() throws {
        let counters = try withMaps(pins) { try $0.readCounters() }
        let cp = try? ControlPlaneState.read(stateDir: stateDir)
        let fwd = try? ForwarderState.read(stateDir: stateDir)
        if output.json {
            return try printJSON(Report(dataplane: Dictionary(uniqueKeysWithValues: counters.map { ($0.name, $0.value) }), controlplane: cp,
                                        forwarder: fwd))
        }
        print("data plane (\(pins.bpffs))")
        printTable(["COUNTER", "PACKETS"], counters.filter { all || $0.value != 0 }.map { [$0.name, "\($0.value)"] })
        print("")
        if let fwd {
            return print("forwarder \(fwd.forwarderID): \(fwd.synced ? "synced" : "not synced"), \(fwd.bindings) bindings (mip6 forwarder status)")
        }
        guard let cp else { return print("control plane: no state file in \(stateDir) (daemon not running with this --state-dir?)") }
        print("control plane (pid \(cp.pid), \(cp.bindings) bindings, \(cp.dadInProgress) DAD in progress)")
        var rows: [[String]] = [["binding_updates", "\(cp.bindingUpdates)"], ["binding_errors_sent", "\(cp.bindingErrorsSent)"],
                                ["deregistrations", "\(cp.deregistrations)"], ["expirations", "\(cp.expirations)"],
                                ["send_failures", "\(cp.sendFailures)"], ["punts_malformed", "\(cp.puntsMalformed)"]]
        rows += cp.acksByStatus.sorted { Int($0.key) ?? 0 < Int($1.key) ?? 0 }.map { ["ba_status_\($0.key)", "\($0.value)"] }
        rows += cp.drops.sorted { $0.key < $1.key }.map { ["drop_\($0.key)", "\($0.value)"] }
        rows.append(["authenticated_binding_updates", "\(cp.authenticatedBindingUpdates)"])
        rows += cp.authRefusals.sorted { $0.key < $1.key }.map { ["auth_refused_\($0.key)", "\($0.value)"] }
        rows += [["tunnel_fragmented", "\(cp.tunnelFragmented)"], ["tunnel_packet_too_big", "\(cp.tunnelPacketTooBig)"],
                 ["tunnel_errors", "\(cp.tunnelErrors)"], ["tunnel_ignored", "\(cp.tunnelIgnored)"]]
        rows += cp.tunnelFragmentedDrops.sorted { $0.key < $1.key }.map { ["tunnel_fragmented_drop_\($0.key)", "\($0.value)"] }
        printTable(["COUNTER", "VALUE"], rows.filter { all || $0[1] != "0" })
    }
}
