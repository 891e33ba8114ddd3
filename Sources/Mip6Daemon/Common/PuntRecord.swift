import CMip6

/// One record of a daemon's signaling ring buffer (struct mip6_punt_hdr + the packet from
/// its IPv6 header on), as every data-plane program punts it (bpf/lib punt helper).
public struct PuntRecord {
    public let kind: UInt32
    public let ifindex: UInt32
    /// bpf_ktime_get_ns() when the data plane punted it (CLOCK_MONOTONIC).
    public let timestampNanoseconds: UInt64
    /// The frame's Ethernet source (a MAG identifies a mobile node by it).
    public let sourceMAC: [UInt8]
    public let packet: [UInt8]
    /// `packet` is the whole packet (false only for a head taken with `head: true`).
    public let isWhole: Bool

    /// nil for a record shorter than its header or a packet the data plane truncated
    /// (longer than MIP6_PUNT_MAX): never half-parsed. `head`: a record that carries only the
    /// first bytes of its packet on purpose (the MAG's attach trigger, whose header is the
    /// message) is taken as it is; `packet` is then those bytes.
    public init?(_ record: UnsafeRawBufferPointer, head: Bool = false) {
        let hdrSize = MemoryLayout<mip6_punt_hdr>.size
        guard record.count >= hdrSize else { return nil }
        let hdr = record.loadUnaligned(as: mip6_punt_hdr.self)
        let len = Int(hdr.len)
        guard len <= record.count - hdrSize, hdr.len == hdr.orig_len || (head && hdr.len < hdr.orig_len) else { return nil }
        kind = hdr.kind
        ifindex = hdr.ifindex
        timestampNanoseconds = hdr.tstamp_ns
        sourceMAC = withUnsafeBytes(of: hdr.src_mac) { Array($0) }
        isWhole = hdr.len == hdr.orig_len
        packet = Array(record[hdrSize..<hdrSize + len])
    }
}
