import ControlPlane
import DataPlane

/// What `mip6 mag` was asked to do (RFC 5213 mobile access gateway).
public struct MobileAccessGatewayOptions: Sendable {
    /// Access links, where mobile nodes attach: each gets the shared MAC and link-local address.
    public var accessInterfaces: [String]
    /// The core interface, towards the LMAs: PBUs and tunnels leave by it, PBAs and the
    /// downlink tunnel arrive on it.
    public var coreInterface: String
    /// The Proxy-CoA (RFC 5213 §2.2): the MAG's address on the core side.
    public var proxyCareOf: IPv6Address
    /// The LMA of mobile nodes whose policy line names none.
    public var lma: IPv6Address
    /// The policy file (`mn` lines: NAI, MAC, prefix or pool, LMA), read at start and on SIGHUP.
    public var policyPath: String
    /// FixedMAGLinkLocalAddressOnAllAccessLinks and FixedMAGLinkLayerAddressOnAllAccessLinks
    /// (RFC 5213 §9.3): the same on every MAG, so a host never sees its router change.
    public var linkLocal: IPv6Address
    public var mac: [UInt8]
    /// Lifetime asked for in each PBU, seconds.
    public var lifetime: UInt32
    /// Period of the unicast RAs to each registered node, seconds (0: only on change and RS).
    public var raPeriod: Double
    public var bpffs: String
    public var stateDir: String

    public static let defaultMAC: [UInt8] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01] // RFC 7042 documentation range, locally administered

    public init(accessInterfaces: [String], coreInterface: String, proxyCareOf: IPv6Address, lma: IPv6Address,
                policyPath: String, linkLocal: IPv6Address = IPv6Address("fe80::1")!, mac: [UInt8] = defaultMAC,
                lifetime: UInt32 = 60, raPeriod: Double = 3, bpffs: String = "/sys/fs/bpf/mip6-mag",
                stateDir: String = "/run/mip6-mag") {
        self.accessInterfaces = accessInterfaces
        self.coreInterface = coreInterface
        self.proxyCareOf = proxyCareOf
        self.lma = lma
        self.policyPath = policyPath
        self.linkLocal = linkLocal
        self.mac = mac
        self.lifetime = lifetime
        self.raPeriod = raPeriod
        self.bpffs = bpffs
        self.stateDir = stateDir
    }
}
