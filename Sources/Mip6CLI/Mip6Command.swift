import ArgumentParser
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6CommandSupport

/// `mip6`: the Mobile IPv6 home agent and its tools.
public struct Mip6Command: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mip6",
        abstract: "Mobile IPv6 (RFC 6275) home agent with an XDP data plane, for stock kernels without MIPv6.",
        version: Mip6Build.version,
        subcommands: [HACommand.self, ForwarderCommand.self, MNCommand.self, LMACommand.self, MAGCommand.self, BindingsCommand.self, StatsCommand.self, DataplaneCommand.self]
    )

    public init() {}
}

/// --bpffs, shared by the daemon and the inspection commands.
struct PinOptions: ParsableArguments {
    @Option(help: "Directory on a BPF filesystem where the home agent pins its maps.")
    var bpffs: String = "/sys/fs/bpf/mip6"
}

extension Mip6Command {
    /// The entry point: the async `main` (from an async context, so `mip6 ha` can run its service group).
    public static func runAsync() async {
        await main()
    }
}
