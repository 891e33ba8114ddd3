/// RFC 2473 §7.1(b): tunnel packets that travel in fragments. A packet of 1280 bytes or less
/// whose tunnel packet exceeds the path MTU to the care-of address cannot be sent back a
/// Packet Too Big (1280 is the IPv6 minimum MTU: a loop), so the tunnel entry point fragments
/// the tunnel packet and the exit point reassembles it. XDP and TC turn one packet into one,
/// so the daemons do it through the kernel: the home agent's data plane punts such a packet,
/// the daemon sends it on a tunnel socket (the kernel writes the outer header and fragments);
/// the mobile node's kernel reassembles the fragments for its daemon's tunnel socket.
///
/// What to do with one such packet, without I/O: the same checks as the data plane's
/// (`ha_encapsulate` in bpf/ha.h, `mn_decapsulate` in bpf/mip6_mn.bpf.c).
public enum FragmentedTunnel {
    /// The IPv6 minimum MTU (RFC 8200 §5): only packets up to this size take this path; a
    /// larger one gets Packet Too Big from the data plane.
    public static let minimumMTU = 1280

    // MARK: entry point (home agent)

    /// Why the home agent did not send a punted packet.
    public enum EntryDrop: String, CaseIterable, Sendable, Codable {
        /// Not an IPv6 packet of 1280 bytes or less as its header says (the data plane punts
        /// only those).
        case malformed
        /// No binding for the destination: gone between the punt and now.
        case noBinding = "no_binding"
        /// The binding's lifetime is over (RFC 6275 §10.3.1), not yet removed.
        case expired
        /// Hop limit 1 or 0: not forwarded (the data plane leaves those to the kernel, which
        /// sends Time Exceeded, so they never come here).
        case hopLimit = "hop_limit"
    }

    public enum Entry: Equatable, Sendable {
        /// Send `packet` (the inner packet with its hop limit decremented, RFC 2473 §3.1, and a
        /// checksum left to offload finished) as the payload of a tunnel packet from the home
        /// agent to `careOf`, with the inner packet's traffic class (as the data plane copies it).
        case send(packet: [UInt8], careOf: IPv6Address)
        case drop(EntryDrop)
    }

    /// The home agent as tunnel entry point: where `inner` (an IPv6 packet for a home address,
    /// as the data plane punted it) goes. The binding cache is the truth: the data plane looked
    /// the binding up when it punted, but it may have moved, expired or gone since.
    public static func encapsulate(_ inner: [UInt8], cache: BindingCache, now: UInt64) -> Entry {
        guard let length = packetLength(inner), length <= minimumMTU else { return .drop(.malformed) }
        guard let binding = cache[IPv6Address(bytes: inner[24..<40])] else { return .drop(.noBinding) }
        guard now < binding.expiresAt else { return .drop(.expired) }
        guard inner[7] > 1 else { return .drop(.hopLimit) }
        var packet = Array(inner[0..<length])
        packet[7] -= 1 // RFC 2473 §3.1: the entry point forwards the inner packet once
        finishOffloadedChecksum(&packet)
        return .send(packet: packet, careOf: binding.careOfAddress)
    }

    /// A packet the data plane copied from an skb whose TCP or UDP checksum was left to offload
    /// (CHECKSUM_PARTIAL: sent on this host, or by a veth peer, and not through a device that
    /// finished it): its field holds the pseudo-header's sum, which the sending device would
    /// have completed. The kernel would do it (skb_checksum_help) before sending such bytes
    /// anywhere; so do we: the sum of the upper-layer bytes, field included, complemented. A
    /// field that verifies, or that holds anything else (a corrupted packet), is left alone.
    static func finishOffloadedChecksum(_ packet: inout [UInt8]) {
        guard let chain = packet.withUnsafeBytes({ try? IPv6PacketParser.walk($0) }) else { return }
        let field: Int
        switch chain.nextHeader {
        case 6: field = chain.offset + 16   // TCP (RFC 9293 §3.1)
        case 17: field = chain.offset + 6   // UDP (RFC 768)
        default: return
        }
        guard field + 2 <= chain.end else { return }
        let length = chain.end - chain.offset
        let destination = chain.routingType2Address ?? chain.destination // RFC 8200 §8.1: the final destination
        let pseudo = InternetChecksum.pseudoHeaderSum(source: chain.source, destination: destination,
                                                      nextHeader: chain.nextHeader, length: length)
        let sum = packet.withUnsafeBytes { InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: $0[chain.offset..<chain.end])) }
        guard ~InternetChecksum.fold(pseudo &+ sum) != 0,                                  // it verifies
              UInt16(packet[field]) << 8 | UInt16(packet[field + 1]) == InternetChecksum.fold(pseudo) else { return }
        var checksum = ~InternetChecksum.fold(sum)
        if checksum == 0 && chain.nextHeader == 17 { checksum = 0xffff } // RFC 768: 0 means none
        packet[field] = UInt8(checksum >> 8)
        packet[field + 1] = UInt8(checksum & 0xff)
    }

    // MARK: exit point (mobile node)

    /// What the mobile node's data plane decapsulates for (its `mip6_mn_config`).
    public struct ExitPoint: Sendable, Equatable {
        public var homeAddress: IPv6Address
        public var homeAgent: IPv6Address
        /// The registered care-of address while a registration is up; nil otherwise.
        public var careOf: IPv6Address?
        /// The care-of address of an outstanding BU: the home agent tunnels to it as soon as it
        /// accepts the BU, before the BA arrives.
        public var pendingCareOf: IPv6Address?

        public init(homeAddress: IPv6Address, homeAgent: IPv6Address, careOf: IPv6Address?, pendingCareOf: IPv6Address?) {
            self.homeAddress = homeAddress
            self.homeAgent = homeAgent
            self.careOf = careOf
            self.pendingCareOf = pendingCareOf
        }
    }

    /// Why the mobile node did not deliver a reassembled tunnel packet. The first three are the
    /// data plane's drop_tunnel_* reasons.
    public enum ExitDrop: String, CaseIterable, Sendable, Codable {
        /// No registration up, and not to the care-of address of an outstanding BU.
        case tunnelDown = "tunnel_down"
        /// The outer destination is not the care-of address.
        case notCareOf = "not_coa"
        /// The outer source is not the home agent.
        case spoofed
        /// The inner packet is not IPv6 or shorter than its header says.
        case malformed
        /// The inner destination is not the home address (multicast, which the data plane
        /// delivers unfragmented, is not re-injected from here either).
        case notHomeAddress = "not_hoa"
        /// A fragment of a Mobility Header inside the tunnel: signaling is never reassembled.
        case fragmentedSignaling = "fragmented_signaling"
    }

    public enum Exit: Equatable, Sendable {
        /// Deliver the inner packet (trimmed to its length) to the home address.
        case deliver([UInt8])
        /// A Mobility Header inside the tunnel (a Binding Refresh Request): for `MobileNodeCore`,
        /// as the data plane punts it.
        case signaling([UInt8])
        case drop(ExitDrop)
    }

    /// The mobile node as tunnel exit point (RFC 2473 §3.2, RFC 6275 §11.3.2): a tunnel packet
    /// the kernel reassembled, `inner` being its payload.
    public static func decapsulate(_ inner: [UInt8], outerSource: IPv6Address, outerDestination: IPv6Address,
                                   at exit: ExitPoint) -> Exit {
        let toPending = exit.pendingCareOf.map { $0 != .unspecified && $0 == outerDestination } ?? false
        if exit.careOf == nil && !toPending { return .drop(.tunnelDown) }
        if !toPending && outerDestination != exit.careOf { return .drop(.notCareOf) }
        if outerSource != exit.homeAgent { return .drop(.spoofed) }
        guard let length = packetLength(inner) else { return .drop(.malformed) }
        let packet = Array(inner[0..<length])
        guard IPv6Address(bytes: packet[24..<40]) == exit.homeAddress else { return .drop(.notHomeAddress) }
        let upper: IPv6PacketParser.Chain? = packet.withUnsafeBytes { try? IPv6PacketParser.walk($0, stopAtFragment: true) }
        if let upper {
            if upper.nextHeader == IPProto.mobility { return .signaling(packet) }
            if upper.nextHeader == IPProto.fragment && upper.offset < upper.end && packet[upper.offset] == IPProto.mobility {
                return .drop(.fragmentedSignaling)
            }
        }
        return .deliver(packet) // what the walk cannot read, the kernel judges (as the data plane leaves it)
    }

    /// The length of the IPv6 packet at the start of `bytes` (40 + Payload Length), or nil when
    /// it is not IPv6 or `bytes` is shorter.
    static func packetLength(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 40, bytes[0] >> 4 == 6 else { return nil }
        let length = 40 + (Int(bytes[4]) << 8 | Int(bytes[5]))
        return length <= bytes.count ? length : nil
    }
}
