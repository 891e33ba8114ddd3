import Testing
@testable import ControlPlane

// Inputs found by fuzz/run (libFuzzer, Sources/Mip6Fuzz), kept as byte literals so that they
// run in every `swift test` without libFuzzer. Each test calls the ControlPlane API the fuzz
// target called and checks the right outcome, not only the absence of a crash. How to add
// one: fuzz/README.md, "Turning a crash into a regression test".

@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    // MARK: KeyStore(parsing:) and CRLF line ends

    /// Target `keys`, crash-17b94e02559c5b9663b8da44153a40ad7e1d570b (selector byte 0x03 dropped):
    /// "\n" "m 4:: +256" "\r\n" "\r;". "\r\n" is a single Character in Swift, so splitting the
    /// text on "\n" kept "+256\r\n\r;" on line 2 and reported a bad SPI there; with LF line
    /// ends the same file has three fields on line 2. CRLF must read like LF.
    @Test func crlfLineEndsSplitLinesLikeLF() {
        let input: [UInt8] = [0x0a, 0x6d, 0x20, 0x34, 0x3a, 0x3a, 0x20, 0x2b, 0x32, 0x35, 0x36, 0x0d, 0x0a, 0x0d, 0x3b]
        let text = String(decoding: input, as: UTF8.self)
        #expect(throws: KeyStoreError(line: 2, reason: .fieldCount(3))) { try KeyStore(parsing: text) }
        #expect(throws: KeyStoreError(line: 2, reason: .fieldCount(3))) {
            try KeyStore(parsing: text.replacing("\r\n", with: "\n"))
        }
    }

    /// The consequence that matters: a key file saved with CRLF whose first line is a comment
    /// read as one commented-out line, i.e. an empty key store, and every BU then failed
    /// authentication.
    @Test func crlfKeyFileWithLeadingCommentKeepsItsKeys() throws {
        let text = "# MN-HA keys\r\n"
            + "mn1@example.net 2001:db8:1::100 0x1001 000102030405060708090a0b0c0d0e0f\r\n"
            + "\r\n"
            + "any@example.net any 8194 f0e1d2c3b4a5968778695a4b3c2d1e0f00112233 # all of them\r\n"
        let store = try KeyStore(parsing: text)
        #expect(store.count == 2)
        #expect(store[spi: 0x1001]?.nai == "mn1@example.net")
        #expect(store[spi: 0x1001]?.line == 2)
        #expect(store[spi: 8194]?.homeAddress == .anyInHomePrefix)
        #expect(store[spi: 8194]?.line == 4)
        #expect(store.entries == (try KeyStore(parsing: text.replacing("\r\n", with: "\n"))).entries)
    }
}
