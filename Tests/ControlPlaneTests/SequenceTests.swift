import Testing
@testable import ControlPlane

@Suite("Sequence numbers modulo 2^16 (RFC 6275 §9.5.1)")
struct SequenceTests {
    @Test func basics() {
        #expect(SequenceNumber.isNewer(1, than: 0))
        #expect(!SequenceNumber.isNewer(0, than: 1))
        #expect(!SequenceNumber.isNewer(5, than: 5))
    }

    @Test func wrapAround() {
        // 0 follows 65535.
        #expect(SequenceNumber.isNewer(0, than: 65535))
        #expect(!SequenceNumber.isNewer(65535, than: 0))
        #expect(SequenceNumber.isNewer(10, than: 65530))
    }

    @Test func halfWindow() {
        // Distance 32767 is newer; 32768 lies in "the last number and the preceding 32768 values".
        #expect(SequenceNumber.isNewer(32767, than: 0))
        #expect(!SequenceNumber.isNewer(32768, than: 0))
        #expect(SequenceNumber.isNewer(32768, than: 1))
        #expect(!SequenceNumber.isNewer(0, than: 32768))
        #expect(SequenceNumber.isNewer(0, than: 32769))
        #expect(SequenceNumber.isNewer(100 &+ 32767, than: 100))
        #expect(!SequenceNumber.isNewer(100 &+ 32768, than: 100))
    }

    @Test func exhaustiveAgainstDefinition() {
        var mismatches = 0
        for b in stride(from: 0, through: 65535, by: 4099) {
            for a in 0...65535 {
                let d = (a - b + 65536) % 65536
                if SequenceNumber.isNewer(UInt16(a), than: UInt16(b)) != (1...32767).contains(d) { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }
}
