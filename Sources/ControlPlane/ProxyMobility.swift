// Proxy Mobile IPv6 signaling (RFC 5213): a Proxy Binding Update is a Binding Update with the
// P flag (§8.1), sent by a mobile access gateway from its Proxy-CoA to the local mobility
// anchor with no Home Address option; a Proxy Binding Acknowledgement is a Binding
// Acknowledgement with the P flag (§8.2) and no Type 2 Routing Header. What differs is carried
// in options 8 and 22-27, gathered here.

/// The PMIPv6 options of a PBU or PBA, each kept as received (duplicates included) so that
/// the LMA can tell "missing" (status 158-162) from "present".
public struct ProxyOptions: Equatable, Sendable {
    /// MN Identifier options (RFC 4283, RFC 5213 §8.1: MUST be present): (subtype, bytes).
    public var mobileNodeIdentifiers: [(subtype: UInt8, identifier: [UInt8])] = []
    /// Home Network Prefix options (§8.3: one or more); `::/0` asks for one to be assigned.
    public var homeNetworkPrefixes: [IPv6Prefix] = []
    public var handoffIndicators: [UInt8] = []
    public var accessTechnologyTypes: [UInt8] = []
    public var linkLayerIdentifiers: [[UInt8]] = []
    public var linkLocalAddresses: [IPv6Address] = []
    public var timestamps: [ProxyTimestamp] = []

    public init() {}

    public init(_ options: [MobilityOption]) {
        for option in options {
            switch option {
            case let .mobileNodeIdentifier(subtype, identifier): mobileNodeIdentifiers.append((subtype, identifier))
            case let .homeNetworkPrefix(p): homeNetworkPrefixes.append(p)
            case let .handoffIndicator(v): handoffIndicators.append(v)
            case let .accessTechnologyType(v): accessTechnologyTypes.append(v)
            case let .mobileNodeLinkLayerIdentifier(l): linkLayerIdentifiers.append(l)
            case let .linkLocalAddress(a): linkLocalAddresses.append(a)
            case let .timestamp(t): timestamps.append(t)
            default: break
            }
        }
    }

    /// The NAI (subtype 1) when exactly one MN Identifier option is present.
    public var networkAccessIdentifier: String? {
        guard mobileNodeIdentifiers.count == 1, mobileNodeIdentifiers[0].subtype == MobilityOption.IdentifierSubtype.nai,
              !mobileNodeIdentifiers[0].identifier.isEmpty else { return nil }
        return String(validating: mobileNodeIdentifiers[0].identifier, as: UTF8.self)
    }

    public static func == (a: ProxyOptions, b: ProxyOptions) -> Bool {
        a.mobileNodeIdentifiers.map { [$0.subtype] + $0.identifier } == b.mobileNodeIdentifiers.map { [$0.subtype] + $0.identifier }
            && a.homeNetworkPrefixes == b.homeNetworkPrefixes && a.handoffIndicators == b.handoffIndicators
            && a.accessTechnologyTypes == b.accessTechnologyTypes && a.linkLayerIdentifiers == b.linkLayerIdentifiers
            && a.linkLocalAddresses == b.linkLocalAddresses && a.timestamps == b.timestamps
    }
}

extension BindingUpdate {
    /// RFC 5213 §8.1: a Proxy Binding Update has the P flag.
    public var isProxy: Bool { flags.contains(.proxy) }
    public var proxyOptions: ProxyOptions { ProxyOptions(options) }
}

extension BindingAcknowledgement {
    /// RFC 5213 §8.2: a Proxy Binding Acknowledgement has the P flag.
    public var isProxy: Bool { flags.contains(.proxy) }
    public var proxyOptions: ProxyOptions { ProxyOptions(options) }
}

extension PacketBuilder {
    /// A Proxy Binding Update from the MAG's Proxy-CoA to the LMA (RFC 5213 §6.9.1.5): no
    /// Home Address option, so the MH checksum's pseudo-header is the packet's own addresses.
    public static func proxyBindingUpdate(_ pbu: BindingUpdate, from proxyCareOf: IPv6Address, to lma: IPv6Address,
                                          hopLimit: UInt8 = 64) -> [UInt8] {
        precondition(pbu.flags.contains(.proxy), "a Proxy Binding Update has the P flag (RFC 5213 §8.1)")
        return bindingUpdate(pbu, careOf: proxyCareOf, homeAgent: lma, homeAddress: proxyCareOf, hopLimit: hopLimit)
    }

    /// A Proxy Binding Acknowledgement from the LMA to the Proxy-CoA the PBU came from
    /// (RFC 5213 §5.3.6): no Type 2 Routing Header.
    public static func proxyBindingAcknowledgement(_ pba: BindingAcknowledgement, from lma: IPv6Address,
                                                   to proxyCareOf: IPv6Address, hopLimit: UInt8 = 64) -> [UInt8] {
        precondition(pba.flags.contains(.proxy), "a Proxy Binding Acknowledgement has the P flag (RFC 5213 §8.2)")
        return bindingAcknowledgement(pba, from: lma, to: proxyCareOf, homeAddress: nil, hopLimit: hopLimit)
    }
}
