import Testing
@testable import ControlPlane

@Suite("Internet checksum")
struct ChecksumTests {
    /// Straightforward 16-bit reference implementation (RFC 1071 §4.1).
    func reference(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    @Test func rfc1071Example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2, so the checksum is 0x220d.
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        #expect(InternetChecksum.fold(InternetChecksum.partialSum(bytes)) == 0xddf2)
        #expect(InternetChecksum.checksum(bytes) == 0x220d)
    }

    @Test func edgeCases() {
        #expect(InternetChecksum.checksum([]) == 0xffff)
        #expect(InternetChecksum.checksum([0xff, 0xff]) == 0)
        #expect(InternetChecksum.checksum([0xff, 0xff, 0xff, 0xff]) == 0)
        #expect(InternetChecksum.checksum([0x12]) == ~UInt16(0x1200))
        #expect(InternetChecksum.checksum([0x12, 0x34, 0x56]) == ~UInt16(0x1234 + 0x5600))
    }

    @Test func matchesReferenceOnEveryLength() {
        var rng = SystemRandomNumberGenerator()
        for length in 0...200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(InternetChecksum.checksum(bytes) == reference(bytes), "length \(length)")
        }
        let ones = [UInt8](repeating: 0xff, count: 4001)
        #expect(InternetChecksum.checksum(ones) == reference(ones))
    }

    @Test func pseudoHeaderEqualsExplicitBytes() {
        // RFC 8200 §8.1: source, destination, 32-bit length, 24 zero bits, next header.
        let src = addr("2001:db8:1::100"), dst = addr("2001:db8:1::1")
        let payload: [UInt8] = Array(0..<37)
        var explicit = src.bytes + dst.bytes + [0, 0, 0, 37, 0, 0, 0, 135]
        explicit += payload
        #expect(InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 135, payload: payload)
                == reference(explicit))
    }

    @Test func verifiesToZero() {
        let src = addr("2001:db8:ffff::2"), dst = addr("2001:db8:1::1")
        var payload: [UInt8] = [0x3b, 0, 0, 0, 0, 0, 0, 0]
        let c = InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 135, payload: payload)
        payload[4] = UInt8(c >> 8)
        payload[5] = UInt8(c & 0xff)
        #expect(InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 135, payload: payload) == 0)
    }

    @Test func fastOnLargeBuffers() {
        let big = [UInt8](repeating: 0xa5, count: 1 << 20)
        let start = ContinuousClock.now
        var x: UInt16 = 0
        for _ in 0..<10 { x ^= InternetChecksum.checksum(big) }
        #expect(x == 0 || x != 0)
        // 10 MiB even in a debug build; a byte-at-a-time loop would be several times slower.
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
