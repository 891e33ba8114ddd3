import ArgumentParser
import CMip6
import DataPlane
import Foundation
import Mip6CommandSupport
import Mip6Daemon

/// `mip6 dataplane`: the home agent's pinned data plane, which outlives the daemon.
struct DataplaneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataplane",
        abstract: "Inspect or remove the home agent's pinned data plane (it keeps forwarding while the daemon is down).",
        subcommands: [Status.self, Detach.self]
    )

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Which version pinned the state, and where the program is attached.")
        @OptionGroup var pins: PinOptions
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var bpffs: String
            var pinnedBy: String
            var stateVersion: UInt32
            var compatible: Bool
            var createdAt: Date
            var bindings: Int
            var interfaces: [String: String]
            /// What sits where each interface's attachment puts our program (nil: nothing).
            var programs: [String: LoadedProgramInfo?]
        }

        func run() throws {
            let meta = try BPFMap<UInt32, mip6_meta>(BPFMapHandle.pinned(MIP6_MAP_META, in: pins.bpffs, by: "mip6 ha")).lookup(0)
            guard let meta else { throw ValidationError("\(pins.bpffs)/\(MIP6_MAP_META) is empty") }
            let maps = try HomeAgentMaps(pinnedAt: pins.bpffs)
            var interfaces: [String: String] = [:]
            var programs: [String: LoadedProgramInfo?] = [:]
            for (ifindex, v) in try maps.readInterfaces() {
                let attachment = Attachment(rawValue: v.attach)
                interfaces[interfaceName(ifindex)] = attachment?.label ?? "none"
                programs[interfaceName(ifindex)] = attachment
                    .flatMap { HomeAgentPins.attachedProgramID(ifindex: ifindex, attachment: $0) }
                    .flatMap { LoadedProgramInfo(id: $0) }
            }
            let ours = try HomeAgentPins.fingerprint(mapSpecs: BPFObject(.homeAgent).mapSpecs)
            let report = Report(
                bpffs: pins.bpffs,
                pinnedBy: withUnsafeBytes(of: meta.build) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) },
                stateVersion: meta.version,
                compatible: meta.version == UInt32(MIP6_STATE_VERSION) && meta.fingerprint == ours,
                createdAt: Date(timeIntervalSince1970: Double(meta.created_unix_ns) / 1e9),
                bindings: try maps.readBindings().count, interfaces: interfaces, programs: programs)
            if output.json { return try printJSON(report) }
            print("pinned data plane in \(report.bpffs): made by mip6 \(report.pinnedBy) (state version \(report.stateVersion)), "
                  + "\(report.compatible ? "compatible with" : "INCOMPATIBLE with") this mip6 \(Mip6Build.version)")
            print("bindings: \(report.bindings)")
            printTable(["INTERFACE", "ATTACHED", "PROGRAM", "ID", "TAG"], report.interfaces.sorted { $0.key < $1.key }.map { name, how in
                let p = report.programs[name] ?? nil
                return [name, how, p?.name ?? "(none: not forwarding)", p.map { "\($0.id)" } ?? "-", p?.tag ?? "-"]
            })
        }
    }

    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take the program off every interface and remove every pin: a clean uninstall.",
            discussion: """
                Forwarding for every binding stops at once and the bindings are gone; mobile nodes must \
                register again with the next home agent. Run it with the daemon stopped (a running daemon \
                would keep answering BUs with nothing forwarding them). Also removes --state-dir's files.
                """)
        @OptionGroup var pins: PinOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "The daemon's --state-dir (its files are removed too).")
        var stateDir: String = "/run/mip6"

        func run() throws {
            if let pid = ControlPlaneState.runningDaemon(stateDir: stateDir) {
                throw ValidationError("the home agent (pid \(pid)) is still running with --state-dir \(stateDir); stop it first")
            }
            let report = try HomeAgentPins.detachAll(directory: BPFFS.visible(pins.bpffs))
            try? FileManager.default.removeItem(atPath: ControlPlaneState.path(stateDir: stateDir))
            if output.json { return try printJSON(report) }
            if report.pinsRemoved.isEmpty && report.interfaces.isEmpty {
                return print("nothing pinned in \(pins.bpffs)")
            }
            print("detached from: \(report.interfaces.isEmpty ? "(no interface)" : report.interfaces.joined(separator: ", "))")
            print("removed \(report.pinsRemoved.count) pins from \(pins.bpffs); \(report.bindingsDropped) bindings dropped")
        }
    }
}

private func interfaceName(_ ifindex: UInt32) -> String { HomeAgentPins.ifname(ifindex) ?? "ifindex \(ifindex)" }
