// Router Advertisements and Router Solicitations (RFC 4861 §4.1, §4.2) for the mobile access
// gateway's access links. A PMIPv6 MAG emulates the mobile node's home link (RFC 5213 §6.7):
// it advertises only that node's home network prefixes, from the link-local and link-layer
// addresses every access link of every MAG shares (§6.8, §6.9.3; FixedMAGLinkLocalAddressOn-
// AllAccessLinks, FixedMAGLinkLayerAddressOnAllAccessLinks), so the node never sees its default
// router change.

/// ICMPv6 types and Neighbor Discovery option types used here (RFC 4861 §4, §4.6).
enum NeighborDiscovery {
    static let routerSolicitation: UInt8 = 133
    static let routerAdvertisement: UInt8 = 134
    static let sourceLinkLayerOption: UInt8 = 1
    static let prefixInformationOption: UInt8 = 3
    static let mtuOption: UInt8 = 5
    /// RFC 8200 §5: the smallest link MTU IPv6 allows.
    static let minimumMTU: UInt32 = 1280
}

extension PacketBuilder {
    /// A Router Advertisement (RFC 4861 §4.2) with, in this order, a Source Link-Layer Address
    /// option (§4.6.1), an MTU option (§4.6.4) and one Prefix Information option per prefix
    /// (§4.6.2) with L and A set (on-link, use for SLAAC). Hop limit 255 (§6.1.2: receivers
    /// drop anything else), checksum filled in (RFC 4443 §2.3).
    ///
    /// The MAG sends it to ff02::1 but L2-unicast to one mobile node's MAC, so that on a shared
    /// segment each node sees only its own prefixes (RFC 5213 §6.7, home network emulation).
    ///
    /// - Parameters:
    ///   - curHopLimit: the hop limit hosts should use (§4.2 Cur Hop Limit; 0 = unspecified).
    ///   - routerLifetime: seconds the sender is a default router (§4.2; at most 9000, §6.2.1).
    ///   - reachableTime, retransTimer: milliseconds, 0 = unspecified (§4.2).
    ///   - mtu: link MTU to advertise; nil leaves the option out.
    ///   - sourceLinkLayer: the sender's link-layer address; nil leaves the option out.
    public static func routerAdvertisement(source: IPv6Address = IPv6Address("fe80::1")!,
                                           destination: IPv6Address = IPv6Address("ff02::1")!,
                                           hopLimit: UInt8 = 255, curHopLimit: UInt8 = 64,
                                           routerLifetime: UInt16 = 1800, reachableTime: UInt32 = 0,
                                           retransTimer: UInt32 = 0, prefixes: [IPv6Prefix],
                                           validLifetime: UInt32 = 7200, preferredLifetime: UInt32 = 1800,
                                           mtu: UInt32?, sourceLinkLayer: [UInt8]?) -> [UInt8] {
        // §4.2: Type, Code, Checksum, Cur Hop Limit, M|O|Reserved (all 0: addresses by SLAAC, no
        // DHCPv6; the RFC 4191 preference bits stay 00, medium), Router Lifetime, Reachable
        // Time, Retrans Timer.
        var body: [UInt8] = [NeighborDiscovery.routerAdvertisement, 0, 0, 0, curHopLimit, 0,
                             UInt8(routerLifetime >> 8), UInt8(routerLifetime & 0xff)]
        append32(reachableTime, to: &body)
        append32(retransTimer, to: &body)
        if let sourceLinkLayer {
            linkLayerOption(type: NeighborDiscovery.sourceLinkLayerOption, sourceLinkLayer, into: &body)
        }
        if let mtu {
            // §4.6.4: Type 5, Length 1 (8 octets), Reserved (16 bits), MTU.
            body.append(contentsOf: [NeighborDiscovery.mtuOption, 1, 0, 0])
            append32(mtu, to: &body)
        }
        for prefix in prefixes {
            // §4.6.2: Type 3, Length 4 (32 octets), Prefix Length, L (0x80) | A (0x40),
            // Valid Lifetime, Preferred Lifetime, Reserved2, Prefix (host bits are already 0).
            body.append(contentsOf: [NeighborDiscovery.prefixInformationOption, 4, UInt8(prefix.length), 0xc0])
            append32(validLifetime, to: &body)
            append32(min(preferredLifetime, validLifetime), to: &body) // §4.6.2: preferred <= valid
            append32(0, to: &body)
            prefix.address.append(to: &body)
        }
        return icmpv6(body, source: source, destination: destination, hopLimit: hopLimit)
    }

    private static func append32(_ v: UInt32, to out: inout [UInt8]) {
        out.append(contentsOf: [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)])
    }
}

extension IPv6PacketParser {
    /// Parses an IPv6 packet carrying an ICMPv6 Router Solicitation (RFC 4861 §4.1) and
    /// validates it as §6.1.1 asks: hop limit 255, valid checksum, code 0, ICMP length >= 8,
    /// every option with a non-zero length, and no Source Link-Layer Address option when the
    /// source is the unspecified address. Returns nil for anything else (never throws: the
    /// access link is untrusted input). `sourceLinkLayer` is the first such option's address
    /// with its padding (6 bytes on Ethernet).
    public static func parseRouterSolicitation(_ bytes: [UInt8]) -> (source: IPv6Address, sourceLinkLayer: [UInt8]?)? {
        bytes.withUnsafeBytes { p -> (source: IPv6Address, sourceLinkLayer: [UInt8]?)? in
            guard let chain = try? walk(p),
                  chain.nextHeader == IPProto.icmpv6,
                  chain.hopLimit == 255,
                  chain.end - chain.offset >= 8
            else { return nil }
            let icmp = UnsafeRawBufferPointer(rebasing: p[chain.offset..<chain.end])
            guard icmp[0] == NeighborDiscovery.routerSolicitation, icmp[1] == 0,
                  InternetChecksum.upperLayer(source: chain.source, destination: chain.checksumDestination,
                                              nextHeader: IPProto.icmpv6, payload: icmp) == 0
            else { return nil }
            // §4.1: Type, Code, Checksum, Reserved (4), then options.
            var sourceLinkLayer: [UInt8]?
            var i = 8
            while i < icmp.count {
                guard i + 2 <= icmp.count else { return nil }
                let length = Int(icmp[i + 1]) * 8   // §4.6: units of 8 octets, 0 is invalid
                guard length > 0, i + length <= icmp.count else { return nil }
                if icmp[i] == NeighborDiscovery.sourceLinkLayerOption, sourceLinkLayer == nil {
                    sourceLinkLayer = Array(icmp[i + 2..<i + length])
                }
                i += length
            }
            // §6.1.1: "If the IP source address is the unspecified address, there is no source
            // link-layer address option in the message."
            if chain.source.isUnspecified && sourceLinkLayer != nil { return nil }
            return (chain.source, sourceLinkLayer)
        }
    }
}
