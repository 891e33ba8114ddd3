import Testing
@testable import ControlPlane

let ha = addr("2001:db8:1::1")
let hoa = addr("2001:db8:1::100")
let coa = addr("2001:db8:ffff::2")

@Suite("Mobility Header codec: byte vectors")
struct MobilityHeaderVectorTests {
    /// Binding Update, A|H, seq 7, lifetime 900 units (3600 s), Alternate Care-of Address option.
    /// Laid out by hand from RFC 6275 §6.1.7 and §6.2.5; the same bytes as the MH of the scapy
    /// packet in `ScapyCrossCheckTests`.
    static let buAltCoA = hex("""
        3b 03 05 00 6d 89  // Payload Proto 59, Header Len 3 (32 octets), MH Type 5, Reserved, Checksum
        00 07  // Sequence 7
        c0 00  // A (0x8000) | H (0x4000)
        03 84  // Lifetime 900 × 4 s
        01 00  // PadN with 0 data octets: moves the next option from offset 12 to 14
        03 10  // Alternate Care-of Address, length 16, at offset 14 ≡ 6 (mod 8): the 8n+6 rule
        20 01 0d b8 ff ff 00 00 00 00 00 00 00 00 00 02
        """)

    /// Binding Acknowledgement, status 0, seq 7, lifetime 900, padded to 16 octets with PadN(4).
    ///
    /// Checksum by hand (RFC 6275 §6.1.1, pseudo-header of RFC 8200 §8.1), source = home agent
    /// 2001:db8:1::1, destination = home address 2001:db8:1::100 (the Type 2 Routing Header's
    /// address, the final destination), upper-layer length 16, next header 135:
    ///   source       2001 + 0db8 + 0001 + 0000 + 0000 + 0000 + 0000 + 0001 = 2dbb
    ///   destination  2001 + 0db8 + 0001 + 0000 + 0000 + 0000 + 0000 + 0100 = 2eba
    ///   length       0000 + 0010                                           = 0010
    ///   next header  0000 + 0087                                           = 0087
    ///   MH (checksum field 0): 3b01 + 0600 + 0000 + 0000 + 0007 + 0384 + 0102 + 0000 = 458e
    ///   sum = 2dbb + 2eba + 0010 + 0087 + 458e = a29a (no carry out of 16 bits)
    ///   checksum = ~a29a = 5d65
    static let baAccepted = hex("""
        3b 01 06 00 5d 65  // Header Len 1 (16 octets), MH Type 6, checksum 0x5d65
        00 00  // Status 0, flags none
        00 07  // Sequence 7
        03 84  // Lifetime 900
        01 02 00 00  // PadN(4) to the 8-octet boundary
        """)

    /// Binding Refresh Request: the 8-octet minimum. Checksum: 2dbb + 2eba + 0008 + 0087 + 3b00 = 9804 → 67fb.
    static let brr = hex("3b 00 00 00 67 fb 00 00")

    /// Binding Error status 2 for home address 2001:db8:1::100, from the home agent to the care-of address.
    static let beStatus2 = hex("""
        3b 02 07 00 31 2e  // Header Len 2 (24 octets), MH Type 7
        02 00  // Status 2 (unrecognized MH Type), Reserved
        20 01 0d b8 00 01 00 00 00 00 00 00 00 00 01 00
        """)

    /// Binding Acknowledgement with a Binding Refresh Advice of 450 units: BRA is 2n-aligned and
    /// starts at 12, so it needs no padding and fills the header exactly.
    static let baWithBRA = hex("3b 01 06 00 5a a3 | 00 00 | 00 07 | 03 84 | 02 02 01 c2")

    /// BU with Nonce Indices (2n, at 12) then Binding Authorization Data (8n+2, at 18): no padding.
    static let buNonceAuth = hex("""
        3b 03 05 00 69 33 | 12 34 | 80 00 | 00 02
        04 04 01 02 03 04  // Nonce Indices home 0x0102, care-of 0x0304
        05 0c 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15  // Binding Authorization Data, 12 octets
        """)

    /// BU with only Binding Authorization Data: 6 octets of PadN bring it from 12 to 18 ≡ 2 (mod 8).
    static let buAuthOnly = hex("""
        3b 03 05 00 70 39 | 12 34 | 80 00 | 00 02
        01 04 00 00 00 00  // PadN(6)
        05 0c 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15
        """)

    static let authenticator: [UInt8] = [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15]

    @Test func bindingUpdateWithAlternateCareOf() throws {
        let bu = BindingUpdate(sequence: 7, flags: [.ack, .home], lifetime: 900, options: [.alternateCareOfAddress(coa)])
        #expect(MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha) == Self.buAltCoA)
        let decoded = try MobilityHeaderCodec.decode(Self.buAltCoA, source: hoa, destination: ha)
        #expect(decoded == .bindingUpdate(bu))
        #expect(bu.alternateCareOfAddress == coa)
        #expect(bu.lifetimeSeconds == 3600)
    }

    @Test func bindingAcknowledgement() throws {
        let ba = BindingAcknowledgement(status: .accepted, sequence: 7, lifetime: 900)
        #expect(MobilityHeaderCodec.encode(.bindingAcknowledgement(ba), source: ha, destination: hoa) == Self.baAccepted)
        #expect(try MobilityHeaderCodec.decode(Self.baAccepted, source: ha, destination: hoa) == .bindingAcknowledgement(ba))
    }

    @Test func bindingRefreshRequest() throws {
        #expect(MobilityHeaderCodec.encode(.bindingRefreshRequest(BindingRefreshRequest()), source: ha, destination: hoa) == Self.brr)
        #expect(try MobilityHeaderCodec.decode(Self.brr, source: ha, destination: hoa) == .bindingRefreshRequest(BindingRefreshRequest()))
    }

    @Test func bindingError() throws {
        let be = BindingError(status: BindingError.unrecognizedMHType, homeAddress: hoa)
        #expect(MobilityHeaderCodec.encode(.bindingError(be), source: ha, destination: coa) == Self.beStatus2)
        #expect(try MobilityHeaderCodec.decode(Self.beStatus2, source: ha, destination: coa) == .bindingError(be))
    }

    @Test func bindingRefreshAdviceOption() throws {
        let ba = BindingAcknowledgement(status: .accepted, sequence: 7, lifetime: 900, options: [.bindingRefreshAdvice(450)])
        #expect(MobilityHeaderCodec.encode(.bindingAcknowledgement(ba), source: ha, destination: hoa) == Self.baWithBRA)
        let decoded = try MobilityHeaderCodec.decode(Self.baWithBRA, source: ha, destination: hoa)
        guard case .bindingAcknowledgement(let got) = decoded else { Issue.record("not a BA"); return }
        #expect(got.bindingRefreshAdvice == 450)
    }

    @Test func nonceIndicesAndAuthorizationData() throws {
        let bu = BindingUpdate(sequence: 0x1234, flags: .ack, lifetime: 2,
                               options: [.nonceIndices(home: 0x0102, careOf: 0x0304),
                                         .bindingAuthorizationData(Self.authenticator)])
        #expect(MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha) == Self.buNonceAuth)
        #expect(try MobilityHeaderCodec.decode(Self.buNonceAuth, source: hoa, destination: ha) == .bindingUpdate(bu))

        let authOnly = BindingUpdate(sequence: 0x1234, flags: .ack, lifetime: 2,
                                     options: [.bindingAuthorizationData(Self.authenticator)])
        #expect(MobilityHeaderCodec.encode(.bindingUpdate(authOnly), source: hoa, destination: ha) == Self.buAuthOnly)
        #expect(try MobilityHeaderCodec.decode(Self.buAuthOnly, source: hoa, destination: ha) == .bindingUpdate(authOnly))
    }

    @Test func pad1AndMobileNodeIdentifier() throws {
        // An RFC 4283 Mobile Node Identifier (type 8, subtype 1 NAI "ab"), no alignment (§3).
        // It ends at 12 + 5 = 17; the BRA (2n) then needs one octet: Pad1. BRA ends at 22;
        // PadN(2) closes the header at 24. (Before MN-ID was decoded this test used a raw
        // `.unknown(type: 8, ...)`; the same bytes now decode as `.mobileNodeIdentifier`.)
        let bu = BindingUpdate(sequence: 1, flags: .home, lifetime: 10,
                               options: [.mobileNodeIdentifier(subtype: 1, identifier: Array("ab".utf8)),
                                         .bindingRefreshAdvice(5)])
        var expected = hex("""
            3b 02 05 00 00 00 | 00 01 | 40 00 | 00 0a
            08 03 01 61 62  // MN-ID, subtype 1 (NAI), "ab"
            00  // Pad1
            02 02 00 05  // BRA 5 units at offset 18
            01 00  // PadN(2)
            """)
        fixChecksum(&expected, source: hoa, destination: ha)
        #expect(MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha) == expected)
        #expect(try MobilityHeaderCodec.decode(expected, source: hoa, destination: ha) == .bindingUpdate(bu))
    }

    @Test func explicitPaddingIsWrittenAndDroppedOnDecode() throws {
        let bu = BindingUpdate(sequence: 1, flags: .home, lifetime: 10, options: [.pad1, .padN(3)])
        let bytes = MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha)
        #expect(Array(bytes[12...]) == [0x00, 0x01, 0x01, 0x00])
        #expect(try MobilityHeaderCodec.decode(bytes, source: hoa, destination: ha)
                == .bindingUpdate(BindingUpdate(sequence: 1, flags: .home, lifetime: 10)))
    }

    @Test func unrecognizedTypeRoundTrip() throws {
        var bytes = hex("3b 01 2a 00 00 00 | de ad be ef 00 00 00 00 00 00")
        fixChecksum(&bytes, source: coa, destination: ha)
        let m = try MobilityHeaderCodec.decode(bytes, source: coa, destination: ha)
        #expect(m == .unrecognized(type: 42, data: Array(bytes[6...])))
        #expect(MobilityHeaderCodec.encode(m, source: coa, destination: ha) == bytes)
        // Short opaque data is zero-padded to 8 octets.
        let short = MobilityHeaderCodec.encode(.unrecognized(type: 42, data: [1]), source: coa, destination: ha)
        #expect(short.count == 8 && short[6] == 1 && short[7] == 0)
    }

    @Test func returnRoutabilityTypesAreUnrecognizedHere() throws {
        // HoTI (type 1): Reserved + Home Init Cookie, 16 octets. This node is no correspondent node.
        var hoti = hex("3b 01 01 00 00 00 | 00 00 | 01 02 03 04 05 06 07 08")
        fixChecksum(&hoti, source: hoa, destination: ha)
        #expect(try MobilityHeaderCodec.decode(hoti, source: hoa, destination: ha) == .unrecognized(type: 1, data: Array(hoti[6...])))
    }

    @Test func peekType() {
        #expect(MobilityHeaderCodec.peekType(Self.buAltCoA) == 5)
        #expect(MobilityHeaderCodec.peekType(Self.baAccepted) == 6)
        #expect(MobilityHeaderCodec.peekType([0x3b, 0, 5]) == nil)
    }

    @Test func statusDescriptions() {
        #expect(BAStatus.sequenceOutOfWindow.description == "135 (sequence number out of window)")
        #expect(BAStatus.accepted.description == "0 (binding update accepted)")
        #expect(BAStatus(200).description == "200")
        #expect(BAStatus.acceptedPrefixDiscovery.isAccepted)
        #expect(!BAStatus.unspecified.isAccepted)
        #expect(BAStatus.invalidCareOfAddress.rawValue == 174)
    }

    @Test func flagBits() {
        #expect(BUFlags.ack.rawValue == 0x8000 && BUFlags.home.rawValue == 0x4000)
        #expect(BUFlags.linkLocal.rawValue == 0x2000 && BUFlags.key.rawValue == 0x1000)
        #expect(BUFlags.mapRegistration.rawValue == 0x0800 && BUFlags.mobileRouter.rawValue == 0x0400)
        #expect(BUFlags.proxy.rawValue == 0x0200)
        #expect(BAFlags.key.rawValue == 0x80 && BAFlags.mobileRouter.rawValue == 0x40 && BAFlags.proxy.rawValue == 0x20)
    }
}

@Suite("Mobility Header codec: round trips")
struct MobilityHeaderRoundTripTests {
    static let messages: [MobilityMessage] = [
        .bindingRefreshRequest(BindingRefreshRequest()),
        .bindingRefreshRequest(BindingRefreshRequest(options: [.unknown(type: 99, data: [])])),
        .bindingUpdate(BindingUpdate(sequence: 0, flags: [], lifetime: 0)),
        .bindingUpdate(BindingUpdate(sequence: 65535, flags: BUFlags(rawValue: 0xffff), lifetime: 65535)),
        .bindingUpdate(BindingUpdate(sequence: 9, flags: [.ack, .home, .linkLocal, .key], lifetime: 1,
                                     options: [.bindingRefreshAdvice(1), .alternateCareOfAddress(coa),
                                               .nonceIndices(home: 1, careOf: 2), .bindingAuthorizationData([1, 2, 3]),
                                               .unknown(type: 99, data: [UInt8](repeating: 7, count: 8)),
                                               .replayProtection(0x0707_0707_0707_0707),
                                               .alternateCareOfAddress(hoa)])),
        .bindingAcknowledgement(BindingAcknowledgement(status: .sequenceOutOfWindow, flags: [.key, .proxy],
                                                       sequence: 4, lifetime: 0)),
        .bindingAcknowledgement(BindingAcknowledgement(status: BAStatus(255), sequence: 1, lifetime: 2,
                                                       options: [.unknown(type: 255, data: [UInt8](repeating: 1, count: 255))])),
        .bindingError(BindingError(status: 1, homeAddress: hoa)),
        .bindingError(BindingError(status: 2, homeAddress: .unspecified, options: [.bindingRefreshAdvice(3)])),
        .unrecognized(type: 200, data: [UInt8](repeating: 0xab, count: 10)),
    ]

    @Test(arguments: messages)
    func roundTrip(_ m: MobilityMessage) throws {
        let bytes = MobilityHeaderCodec.encode(m, source: coa, destination: ha)
        #expect(bytes.count % 8 == 0)
        #expect(Int(bytes[1]) == bytes.count / 8 - 1)
        #expect(bytes[0] == 59)
        let back = try MobilityHeaderCodec.decode(bytes, source: coa, destination: ha)
        if case .unrecognized(let t, let data) = m {
            // Opaque data comes back with its zero padding.
            #expect(back == .unrecognized(type: t, data: data + [UInt8](repeating: 0, count: bytes.count - 6 - data.count)))
        } else {
            #expect(back == m)
        }
        // Re-encoding canonical bytes reproduces them.
        #expect(MobilityHeaderCodec.encode(back, source: coa, destination: ha) == bytes)
        // Alignment of every option as laid out (§6.2).
        if case .bindingUpdate = m { checkAlignment(bytes, from: 12) }
    }

    func checkAlignment(_ bytes: [UInt8], from start: Int) {
        var i = start
        while i < bytes.count {
            if bytes[i] == 0 { i += 1; continue }
            switch bytes[i] {
            case 2, 4: #expect(i % 2 == 0, "option \(bytes[i]) at \(i)")
            case 3: #expect(i % 8 == 6, "Alt-CoA at \(i)")
            case 5: #expect(i % 8 == 2, "BAD at \(i)")
            case 9: #expect(i % 4 == 1, "MN-HA auth at \(i)")        // RFC 4285 §5: 4n+1
            case 10: #expect(i % 8 == 2, "replay protection at \(i)") // RFC 4285 §6: 8n+2
            default: break
            }
            i += 2 + Int(bytes[i + 1])
        }
    }
}

@Suite("Mobility Header codec: decode errors")
struct MobilityHeaderErrorTests {
    let bu = MobilityHeaderVectorTests.buAltCoA

    @Test func truncatedAtEveryLength() {
        for n in 0..<bu.count {
            let cut = Array(bu.prefix(n))
            let expected: MHDecodeError = n < 8 ? .truncated : .lengthMismatch(headerLen: 3, actual: n)
            #expect(throws: expected, "length \(n)") {
                try MobilityHeaderCodec.decode(cut, source: hoa, destination: ha)
            }
        }
    }

    @Test func wrongHeaderLen() {
        var b = bu
        b[1] = 2
        #expect(throws: MHDecodeError.lengthMismatch(headerLen: 2, actual: 32)) {
            try MobilityHeaderCodec.decode(b, source: hoa, destination: ha)
        }
        #expect(throws: MHDecodeError.lengthMismatch(headerLen: 3, actual: 40)) {
            try MobilityHeaderCodec.decode(bu + [UInt8](repeating: 0, count: 8), source: hoa, destination: ha)
        }
    }

    @Test func badPayloadProto() {
        var b = bu
        b[0] = 6
        // Checked before the checksum (§9.2 order), so the stale checksum does not matter.
        #expect(throws: MHDecodeError.badPayloadProto(6)) {
            try MobilityHeaderCodec.decode(b, source: hoa, destination: ha)
        }
    }

    @Test func badChecksum() {
        var b = MobilityHeaderVectorTests.baAccepted
        b[4] = 0x12
        b[5] = 0x34
        #expect(throws: MHDecodeError.badChecksum(expected: 0x5d65, found: 0x1234)) {
            try MobilityHeaderCodec.decode(b, source: ha, destination: hoa)
        }
        // Wrong pseudo-header (e.g. the care-of address instead of the home address) fails too.
        #expect(throws: MHDecodeError.self) {
            try MobilityHeaderCodec.decode(MobilityHeaderVectorTests.baAccepted, source: ha, destination: coa)
        }
        // A corrupted data byte.
        var c = bu
        c[7] ^= 1
        #expect(throws: MHDecodeError.badChecksum(expected: 0x6d8a, found: 0x6d89)) {
            try MobilityHeaderCodec.decode(c, source: hoa, destination: ha)
        }
        // verifyChecksum: false skips it.
        #expect(throws: Never.self) { try MobilityHeaderCodec.decode(c, source: hoa, destination: ha, verifyChecksum: false) }
    }

    @Test func belowMinimumHeaderLen() {
        // BU (minimum Header Len 1) in 8 octets.
        var b = hex("3b 00 05 00 00 00 00 07")
        fixChecksum(&b, source: hoa, destination: ha)
        #expect(throws: MHDecodeError.belowMinimumLength(type: 5, length: 0)) {
            try MobilityHeaderCodec.decode(b, source: hoa, destination: ha)
        }
        // BA: minimum 1.
        var a = hex("3b 00 06 00 00 00 00 00")
        fixChecksum(&a, source: ha, destination: hoa)
        #expect(throws: MHDecodeError.belowMinimumLength(type: 6, length: 0)) {
            try MobilityHeaderCodec.decode(a, source: ha, destination: hoa)
        }
        // BE: minimum 2 (24 octets with the home address).
        var e = hex("3b 01 07 00 00 00 02 00 20 01 0d b8 00 01 00 00")
        fixChecksum(&e, source: ha, destination: hoa)
        #expect(throws: MHDecodeError.belowMinimumLength(type: 7, length: 1)) {
            try MobilityHeaderCodec.decode(e, source: ha, destination: hoa)
        }
        // HoT: minimum 2.
        var hot = hex("3b 01 03 00 00 00 00 00 00 00 00 00 00 00 00 00")
        fixChecksum(&hot, source: ha, destination: hoa)
        #expect(throws: MHDecodeError.belowMinimumLength(type: 3, length: 1)) {
            try MobilityHeaderCodec.decode(hot, source: ha, destination: hoa)
        }
        #expect(MHType.allCases.map(\.minimumHeaderLength) == [0, 1, 1, 2, 2, 1, 1, 2])
    }

    @Test func optionOverrun() {
        // Alt-CoA claims 16 octets with 2 left.
        var a = hex("3b 01 05 00 00 00 | 00 01 | 40 00 | 00 01 | 03 10 00 00")
        fixChecksum(&a, source: hoa, destination: ha)
        #expect(throws: MHDecodeError.optionOverrun(offset: 12)) {
            try MobilityHeaderCodec.decode(a, source: hoa, destination: ha)
        }
        // A lone type octet at the very end has no length octet.
        var b = hex("3b 01 05 00 00 00 | 00 01 | 40 00 | 00 01 | 00 00 00 01")
        fixChecksum(&b, source: hoa, destination: ha)
        #expect(throws: MHDecodeError.optionOverrun(offset: 15)) {
            try MobilityHeaderCodec.decode(b, source: hoa, destination: ha)
        }
        // PadN one octet too long.
        var c = hex("3b 01 05 00 00 00 | 00 01 | 40 00 | 00 01 | 01 03 00 00")
        fixChecksum(&c, source: hoa, destination: ha)
        #expect(throws: MHDecodeError.optionOverrun(offset: 12)) {
            try MobilityHeaderCodec.decode(c, source: hoa, destination: ha)
        }
    }

    @Test func badFixedOptionLengths() {
        let cases: [(String, UInt8, Int)] = [
            ("02 03 00 00 00 00 00 00 00 00 00 00", 2, 3),                  // BRA must be 2
            ("03 08 00 00 00 00 00 00 00 00 00 00", 3, 8),                  // Alt-CoA must be 16
            ("03 11 " + String(repeating: "00 ", count: 17) + "00", 3, 17),    // (then Pad1)
            ("04 02 00 00 00 00 00 00 00 00 00 00", 4, 2),                  // Nonce Indices must be 4
        ]
        for (options, type, length) in cases {
            var b = hex("3b 00 05 00 00 00 | 00 01 | 40 00 | 00 01") + hex(options)
            b[1] = UInt8(b.count / 8 - 1)
            fixChecksum(&b, source: hoa, destination: ha)
            #expect(throws: MHDecodeError.badOptionLength(type: type, length: length)) {
                try MobilityHeaderCodec.decode(b, source: hoa, destination: ha)
            }
        }
    }

    @Test func errorFieldOffsets() {
        #expect(MHDecodeError.badPayloadProto(6).fieldOffset == 0)
        #expect(MHDecodeError.belowMinimumLength(type: 5, length: 0).fieldOffset == 1)
        #expect(MHDecodeError.badChecksum(expected: 1, found: 2).fieldOffset == nil)
    }
}
