/// Binding Update sequence numbers (RFC 6275 §9.5.1).
public enum SequenceNumber {
    /// RFC 6275 §9.5.1: sequence numbers are a free-running counter modulo 2^16; a received number
    /// is "less than or equal to" the last one if it lies in the range of the last number and the
    /// preceding 32768 values, inclusive. So `a` is newer than `b` iff (a - b) mod 65536 is in
    /// 1...32767.
    @inline(__always)
    public static func isNewer(_ a: UInt16, than b: UInt16) -> Bool {
        let distance = a &- b
        return distance != 0 && distance < 0x8000
    }
}
