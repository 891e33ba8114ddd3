import ControlPlane
import DataPlane

/// What `mip6 lma` was asked to do (RFC 5213 local mobility anchor).
public struct LocalMobilityAnchorOptions: Sendable {
    /// Where PBUs arrive and tunnels leave from: TC programs on each.
    public var interfaces: [String]
    /// The LMA address (PBUs to it; the tunnels' outer source).
    public var address: IPv6Address
    /// The policy file (`mag`, `pool`, `mn` lines: ProxyPolicy), read at start and on SIGHUP.
    public var policyPath: String
    public var maxLifetime: UInt32
    public var bpffs: String
    public var stateDir: String
    /// The data plane's signaling buckets: all MAGs together, and per MAG (`perSource*`: a
    /// MAG is one source address).
    public var puntLimits: PuntLimits = .default

    public init(interfaces: [String], address: IPv6Address, policyPath: String, maxLifetime: UInt32 = 3600,
                bpffs: String = "/sys/fs/bpf/mip6-lma", stateDir: String = "/run/mip6-lma") {
        self.interfaces = interfaces
        self.address = address
        self.policyPath = policyPath
        self.maxLifetime = maxLifetime
        self.bpffs = bpffs
        self.stateDir = stateDir
    }
}
