/// The Internet checksum (RFC 1071): the one's complement of the one's-complement sum of
/// 16-bit big-endian words.
///
/// The sum is accumulated as big-endian 32-bit words in a UInt64. That is equivalent to summing
/// 16-bit words because 2^16 ≡ 1 (mod 2^16 - 1); the fold at the end does the end-around carry.
public enum InternetChecksum {
    /// Unfolded partial sum of `buffer` added to `initial`. The buffer is treated as if it were
    /// padded with a zero byte to an even length. Chain calls only with even-length buffers
    /// in front (as the pseudo-header and IPv6 headers are).
    @inline(__always)
    public static func partialSum(_ buffer: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var sum = initial
        let count = buffer.count
        var i = 0
        // 4 bytes at a time: at most 2^32 additions of < 2^32 cannot overflow 64 bits.
        while i + 4 <= count {
            sum &+= UInt64(UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
        }
        if i + 2 <= count {
            sum &+= UInt64(UInt16(bigEndian: buffer.loadUnaligned(fromByteOffset: i, as: UInt16.self)))
            i += 2
        }
        if i < count {
            sum &+= UInt64(buffer[i]) << 8
        }
        return sum
    }

    public static func partialSum(_ bytes: [UInt8], initial: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { partialSum($0, initial: initial) }
    }

    /// Folds a partial sum to 16 bits with end-around carry (not yet complemented).
    @inline(__always)
    public static func fold(_ sum: UInt64) -> UInt16 {
        var s = sum
        while s >> 16 != 0 {
            s = (s & 0xffff) &+ (s >> 16)
        }
        return UInt16(s)
    }

    /// The checksum field value for `bytes` alone (no pseudo-header).
    public static func checksum(_ bytes: [UInt8]) -> UInt16 {
        ~fold(partialSum(bytes))
    }

    /// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
    /// 32-bit upper-layer length, 3 zero bytes, next header.
    public static func pseudoHeaderSum(source: IPv6Address, destination: IPv6Address,
                                       nextHeader: UInt8, length: Int) -> UInt64 {
        var sum: UInt64 = 0
        for half in [source.high, source.low, destination.high, destination.low] {
            sum &+= half >> 32
            sum &+= half & 0xffff_ffff
        }
        sum &+= UInt64(UInt32(truncatingIfNeeded: length))
        sum &+= UInt64(nextHeader)
        return sum
    }

    /// Upper-layer checksum over the IPv6 pseudo-header and `payload` (RFC 8200 §8.1,
    /// RFC 6275 §6.1.1 for the Mobility Header, RFC 4443 §2.3 for ICMPv6). `payload` must
    /// have its checksum field zeroed when computing, or intact when verifying (then a
    /// valid packet gives 0).
    public static func upperLayer(source: IPv6Address, destination: IPv6Address,
                                  nextHeader: UInt8, payload: [UInt8]) -> UInt16 {
        payload.withUnsafeBytes { upperLayer(source: source, destination: destination,
                                             nextHeader: nextHeader, payload: $0) }
    }

    public static func upperLayer(source: IPv6Address, destination: IPv6Address,
                                  nextHeader: UInt8, payload: UnsafeRawBufferPointer) -> UInt16 {
        let pseudo = pseudoHeaderSum(source: source, destination: destination,
                                     nextHeader: nextHeader, length: payload.count)
        return ~fold(partialSum(payload, initial: pseudo))
    }
}
