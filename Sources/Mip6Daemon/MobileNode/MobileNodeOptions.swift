import ControlPlane
import Foundation

/// What `mip6 mn` was asked to do.
public struct MobileNodeOptions: Sendable {
    public var homeAddress: IPv6Address
    public var homeAgent: IPv6Address
    public var homePrefix: IPv6Prefix
    /// In order of preference: the care-of address comes from the first usable one.
    public var interfaces: [String]
    public var lifetime: UInt32
    public var bpffs: String
    public var stateDir: String
    public var initialSequence: UInt16?
    /// Routing table and rule priority for packets from the home address (MobileNodeRouting.swift).
    public var routeTable: UInt32 = 6275
    public var rulePriority: UInt32 = 6275
    /// RFC 4285 credentials: all three, or none (unauthenticated).
    public var nai: String?
    public var spi: UInt32?
    public var keyPath: String?

    public init(homeAddress: IPv6Address, homeAgent: IPv6Address, homePrefix: IPv6Prefix, interfaces: [String],
                lifetime: UInt32 = 600, bpffs: String = "/sys/fs/bpf/mip6-mn", stateDir: String = "/run/mip6-mn",
                initialSequence: UInt16? = nil) {
        self.homeAddress = homeAddress
        self.homeAgent = homeAgent
        self.homePrefix = homePrefix
        self.interfaces = interfaces
        self.lifetime = lifetime
        self.bpffs = bpffs
        self.stateDir = stateDir
        self.initialSequence = initialSequence
    }
}

/// `mip6 mn status`: the state machine's view plus the data plane's counters.
public struct MobileNodeReport: StateFile, Sendable {
    public var status: MobileNodeStatus
    public var pid: Int32
    public var updatedAt: Date
    public var interfaces: [String]
    /// Tunnel packets from the home agent that came in fragments and the kernel reassembled
    /// (RFC 2473 §7.1(b)): "delivered", "signaling", "drop_<reason>", "deliver_failed".
    public var reassembledTunnel: [String: UInt64] = [:]

    public static let fileName = "mobilenode.json"
}
