import CMip6
import DataPlane

/// Gives a program's token bucket (an array of one `struct mip6_token_bucket`, e.g. its ICMPv6
/// error budget) all the credit it can hold, so a test's first packets are never limited; the
/// limiters themselves are tested by emptying it.
public func fillTokenBucket(_ map: BPFMapHandle) throws {
    let tb = try BPFMap<UInt32, mip6_token_bucket>(map)
    var full: mip6_token_bucket = zeroed()
    full.credit_ns = UInt64.max / 2
    full.last_ns = monotonicNanoseconds()
    try tb.update(0, full)
}
