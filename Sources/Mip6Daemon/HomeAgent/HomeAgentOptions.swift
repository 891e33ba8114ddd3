import ControlPlane
import DataPlane

/// What `mip6 ha` was asked to do.
public struct HomeAgentOptions: Sendable {
    public var interfaces: [String]
    public var address: IPv6Address
    public var homePrefix: IPv6Prefix
    public var maxLifetime: UInt32
    public var maxBindings: Int
    public var bpffs: String
    public var stateDir: String
    public var attachMode: AttachMode
    /// RFC 4862 RetransTimer for DAD; nil reads the interface's retrans_time_ms.
    public var dadTimeoutMilliseconds: UInt32?
    public var duplicateAddressDetection: Bool
    /// RFC 4285 key file; nil runs unauthenticated (and says so loudly).
    public var authKeysPath: String?
    public var allowedSkew: UInt32 = 7
    public var puntLimits: PuntLimits = .default
    /// Load the home-agent BPF object from this file instead of the one built into the
    /// binary (a rebuilt data plane swapped in without a new control plane); nil: built in.
    public var programObject: String?

    public init(interfaces: [String], address: IPv6Address, homePrefix: IPv6Prefix, maxLifetime: UInt32 = 3600,
                maxBindings: Int = 65536, bpffs: String = "/sys/fs/bpf/mip6", stateDir: String = "/run/mip6",
                attachMode: AttachMode = .auto, dadTimeoutMilliseconds: UInt32? = nil, duplicateAddressDetection: Bool = true) {
        self.interfaces = interfaces
        self.address = address
        self.homePrefix = homePrefix
        self.maxLifetime = maxLifetime
        self.maxBindings = maxBindings
        self.bpffs = bpffs
        self.stateDir = stateDir
        self.attachMode = attachMode
        self.dadTimeoutMilliseconds = dadTimeoutMilliseconds
        self.duplicateAddressDetection = duplicateAddressDetection
    }
}
