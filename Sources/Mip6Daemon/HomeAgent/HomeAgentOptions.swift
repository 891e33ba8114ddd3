import ControlPlane
import DataPlane
import Mip6Store

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
    /// The shared binding store (issue 12); nil: bindings live in this node's maps only.
    public var store: StoreOptions?
    /// Announce the anycast home prefix through a BGP speaker while ready (issue 12).
    public var announce: AnnounceOptions?
    /// The home prefix is on no link (RFC 6275 §3.1's virtual home network): the home agent
    /// address may sit on any interface (lo), no DAD, no proxy ND.
    public var virtualHome = false

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

/// --store etcd+http://... --store-prefix P --replica-id ID
public struct StoreOptions: Sendable {
    public var endpoints: [String]
    public var prefix: String
    public var replicaID: String
    /// A watch whose newest heartbeat is older than this while the store answers withdraws
    /// the announcement (it would forward to care-of addresses other replicas replaced).
    public var maxLagMilliseconds: UInt32 = 1000
    /// etcd's gRPC API (plain-text endpoints) or its JSON gateway.
    public var api: EtcdClient.API = .grpc

    public init(endpoints: [String], prefix: String, replicaID: String) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.replicaID = replicaID
    }
}

/// --announce bird:SOCKET:PROTOCOL: `birdc enable/disable PROTOCOL` on that control socket.
/// A lagging replica enables PROTOCOL_lag instead, which BIRD exports with a longer AS path:
/// the router prefers the others, and if every replica lags (a store problem hits them all at
/// once) it still reaches them all, instead of nobody.
public struct AnnounceOptions: Sendable {
    public var birdSocket: String
    public var protocolName: String
    public var laggingProtocolName: String { protocolName + "_lag" }
    /// After withdrawing at a graceful stop, how long to keep forwarding before exiting
    /// (the router needs a moment to move the traffic; about two BFD intervals).
    public var withdrawDelayMilliseconds: UInt32 = 300

    public init(birdSocket: String, protocolName: String) {
        self.birdSocket = birdSocket
        self.protocolName = protocolName
    }

    /// Parses bird:SOCKET:PROTOCOL.
    public static func parse(_ s: String) -> AnnounceOptions? {
        let parts = s.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[0] == "bird", parts[1].hasPrefix("/"), !parts[2].isEmpty else { return nil }
        return AnnounceOptions(birdSocket: parts[1], protocolName: parts[2])
    }
}
