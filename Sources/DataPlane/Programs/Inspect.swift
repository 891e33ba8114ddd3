import CMip6
import ControlPlane
import Glibc

/// One binding as the inspection commands show it (read from the pinned maps).
public struct BindingView: Codable, Sendable, Equatable {
    public var homeAddress: String
    public var careOfAddress: String
    public var sequence: UInt16
    public var lifetime: UInt32
    public var remaining: UInt32
    public var flags: [String]
    /// With L: the link-local address defended with the home address (RFC 6275 §10.3.1);
    /// absent otherwise, or when its data-plane entry is missing.
    public var linkLocal: String?
    public var packetsToMN: UInt64
    public var bytesToMN: UInt64
    public var packetsFromMN: UInt64
    public var bytesFromMN: UInt64
}

extension HomeAgentMaps {
    /// Every binding with its counters, sorted by home address.
    public func bindingViews(now: UInt64 = monotonicNanoseconds()) throws -> [BindingView] {
        var out: [BindingView] = []
        for (hoa, v) in try readBindings() {
            out.append(try view(hoa, v, now: now))
        }
        return out.sorted { $0.homeAddress < $1.homeAddress }
    }

    /// One binding, or nil.
    public func bindingView(_ hoa: IPv6Address, now: UInt64 = monotonicNanoseconds()) throws -> BindingView? {
        guard let v = try bindings.lookup(Self.key(hoa)) else { return nil }
        return try view(hoa, v, now: now)
    }

    private func view(_ hoa: IPv6Address, _ v: mip6_binding, now: UInt64) throws -> BindingView {
        let s = try stats(for: hoa)
        let flags = BUFlags(rawValue: v.flags)
        var names: [String] = []
        for (f, n) in [(BUFlags.ack, "A"), (.home, "H"), (.linkLocal, "L"), (.key, "K")] where flags.contains(f) { names.append(n) }
        let remaining = v.expires_ns > now ? UInt32(clamping: (v.expires_ns - now) / 1_000_000_000) : 0
        let ll = hoa.derivedLinkLocal
        let linkLocal = try flags.contains(.linkLocal) && linkLocalEntry(ll) == hoa ? "\(ll)" : nil
        return BindingView(homeAddress: "\(hoa)", careOfAddress: "\(IPv6Address(cAddress: v.coa))", sequence: v.seq,
                           lifetime: v.lifetime_s, remaining: remaining, flags: names, linkLocal: linkLocal,
                           packetsToMN: s.to_mn_packets, bytesToMN: s.to_mn_bytes,
                           packetsFromMN: s.from_mn_packets, bytesFromMN: s.from_mn_bytes)
    }
}
