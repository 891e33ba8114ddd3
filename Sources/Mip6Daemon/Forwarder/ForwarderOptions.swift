import ControlPlane
import DataPlane

/// What `mip6 forwarder` was asked to do: a data-plane-only node (issue 12, the SDN variant)
/// fed from the shared binding store; it answers no signaling.
public struct ForwarderOptions: Sendable {
    public var interfaces: [String]
    /// The anycast home agent address: the outer source of every tunnel packet (the mobile
    /// node checks it) and the destination of the reverse tunnel.
    public var address: IPv6Address
    public var homePrefix: IPv6Prefix
    /// The store, and this forwarder's name in it (`replicaID`: its heartbeats) and --max-lag.
    public var store: StoreOptions
    public var maxBindings: Int
    public var bpffs: String
    public var stateDir: String
    public var attachMode: AttachMode
    /// The home-agent BPF object from a file instead of the built-in one (as `mip6 ha`).
    public var programObject: String?

    public init(interfaces: [String], address: IPv6Address, homePrefix: IPv6Prefix, store: StoreOptions,
                maxBindings: Int = 1_048_576, bpffs: String = "/sys/fs/bpf/mip6-fwd", stateDir: String = "/run/mip6-fwd",
                attachMode: AttachMode = .auto) {
        self.interfaces = interfaces
        self.address = address
        self.homePrefix = homePrefix
        self.store = store
        self.maxBindings = maxBindings
        self.bpffs = bpffs
        self.stateDir = stateDir
        self.attachMode = attachMode
    }
}
