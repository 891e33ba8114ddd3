import Foundation
import Logging
import Testing
@testable import ControlPlane

// MN-HA authentication (RFC 4285 with the RFC 4283 MN-ID option).
//
// Vectors computed independently with Python (hmac/hashlib) and scapy 2.5 (/usr/bin/python3),
// whose MIP6OptMNID / MIP6OptReplayProtection / MIP6OptMsgAuth lay the options out with their
// own alignment rules (none, 8n+2, 4n+1) and whose MH checksum is its own. Pasted here once:
//
//     import hmac, hashlib, calendar
//     from scapy.layers.inet6 import *
//     ha='2001:db8:1::1'; hoa='2001:db8:1::100'; coa='2001:db8:ffff::2'
//     key=b'MN-HA secret--16'
//     ts=((calendar.timegm((2025,1,1,0,0,0))+2208988800)<<32) | 0x80000000
//     def a16(x): return inet_pton(socket.AF_INET6, x)
//     def opts(auth): return [MIP6OptMNID(subtype=1, id=b'mn1@example.com'), MIP6OptReplayProtection(timestamp=ts),
//                             MIP6OptMsgAuth(subtype=1, mspi=4096, authdata=auth)]
//     def mh(pkt, cls):
//         b = bytearray(raw(pkt[cls])); b[4:6] = b'\0\0'; return bytes(b)
//     def spi_end(b):   # last option is the auth option: find it by walking TLVs
//         i = 12
//         while True:
//             if b[i] == 0: i += 1; continue
//             if b[i] == 9: return i + 7
//             i += 2 + b[i+1]
//     for name, build, cls in [
//         ('BU', lambda a: IPv6(src=coa, dst=ha, hlim=64)/IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
//             /MIP6MH_BU(seq=0x1234, flags='AH', mhtime=150, options=opts(a)), MIP6MH_BU),
//         ('BA', lambda a: IPv6(src=ha, dst=coa, hlim=64)/IPv6ExtHdrRouting(type=2, addresses=[hoa], segleft=1)
//             /MIP6MH_BA(status=0, flags=0, seq=0x1234, mhtime=150, options=opts(a)), MIP6MH_BA)]:
//         b = mh(build(b'\0'*12), cls)
//         e = spi_end(b)
//         auth = hmac.new(key, a16(coa) + a16(hoa) + b[:e], hashlib.sha1).digest()[:12]
//         p = build(auth)
//         print(name, 'ts', hex(ts), 'spiEnd', e, 'auth', auth.hex())
//         print(name, 'mh ', raw(p[cls]).hex())
//         print(name, 'pkt', raw(p).hex())
//     # and a second key and message:
//     print(hmac.new(b'\x0b'*20, a16(coa) + a16(hoa) + b'Hi There', hashlib.sha1).hexdigest()[:24])
enum AuthVectors {
    static let key = MobilityKey(bytes: Array("MN-HA secret--16".utf8))
    static let keyHex = "4d4e2d4841207365637265742d2d3136"
    static let nai = "mn1@example.com"
    static let spi: UInt32 = 4096
    /// 2025-01-01 00:00:00.5 UTC as an NTP timestamp.
    static let timestamp: UInt64 = 0xeb1f_0400_8000_0000
    static let association = MNHASecurityAssociation(nai: nai, spi: spi, key: key)

    static let buAuthenticator = hex("433420bffe8a0f08967523f5")
    static let baAuthenticator = hex("7087c17f67632e1b1eed2987")
    /// MH data runs through the SPI: 52 octets here.
    static let spiEnd = 52

    static let buMH = hex("""
        3b 07 05 00 20b0 | 1234 c000 0096               // BU seq 0x1234, A|H, lifetime 150
        08 10 01 6d6e31406578616d706c652e636f6d         // MN-ID at 12: subtype 1 NAI "mn1@example.com"
        01 02 0000                                      // PadN(4): replay protection at 8n+2
        0a 08 eb1f040080000000                          // replay protection at 34
        00                                              // Pad1: authentication at 4n+1
        09 11 01 00001000 433420bffe8a0f08967523f5      // MN-HA auth at 45, SPI 4096, authenticator
        """)
    static let buPacket = hex("""
        6000000000583c4020010db8ffff0000000000000000000220010db8000100000000000000000001870201020000c910
        20010db80001000000000000000001003b07050020b01234c00000960810016d6e31406578616d706c652e636f6d0102
        00000a08eb1f0400800000000009110100001000433420bffe8a0f08967523f5
        """)
    static let baMH = hex("""
        3b 07 06 00 fba7 | 00 00 1234 0096              // BA status 0, seq 0x1234, lifetime 150
        08 10 01 6d6e31406578616d706c652e636f6d
        01 02 0000
        0a 08 eb1f040080000000
        00
        09 11 01 00001000 7087c17f67632e1b1eed2987
        """)
    static let baPacket = hex("""
        6000000000582b4020010db800010000000000000000000120010db8ffff00000000000000000002870202010000000020
        010db80001000000000000000001003b070600fba70000123400960810016d6e31406578616d706c652e636f6d01020000
        0a08eb1f04008000000000091101000010007087c17f67632e1b1eed2987
        """)

    static var options: [MobilityOption] {
        [.mobileNodeIdentifier(subtype: 1, identifier: Array(nai.utf8)), .replayProtection(timestamp),
         .mobilityMessageAuthentication(subtype: 1, spi: spi, authenticator: buAuthenticator)]
    }
}

/// A wall clock the test moves by hand, or that follows a `TestClock` (so that the monotonic
/// and the wall clock advance together), plus an offset.
final class TestWallClock: WallClock, @unchecked Sendable {
    var base: UInt64
    var follow: TestClock?
    var offsetSeconds: Double = 0

    init(_ base: UInt64 = AuthVectors.timestamp, following: TestClock? = nil) {
        self.base = base
        self.follow = following
    }

    func ntpTimestamp() -> UInt64 {
        var t = base
        if let follow { t &+= UInt64(Double(follow.now) / 1e9 * 4_294_967_296) }
        let offset = Int64(offsetSeconds * 4_294_967_296)
        return t &+ UInt64(bitPattern: offset)
    }

    func advance(seconds: Double) { base &+= UInt64(seconds * 4_294_967_296) }
}

func ntp(_ seconds: Double) -> UInt64 { UInt64(seconds * 4_294_967_296) }

// MARK: - Codec

@Suite("MN-HA options (RFC 4283, RFC 4285): codec")
struct MNHAOptionCodecTests {
    @Test func decodesTheScapyVector() throws {
        let m = try MobilityHeaderCodec.decode(AuthVectors.buMH, source: hoa, destination: ha)
        guard case .bindingUpdate(let bu) = m else { Issue.record("\(m)"); return }
        #expect(bu.sequence == 0x1234 && bu.flags == [.ack, .home] && bu.lifetime == 150)
        #expect(bu.options == AuthVectors.options)
    }

    @Test func encodesTheScapyVector() {
        // The codec alone (no sealing): same options, same layout, same checksum as scapy.
        let bu = BindingUpdate(sequence: 0x1234, flags: [.ack, .home], lifetime: 150, options: AuthVectors.options)
        #expect(MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha) == AuthVectors.buMH)
    }

    @Test func optionBytes() {
        func bytes(_ o: MobilityOption) -> [UInt8] { var out: [UInt8] = []; o.append(to: &out); return out }
        #expect(bytes(.mobileNodeIdentifier(subtype: 1, identifier: Array("a@b".utf8))) == hex("08 04 01 614062"))
        #expect(bytes(.replayProtection(0x0102_0304_0506_0708)) == hex("0a 08 0102030405060708"))
        #expect(bytes(.mobilityMessageAuthentication(subtype: 2, spi: 0xdead_beef, authenticator: [9, 9]))
                == hex("09 07 02 deadbeef 0909"))
    }

    @Test(arguments: [
        // Type, Option Length, data: each too short / wrong for its fixed fields.
        (UInt8(8), [UInt8]()),                        // MN-ID without even a subtype
        (UInt8(9), [1, 0, 0, 0x10]),                  // auth: subtype + 3 octets of SPI
        (UInt8(10), [1, 2, 3, 4, 5, 6, 7]),           // replay: 7 octets
        (UInt8(10), [1, 2, 3, 4, 5, 6, 7, 8, 9]),     // replay: 9 octets
    ])
    func strictLengths(type: UInt8, data: [UInt8]) {
        var mh: [UInt8] = [0x3b, 0, 5, 0, 0, 0, 0, 1, 0x40, 0, 0, 10, type, UInt8(data.count)] + data
        mh += [UInt8](repeating: 0, count: (8 - mh.count % 8) % 8)  // Pad1s
        mh[1] = UInt8(mh.count / 8 - 1)
        fixChecksum(&mh, source: hoa, destination: ha)
        #expect(throws: MHDecodeError.badOptionLength(type: type, length: data.count)) {
            try MobilityHeaderCodec.decode(mh, source: hoa, destination: ha)
        }
    }

    @Test func emptyIdentifierAndLongAuthenticatorDecode() throws {
        // Lengths the formats allow: MN-ID with only a subtype; any Authentication Data length.
        let bu = BindingUpdate(sequence: 1, flags: .home, lifetime: 1,
                               options: [.mobileNodeIdentifier(subtype: 1, identifier: []),
                                         .mobilityMessageAuthentication(subtype: 1, spi: 300, authenticator: [UInt8](repeating: 1, count: 20))])
        let bytes = MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha)
        #expect(try MobilityHeaderCodec.decode(bytes, source: hoa, destination: ha) == .bindingUpdate(bu))
    }

    @Test(arguments: 0..<8)
    func alignmentAfterAnyPrefix(prefix: Int) throws {
        // An MN-ID of every length in front: replay protection at 8n+2, auth at 4n+1 (RFC 4285
        // §6, §5), MN-ID anywhere (RFC 4283 §3); the header a multiple of 8 octets.
        let id = [UInt8](repeating: 0x61, count: prefix + 1)
        let bu = BindingUpdate(sequence: 1, flags: .home, lifetime: 1,
                               options: [.mobileNodeIdentifier(subtype: 1, identifier: id), .replayProtection(7),
                                         .mobilityMessageAuthentication(subtype: 1, spi: 256, authenticator: [UInt8](repeating: 0, count: 12))])
        let bytes = MobilityHeaderCodec.encode(.bindingUpdate(bu), source: hoa, destination: ha)
        #expect(bytes.count % 8 == 0)
        let tlvs = try #require(MobilityOption.offsets(in: bytes, from: 12))
        #expect(tlvs.first?.offset == 12)
        let replay = try #require(tlvs.first { $0.type == 10 })
        let auth = try #require(tlvs.first { $0.type == 9 })
        #expect(replay.offset % 8 == 2)
        #expect(auth.offset % 4 == 1)
        #expect(try MobilityHeaderCodec.decode(bytes, source: hoa, destination: ha) == .bindingUpdate(bu))
    }
}

// MARK: - Authenticator

@Suite("MN-HA authenticator (RFC 4285 §5.1)")
struct MNHAAuthenticatorTests {
    @Test func hmacVectors() {
        var data = Array(AuthVectors.buMH.prefix(AuthVectors.spiEnd))
        data[4] = 0
        data[5] = 0
        #expect(MobilityAuthentication.authenticator(key: AuthVectors.key, careOf: coa, homeAddress: hoa, mhData: data)
                == AuthVectors.buAuthenticator)
        // A 20-octet key and arbitrary data (second Python vector).
        #expect(MobilityAuthentication.authenticator(key: MobilityKey(bytes: [UInt8](repeating: 0x0b, count: 20)),
                                                     careOf: coa, homeAddress: hoa, mhData: Array("Hi There".utf8))
                == hex("81fee1f29c45e0bd8f32073d"))
    }

    @Test func sealedBindingUpdateMatchesScapy() {
        let bu = BindingUpdate(sequence: 0x1234, flags: [.ack, .home], lifetime: 150)
        let packet = PacketBuilder.bindingUpdate(
            bu, careOf: coa, homeAgent: ha, homeAddress: hoa,
            authentication: MNHASeal(association: AuthVectors.association, timestamp: AuthVectors.timestamp,
                                     careOf: coa, homeAddress: hoa))
        #expect(hexString(packet) == hexString(AuthVectors.buPacket))
    }

    @Test func sealedBindingAcknowledgementMatchesScapy() {
        // The BA is authenticated over the mobile node's care-of address and home address too.
        let ba = BindingAcknowledgement(status: .accepted, sequence: 0x1234, lifetime: 150)
        let packet = PacketBuilder.bindingAcknowledgement(
            ba, from: ha, to: coa, homeAddress: hoa,
            authentication: MNHASeal(association: AuthVectors.association, timestamp: AuthVectors.timestamp,
                                     careOf: coa, homeAddress: hoa))
        #expect(hexString(packet) == hexString(AuthVectors.baPacket))
    }

    func keys() throws -> KeyStore {
        try KeyStore(parsing: "\(AuthVectors.nai) \(hoa) \(AuthVectors.spi) \(AuthVectors.keyHex)")
    }

    func verify(_ mh: [UInt8], careOf: IPv6Address = coa, home: IPv6Address = hoa, keys: KeyStore? = nil,
                now: UInt64 = AuthVectors.timestamp, last: UInt64? = nil) throws -> AuthenticationVerdict {
        guard case .bindingUpdate(let bu) = try MobilityHeaderCodec.decode(mh, source: home, destination: ha) else {
            throw MHDecodeError.truncated
        }
        return MobilityAuthentication.verifyBindingUpdate(mh: mh, bu: bu, careOf: careOf, homeAddress: home,
                                                          keys: try keys ?? self.keys(), homePrefix: mnHomePrefix,
                                                          now: now, allowedSkew: 7, lastAccepted: last)
    }

    @Test func verifiesTheVector() throws {
        let v = try verify(AuthVectors.buMH)
        #expect(v.result == .ok)
        #expect(v.spi == AuthVectors.spi && v.timestamp == AuthVectors.timestamp)
        #expect(v.association == AuthVectors.association)
    }

    @Test func everyCoveredOctetMatters() throws {
        // Flip each octet from the start of the MH through the SPI (except the checksum, which
        // the HMAC does not cover and the codec checks): the authenticator no longer verifies,
        // or the message no longer parses.
        var checked = 0
        for i in 0..<AuthVectors.spiEnd where i != 4 && i != 5 && i != 0 && i != 1 && i != 2 {
            var mh = AuthVectors.buMH
            mh[i] ^= 0x01
            fixChecksum(&mh, source: hoa, destination: ha)
            guard let v = try? verify(mh) else { continue }
            checked += 1
            #expect(v.result != .ok, "octet \(i)")
        }
        #expect(checked >= 40)
        // The authenticator itself.
        var mh = AuthVectors.buMH
        mh[AuthVectors.spiEnd] ^= 0x80
        fixChecksum(&mh, source: hoa, destination: ha)
        #expect(try verify(mh).result == .badAuthenticator)
    }

    @Test func addressesAreCovered() throws {
        // Another care-of address or home address in the Mobility Data: no longer verifies.
        #expect(try verify(AuthVectors.buMH, careOf: mnCoA2).result == .badAuthenticator)
        var mh = AuthVectors.buMH
        fixChecksum(&mh, source: addr("2001:db8:1::200"), destination: ha)
        #expect(try verify(mh, home: addr("2001:db8:1::200")).result == .badAuthenticator)
    }

    @Test func otherKeyOrSPI() throws {
        let other = try KeyStore(parsing: "\(AuthVectors.nai) \(hoa) 4096 000102030405060708090a0b0c0d0e0f")
        #expect(try verify(AuthVectors.buMH, keys: other).result == .badAuthenticator)
        let noSuchSPI = try KeyStore(parsing: "\(AuthVectors.nai) \(hoa) 4097 \(AuthVectors.keyHex)")
        #expect(try verify(AuthVectors.buMH, keys: noSuchSPI).result == .unknownSPI)
    }

    @Test func timestampWindow() throws {
        #expect(try verify(AuthVectors.buMH, now: AuthVectors.timestamp + ntp(7)).result == .ok)
        #expect(try verify(AuthVectors.buMH, now: AuthVectors.timestamp - ntp(7)).result == .ok)
        #expect(try verify(AuthVectors.buMH, now: AuthVectors.timestamp + ntp(7.001)).result == .staleTimestamp)
        #expect(try verify(AuthVectors.buMH, now: AuthVectors.timestamp - ntp(7.001)).result == .staleTimestamp)
        #expect(try verify(AuthVectors.buMH, last: AuthVectors.timestamp).result == .replayed)
        #expect(try verify(AuthVectors.buMH, last: AuthVectors.timestamp + 1).result == .replayed)
        #expect(try verify(AuthVectors.buMH, last: AuthVectors.timestamp - 1).result == .ok)
    }

    @Test func verifiesTheBAVector() throws {
        guard case .bindingAcknowledgement(let ba) = try MobilityHeaderCodec.decode(AuthVectors.baMH, source: ha, destination: hoa)
        else { Issue.record("not a BA"); return }
        func check(_ expected: UInt64?, _ association: MNHASecurityAssociation = AuthVectors.association) -> AuthenticationResult {
            MobilityAuthentication.verifyBindingAcknowledgement(mh: AuthVectors.baMH, ba: ba, careOf: coa, homeAddress: hoa,
                                                                association: association, expectedTimestamp: expected).result
        }
        #expect(check(AuthVectors.timestamp) == .ok)
        #expect(check(nil) == .ok)
        #expect(check(AuthVectors.timestamp + 1) == .replayed)
        #expect(check(AuthVectors.timestamp, MNHASecurityAssociation(nai: AuthVectors.nai, spi: 4097, key: AuthVectors.key)) == .unknownSPI)
        #expect(check(AuthVectors.timestamp, MNHASecurityAssociation(nai: AuthVectors.nai, spi: 4096, key: MobilityKey(bytes: [UInt8](repeating: 1, count: 16)))) == .badAuthenticator)
        #expect(check(AuthVectors.timestamp, MNHASecurityAssociation(nai: "mn2@example.com", spi: 4096, key: AuthVectors.key)) == .identifierMismatch)
    }

    @Test func authenticatorMustBeLastAndUnique() throws {
        // Sealed by hand with a BRA after the auth option: the HMAC is right, the position not.
        let bu = BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10,
                               options: [.mobileNodeIdentifier(subtype: 1, identifier: Array(AuthVectors.nai.utf8)),
                                         .replayProtection(AuthVectors.timestamp),
                                         .mobilityMessageAuthentication(subtype: 1, spi: AuthVectors.spi, authenticator: [UInt8](repeating: 0, count: 12)),
                                         .bindingRefreshAdvice(5)])
        let mh = sealByHand(bu)
        #expect(try verify(mh).result == .authenticatorNotLast)

        // Correctly signed, then 8 octets of PadN after the MN-HA option: still not last
        // (RFC 4285 §5.1; alignment padding goes before it).
        var padded = bu
        padded.options[3] = .padN(8)
        let paddedMH = sealByHand(padded)
        #expect(paddedMH.count % 8 == 0 && paddedMH.suffix(8) == [1, 6, 0, 0, 0, 0, 0, 0], "PadN(8) ends the header")
        #expect(try verify(paddedMH).result == .authenticatorNotLast)
        // The same without the PadN verifies: the refusal is about the padding alone.
        var plain = bu
        plain.options.removeLast()
        #expect(try verify(sealByHand(plain)).result == .ok)

        // Sealed by us: nothing after the MN-HA option, whatever the NAI's length.
        for nai in ["a@b", "mn1@example.com", "a-much-longer-identifier@example.net"] {
            let sa = MNHASecurityAssociation(nai: nai, spi: AuthVectors.spi, key: AuthVectors.key)
            let sealed = MobilityAuthentication.seal(.bindingUpdate(BindingUpdate(sequence: 1, flags: [.ack, .home], lifetime: 10)),
                                                     with: MNHASeal(association: sa, timestamp: AuthVectors.timestamp, careOf: coa, homeAddress: hoa),
                                                     checksumSource: hoa, checksumDestination: ha)
            let tlvs = try #require(MobilityOption.offsets(in: sealed, from: 12))
            #expect(tlvs.last?.type == MobilityOption.Kind.authentication, "\(nai): the MN-HA option is the last TLV")
            #expect(sealed.count % 8 == 0)
        }

        // Two MN-HA options.
        var two = bu
        two.options.removeLast()
        two.options.insert(.mobilityMessageAuthentication(subtype: 1, spi: 999, authenticator: [UInt8](repeating: 0, count: 12)), at: 0)
        #expect(try verify(sealByHand(two)).result == .malformedAuthenticator)

        // A 64-bit authenticator.
        var short = bu
        short.options = Array(bu.options.prefix(2)) + [.mobilityMessageAuthentication(subtype: 1, spi: AuthVectors.spi, authenticator: [UInt8](repeating: 0, count: 8))]
        #expect(try verify(sealByHand(short)).result == .malformedAuthenticator)

        // Only an MN-AAA option: no MN-HA authentication at all.
        var aaa = bu
        aaa.options = Array(bu.options.prefix(2)) + [.mobilityMessageAuthentication(subtype: 2, spi: AuthVectors.spi, authenticator: [UInt8](repeating: 0, count: 12))]
        #expect(try verify(sealByHand(aaa)).result == .missingAuthenticator)
    }
}

/// Encodes `bu` as given and fills in the MN-HA authenticator of its (first) type-9 option over
/// coa | hoa | MH data, whatever its position: for messages `seal` refuses to build.
func sealByHand(_ bu: BindingUpdate, key: MobilityKey = AuthVectors.key, careOf: IPv6Address = coa,
                home: IPv6Address = hoa) -> [UInt8] {
    var mh = MobilityHeaderCodec.encode(.bindingUpdate(bu), source: home, destination: ha)
    let tlv = MobilityOption.offsets(in: mh, from: 12)!.first { $0.type == 9 }!
    let spiEnd = tlv.offset + 7
    let length = Int(mh[tlv.offset + 1]) - 5
    mh[4] = 0
    mh[5] = 0
    let auth = MobilityAuthentication.authenticator(key: key, careOf: careOf, homeAddress: home, mhData: mh[0..<spiEnd])
    for k in 0..<min(length, 12) { mh[spiEnd + k] = auth[k] }
    fixChecksum(&mh, source: home, destination: ha)
    return mh
}

// MARK: - Keys

@Suite("MN-HA keys and key file")
struct KeyStoreTests {
    static let file = """
        # NAI               home address        SPI     key
        mn1@example.com     2001:db8:1::100     4096    4d4e2d4841207365637265742d2d3136
        mn2@example.com     any                 0x1388  0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b   # trailing comment

        \t  # indented comment
        mn3@example.com     ANY                 300     00112233445566778899AABBCCDDEEFF
        """

    func error(_ text: String) -> KeyStoreError? {
        do {
            _ = try KeyStore(parsing: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func parses() throws {
        let store = try KeyStore(parsing: Self.file)
        #expect(store.count == 3)
        let mn1 = try #require(store[spi: 4096])
        #expect(mn1.nai == "mn1@example.com" && mn1.homeAddress == .exact(hoa) && mn1.line == 2)
        #expect(mn1.key == AuthVectors.key)
        let mn2 = try #require(store[spi: 5000])
        #expect(mn2.homeAddress == .anyInHomePrefix && mn2.key.count == 20 && mn2.line == 3)
        #expect(mn2.permits(addr("2001:db8:1::abcd"), homePrefix: mnHomePrefix))
        #expect(!mn2.permits(addr("2001:db8:2::1"), homePrefix: mnHomePrefix))
        #expect(!mn1.permits(addr("2001:db8:1::101"), homePrefix: mnHomePrefix))
        #expect(store[spi: 300]?.line == 6)
        #expect(store[spi: 4097] == nil)
    }

    @Test func errorsNameTheLineAndNeverTheKey() {
        let secret = "4d4e2d4841207365637265742d2d3136"
        let cases: [(String, KeyStoreError)] = [
            ("\n\nmn1 2001:db8:1::100 4096 4d4e2d484120736563726574zz2d3136",
             KeyStoreError(line: 3, reason: .badKeyHex)),
            ("mn1 2001:db8:1::100 4096 4d4e2d4841207365637265742d2d313",
             KeyStoreError(line: 1, reason: .badKeyHex)),
            ("mn1 2001:db8:1::100 4096 \(secret)\nmn2 any 4096 \(secret)",
             KeyStoreError(line: 2, reason: .duplicateSPI(4096, firstLine: 1))),
            ("# x\nmn1 2001:db8:1::zz 4096 \(secret)",
             KeyStoreError(line: 2, reason: .badHomeAddress("2001:db8:1::zz"))),
            ("mn1 fe80::1 4096 \(secret)", KeyStoreError(line: 1, reason: .badHomeAddress("fe80::1"))),
            ("mn1 any 4096x \(secret)", KeyStoreError(line: 1, reason: .badSPI("4096x"))),
            ("mn1 any 4294967296 \(secret)", KeyStoreError(line: 1, reason: .badSPI("4294967296"))),
            ("mn1 any 255 \(secret)", KeyStoreError(line: 1, reason: .reservedSPI(255))),
            ("mn1 any 4096", KeyStoreError(line: 1, reason: .fieldCount(3))),
            ("mn1 any 4096 \(secret) extra", KeyStoreError(line: 1, reason: .fieldCount(5))),
            ("mn1 any 4096 00112233", KeyStoreError(line: 1, reason: .keyLength(4))),
        ]
        for (text, expected) in cases {
            let e = error(text)
            #expect(e == expected, "\(text)")
            let message = e?.description ?? ""
            #expect(message.hasPrefix("key file line \(expected.line): "), "\(message)")
            for fragment in [secret, "4d4e2d484120736563726574", "zz2d3136", "00112233"] {
                #expect(!message.contains(fragment), "\(message)")
            }
        }
    }

    @Test func keysAreRedactedEverywhere() throws {
        let store = try KeyStore(parsing: Self.file)
        let key = AuthVectors.key
        var dumped = ""
        dump(store, to: &dumped)
        var dumpedKey = ""
        dump(key, to: &dumpedKey)
        let json = String(decoding: try JSONEncoder().encode(key), as: UTF8.self)
        let association = MNHASecurityAssociation(nai: "mn1@example.com", spi: 4096, key: key)
        let credentials = MobileNodeCredentials(nai: "mn1@example.com", spi: 4096, key: key)
        let texts = [key.description, String(reflecting: key), "\(key)", dumpedKey, json,
                     "\(store)", String(reflecting: store), dumped, "\(store.entries)",
                     "\(association)", String(reflecting: association), "\(credentials)", String(reflecting: credentials),
                     "\(MNHASeal(association: association, timestamp: 1, careOf: coa, homeAddress: hoa))"]
        for text in texts {
            #expect(!text.lowercased().contains(AuthVectors.keyHex), "\(text)")
            #expect(!text.contains("MN-HA secret"), "\(text)")
            #expect(!text.contains("77, 78, 45"), "\(text)")      // the bytes as a decimal array
            #expect(!text.contains("0b0b0b0b"), "\(text)")
        }
        #expect(key.description == "<redacted, 16 bytes>")
        #expect(json == "\"<redacted, 16 bytes>\"")
    }

    @Test func keyDecodesFromHexOnly() throws {
        let key = try JSONDecoder().decode(MobilityKey.self, from: Data("\"\(AuthVectors.keyHex)\"".utf8))
        #expect(key == AuthVectors.key)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(MobilityKey.self, from: Data("\"<redacted, 16 bytes>\"".utf8))
        }
        #expect(MobilityKey(hex: "abc") == nil && MobilityKey(hex: "") == nil && MobilityKey(hex: "0g") == nil)
        #expect(MobilityKey(hex: "00ff")?.count == 2)
    }

    @Test func ntpTimestamps() {
        // 1970-01-01 is 2208988800 s after 1900-01-01; half a second is 2^31.
        #expect(NTPTimestamp.from(unixSeconds: 0, nanoseconds: 0) == 2_208_988_800 << 32)
        #expect(NTPTimestamp.from(unixSeconds: 1_735_689_600, nanoseconds: 500_000_000) == AuthVectors.timestamp)
        // Across the 2036 era boundary the difference still has the right sign.
        let before: UInt64 = 0xffff_ffff_0000_0000
        let after: UInt64 = 0x0000_0001_0000_0000
        #expect(NTPTimestamp.isNewer(after, than: before))
        #expect(NTPTimestamp.within(after, before, seconds: 2) && !NTPTimestamp.within(after, before, seconds: 1))
        let now = SystemWallClock().ntpTimestamp()
        #expect(now >> 32 > 3_900_000_000 || now >> 32 < 1_000_000_000)  // after 2023, or in era 1
    }
}

// MARK: - Home agent

/// A home agent with MN-HA authentication: mn1 may register `hoa` only; mn2 any home address
/// in the home prefix.
final class AuthHAHarness {
    static let mn2Key = MobilityKey(bytes: [UInt8](repeating: 0x0b, count: 20))
    static let keyFile = """
        mn1@example.com 2001:db8:1::100 4096 \(AuthVectors.keyHex)
        mn2@example.com any 5000 0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b
        """
    let clock = TestClock()
    let wall = TestWallClock()
    let dataPlane = MockDataPlane()
    let logs = LogCapture()
    let cache: BindingCache
    let core: HomeAgentCore
    let mn1 = AuthVectors.association
    let mn2 = MNHASecurityAssociation(nai: "mn2@example.com", spi: 5000, key: AuthHAHarness.mn2Key)

    init(dad: Bool = false, errorsPerSecond: UInt32 = 100) {
        cache = BindingCache(capacity: 100, dataPlane: dataPlane)
        let policy = HomeAgentAuthenticationPolicy(keys: try! KeyStore(parsing: Self.keyFile), clock: wall)
        let config = HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: mnHomePrefix, duplicateAddressDetection: dad,
                                            errorMessagesPerSecond: errorsPerSecond, authentication: policy)
        core = HomeAgentCore(configuration: config, cache: cache, clock: clock, logger: logs.logger())
    }

    /// An authenticated BU; `sealCareOf`/`sealHome` default to the addresses RFC 6275 §9.5.1
    /// derives (the Alternate CoA when present, else the source; the home address).
    func bu(seq: UInt16, lifetime: UInt16 = 150, association: MNHASecurityAssociation? = nil,
            timestamp: UInt64?? = nil, home: IPv6Address = hoa, from: IPv6Address = coa,
            altCoA: IPv6Address? = nil, sealCareOf: IPv6Address? = nil) -> [UInt8] {
        var options: [MobilityOption] = []
        if let altCoA { options.append(.alternateCareOfAddress(altCoA)) }
        let bu = BindingUpdate(sequence: seq, flags: [.ack, .home], lifetime: lifetime, options: options)
        let ts: UInt64? = timestamp ?? wall.ntpTimestamp()
        return PacketBuilder.bindingUpdate(
            bu, careOf: from, homeAgent: ha, homeAddress: home,
            authentication: MNHASeal(association: association ?? mn1, timestamp: ts,
                                     careOf: sealCareOf ?? altCoA ?? from, homeAddress: home))
    }

    func plainBU(seq: UInt16) -> [UInt8] {
        PacketBuilder.bindingUpdate(BindingUpdate(sequence: seq, flags: [.ack, .home], lifetime: 150),
                                    careOf: coa, homeAgent: ha, homeAddress: hoa)
    }

    func handle(_ packet: [UInt8]) -> [HomeAgentAction] {
        core.handlePacket(packet, localAddresses: [ha])
    }

    /// The one BA in `actions`, with its raw MH.
    func ack(_ actions: [HomeAgentAction]) -> (ba: BindingAcknowledgement, mh: [UInt8], source: IPv6Address, to: IPv6Address)? {
        let all = actions.compactMap { action -> (BindingAcknowledgement, [UInt8], IPv6Address, IPv6Address)? in
            guard case .send(let bytes, _) = action, let p = try? IPv6PacketParser.parseMobility(bytes),
                  case .bindingAcknowledgement(let ba)? = try? MobilityHeaderCodec.decode(
                      p.mh, source: p.checksumSource, destination: p.checksumDestination)
            else { return nil }
            return (ba, p.mh, p.source, p.destination)
        }
        return all.count == 1 ? all[0] : nil
    }

    /// Checks the BA the way the mobile node does.
    func verifyBA(_ a: (ba: BindingAcknowledgement, mh: [UInt8], source: IPv6Address, to: IPv6Address),
                  association: MNHASecurityAssociation? = nil, careOf: IPv6Address = coa, home: IPv6Address = hoa,
                  expected: UInt64?) -> AuthenticationResult {
        MobilityAuthentication.verifyBindingAcknowledgement(mh: a.mh, ba: a.ba, careOf: careOf, homeAddress: home,
                                                            association: association ?? mn1, expectedTimestamp: expected).result
    }

    func refusals(_ r: AuthenticationResult) -> UInt64 { core.counters.authRefusals[r] ?? 0 }

    /// Everything a refused BU must leave alone.
    struct Snapshot: Equatable {
        var bindings: [Binding]
        var installs: Int
        var removes: Int
        var pending: [IPv6Address]
        var registrations: UInt64
        var refreshes: UInt64
        var deregistrations: UInt64
    }

    var snapshot: Snapshot {
        Snapshot(bindings: cache.all, installs: dataPlane.installCalls, removes: dataPlane.removeCalls,
                 pending: core.pendingDAD, registrations: core.counters.registrations,
                 refreshes: core.counters.refreshes, deregistrations: core.counters.deregistrations)
    }

    /// No log record (message or metadata) shows a key, in hex or as text.
    func expectNoKeysInLogs() {
        for record in logs.records {
            let text = (record.message + " " + record.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")).lowercased()
            #expect(!text.contains(AuthVectors.keyHex), "\(text)")
            #expect(!text.contains("mn-ha secret"), "\(text)")
            #expect(!text.contains("0b0b0b0b"), "\(text)")
        }
    }
}

@Suite("Home agent: MN-HA authentication")
struct HomeAgentAuthenticationTests {
    @Test func acceptsAnAuthenticatedBindingUpdate() throws {
        let h = AuthHAHarness()
        let ts = h.wall.ntpTimestamp()
        let actions = h.handle(h.bu(seq: 7))
        #expect(actions.count == 3)
        #expect(h.cache[hoa]?.careOfAddress == coa && h.cache[hoa]?.sequence == 7)
        let a = try #require(h.ack(actions))
        #expect(a.ba.status == .accepted && a.ba.sequence == 7 && a.ba.lifetime == 150)
        // RFC 4285 §5.1, §6: the BA carries MN-ID, the BU's timestamp, the MN-HA option last.
        #expect(a.ba.options.count == 3)
        #expect(a.ba.options[0] == .mobileNodeIdentifier(subtype: 1, identifier: Array("mn1@example.com".utf8)))
        #expect(a.ba.options[1] == .replayProtection(ts))
        guard case .mobilityMessageAuthentication(1, 4096, let auth) = a.ba.options[2] else { Issue.record("\(a.ba.options)"); return }
        #expect(auth.count == 12)
        #expect(h.verifyBA(a, expected: ts) == .ok)
        #expect(h.core.counters.authenticatedBindingUpdates == 1)
        #expect(h.core.counters.authRefusals.isEmpty)
        #expect(actions.contains { if case .send(_, let d) = $0 { return d.hasSuffix("(MN-HA SPI 4096)") } else { return false } })
        h.expectNoKeysInLogs()
    }

    @Test func withoutPolicyNothingChanges() throws {
        // nil policy: today's behaviour, authenticated BUs accepted too (options ignored).
        let h = Harness()
        let w = AuthHAHarness()
        let actions = h.handle(w.bu(seq: 3))
        #expect(h.ack(actions)?.ba?.status == .accepted)
        #expect(h.ack(actions)?.ba?.options == [])
    }

    @Test func unauthenticatedBindingUpdateIsDiscardedSilently() {
        // RFC 4285 §5: a BU without the authentication option is silently discarded.
        let h = AuthHAHarness()
        let before = h.snapshot
        #expect(h.handle(h.plainBU(seq: 7)).isEmpty)
        #expect(h.snapshot == before)
        #expect(h.refusals(.missingAuthenticator) == 1)
        #expect(h.core.counters.acksByStatus.isEmpty)
    }

    /// Registers mn1 once so that the refusal tests start from a binding they must not touch.
    func registered() -> AuthHAHarness {
        let h = AuthHAHarness()
        _ = h.handle(h.bu(seq: 100))
        #expect(h.cache[hoa]?.sequence == 100)
        h.clock.advance(seconds: 1)
        h.wall.advance(seconds: 1)
        return h
    }

    @Test func wrongKeyGets146Unauthenticated() throws {
        let h = registered()
        let before = h.snapshot
        let wrong = MNHASecurityAssociation(nai: "mn1@example.com", spi: 4096, key: MobilityKey(bytes: [UInt8](repeating: 7, count: 16)))
        let a = try #require(h.ack(h.handle(h.bu(seq: 101, association: wrong, from: mnCoA2))))
        #expect(a.ba.status == .authenticationFailed && a.ba.sequence == 101 && a.ba.lifetime == 0)
        // Nobody proved the key: the BA carries no authentication (nothing to vouch with).
        #expect(a.ba.options.isEmpty)
        #expect(h.snapshot == before)
        #expect(h.refusals(.badAuthenticator) == 1)
        #expect(h.core.counters.acksByStatus[146] == 1)
    }

    @Test func unknownSPIGets146Unauthenticated() throws {
        let h = registered()
        let before = h.snapshot
        let stranger = MNHASecurityAssociation(nai: "mn1@example.com", spi: 4242, key: AuthVectors.key)
        let a = try #require(h.ack(h.handle(h.bu(seq: 101, association: stranger, from: mnCoA2))))
        #expect(a.ba.status == .authenticationFailed && a.ba.options.isEmpty)
        #expect(h.snapshot == before)
        #expect(h.refusals(.unknownSPI) == 1)
    }

    @Test func authenticatorNotLastGets146() throws {
        let h = registered()
        let before = h.snapshot
        let ts = h.wall.ntpTimestamp()
        let bu = BindingUpdate(sequence: 101, flags: [.ack, .home], lifetime: 150,
                               options: [.mobileNodeIdentifier(subtype: 1, identifier: Array("mn1@example.com".utf8)),
                                         .replayProtection(ts),
                                         .mobilityMessageAuthentication(subtype: 1, spi: 4096, authenticator: [UInt8](repeating: 0, count: 12)),
                                         .bindingRefreshAdvice(5)])
        let mh = sealByHand(bu)
        let packet = PacketBuilder.bindingUpdate(BindingUpdate(sequence: 0, flags: [], lifetime: 0), careOf: coa, homeAgent: ha, homeAddress: hoa)
        // Swap in the hand-sealed MH (same IPv6 framing: Destination Options with the HAO).
        var p = Array(packet.prefix(64)) + mh
        p[4] = UInt8((24 + mh.count) >> 8)
        p[5] = UInt8((24 + mh.count) & 0xff)
        let a = try #require(h.ack(h.handle(p)))
        #expect(a.ba.status == .authenticationFailed && a.ba.options.isEmpty)
        #expect(h.snapshot == before)
        #expect(h.refusals(.authenticatorNotLast) == 1)
    }

    @Test func naiMismatchGets146Authenticated() throws {
        // mn1's key and SPI, but claiming another NAI: authentic, not acceptable.
        let h = registered()
        let before = h.snapshot
        let ts = h.wall.ntpTimestamp()
        let liar = MNHASecurityAssociation(nai: "mallory@example.com", spi: 4096, key: AuthVectors.key)
        let a = try #require(h.ack(h.handle(h.bu(seq: 101, association: liar, from: mnCoA2))))
        #expect(a.ba.status == .authenticationFailed)
        // The sender proved it holds mn1's key: the BA is authenticated with it, and names the
        // association's NAI, not the one claimed.
        #expect(h.verifyBA(a, careOf: mnCoA2, expected: ts) == .ok)
        #expect(h.verifyBA(a, association: liar, careOf: mnCoA2, expected: ts) == .identifierMismatch)
        #expect(h.snapshot == before)
        #expect(h.refusals(.identifierMismatch) == 1)
    }

    @Test func missingIdentifierGets146() throws {
        let h = registered()
        let before = h.snapshot
        let bu = BindingUpdate(sequence: 101, flags: [.ack, .home], lifetime: 150,
                               options: [.replayProtection(h.wall.ntpTimestamp()),
                                         .mobilityMessageAuthentication(subtype: 1, spi: 4096, authenticator: [UInt8](repeating: 0, count: 12))])
        let mh = sealByHand(bu)
        var p = Array(h.bu(seq: 0).prefix(64)) + mh
        p[4] = UInt8((24 + mh.count) >> 8)
        p[5] = UInt8((24 + mh.count) & 0xff)
        let a = try #require(h.ack(h.handle(p)))
        #expect(a.ba.status == .authenticationFailed)
        #expect(h.snapshot == before)
        #expect(h.refusals(.missingIdentifier) == 1)
    }

    @Test func homeAddressMismatchGets146() throws {
        let h = registered()
        let before = h.snapshot
        let other = addr("2001:db8:1::200")
        // mn1 is bound to 2001:db8:1::100 only.
        let a = try #require(h.ack(h.handle(h.bu(seq: 1, home: other))))
        #expect(a.ba.status == .authenticationFailed)
        #expect(h.verifyBA(a, home: other, expected: nil) == .ok)
        #expect(h.snapshot == before)
        #expect(h.refusals(.homeAddressMismatch) == 1)

        // mn2 ("any") may register any home address in the prefix...
        let ok = try #require(h.ack(h.handle(h.bu(seq: 1, association: h.mn2, home: other))))
        #expect(ok.ba.status == .accepted && h.cache[other]?.careOfAddress == coa)
        #expect(h.verifyBA(ok, association: h.mn2, home: other, expected: nil) == .ok)
        // ...but not one outside it: refused by authentication before 132 is considered.
        let outside = addr("2001:db8:2::1")
        let no = try #require(h.ack(h.handle(h.bu(seq: 1, association: h.mn2, home: outside))))
        #expect(no.ba.status == .authenticationFailed)
        #expect(h.refusals(.homeAddressMismatch) == 2)
        #expect(h.cache[outside] == nil)
    }

    @Test func missingTimestampGets145() throws {
        let h = registered()
        let before = h.snapshot
        let a = try #require(h.ack(h.handle(h.bu(seq: 101, timestamp: .some(nil), from: mnCoA2))))
        #expect(a.ba.status == .messageIDRequired)
        #expect(h.verifyBA(a, careOf: mnCoA2, expected: nil) == .ok)
        #expect(!a.ba.options.contains { if case .replayProtection = $0 { return true } else { return false } })
        #expect(h.snapshot == before)
        #expect(h.refusals(.missingTimestamp) == 1)
    }

    @Test(arguments: [-10.0, -7.5, 7.5, 3600])
    func staleTimestampGets144WithTheHomeAgentsTime(offset: Double) throws {
        let h = registered()
        let before = h.snapshot
        let haNow = h.wall.ntpTimestamp()
        let theirs = UInt64(bitPattern: Int64(bitPattern: haNow) &+ Int64(offset * 4_294_967_296))
        let a = try #require(h.ack(h.handle(h.bu(seq: 101, timestamp: theirs, from: mnCoA2))))
        #expect(a.ba.status == .idMismatch && a.ba.sequence == 101)
        // RFC 4285 §6: the BA carries the home agent's current time, authenticated.
        #expect(a.ba.options.contains(.replayProtection(haNow)))
        #expect(h.verifyBA(a, careOf: mnCoA2, expected: haNow) == .ok)
        #expect(h.snapshot == before)
        #expect(h.refusals(.staleTimestamp) == 1)
    }

    @Test func replayedBindingUpdateIsDropped() throws {
        let h = AuthHAHarness()
        let first = h.bu(seq: 7)
        _ = h.handle(first)
        let before = h.snapshot
        h.clock.advance(seconds: 1)
        h.wall.advance(seconds: 1)
        // The same packet again (same timestamp, same sequence number).
        #expect(h.handle(first).isEmpty)
        // The same timestamp with a newer sequence number, or an older timestamp.
        let ts = AuthVectors.timestamp
        #expect(h.handle(h.bu(seq: 8, timestamp: ts, from: mnCoA2)).isEmpty)
        #expect(h.handle(h.bu(seq: 9, timestamp: ts - 1, from: mnCoA2)).isEmpty)
        #expect(h.snapshot == before)
        #expect(h.refusals(.replayed) == 3)
        #expect(h.core.counters.acksByStatus == [0: 1])
        // A newer timestamp still works.
        let a = try #require(h.ack(h.handle(h.bu(seq: 8, from: mnCoA2))))
        #expect(a.ba.status == .accepted && h.cache[hoa]?.careOfAddress == mnCoA2)
    }

    @Test("an acceptance the shared store refused takes its timestamp back: the same BU can be judged again")
    func storeRefusalTakesTheTimestampBack() throws {
        let h = AuthHAHarness()
        _ = h.handle(h.bu(seq: 7))
        let firstBinding = h.cache[hoa]
        h.wall.advance(seconds: 1)
        let second = h.bu(seq: 8, from: mnCoA2)
        #expect(try #require(h.ack(h.handle(second))).ba.status == .accepted)
        let before = h.core.lastTimestamp(for: hoa)
        // Another replica wrote the key first: the replica takes the binding back.
        h.core.storeWriteFailed(homeAddress: hoa, previous: firstBinding, reason: "another replica wrote it first")
        #expect(h.core.lastTimestamp(for: hoa) != before, "back to the first BU's timestamp")
        let again = try #require(h.ack(h.handle(second)), "judged again, not taken for its own replay")
        #expect(again.ba.status == .accepted && h.cache[hoa]?.careOfAddress == mnCoA2)
        #expect(h.refusals(.replayed) == 0)
        // The first BU is still a replay.
        #expect(h.handle(h.bu(seq: 9, timestamp: AuthVectors.timestamp, from: mnCoA2)).isEmpty)
        #expect(h.refusals(.replayed) == 1)
    }

    @Test func replayAfterDeregistrationIsDropped() throws {
        // The last timestamp outlives the binding: a registration recorded before the
        // de-registration cannot bring the binding back.
        let h = AuthHAHarness()
        let registration = h.bu(seq: 7)
        _ = h.handle(registration)
        h.wall.advance(seconds: 1)
        let dereg = try #require(h.ack(h.handle(h.bu(seq: 8, lifetime: 0))))
        #expect(dereg.ba.status == .accepted && h.cache[hoa] == nil)
        #expect(h.handle(registration).isEmpty)
        #expect(h.cache[hoa] == nil)
        #expect(h.refusals(.replayed) == 1)
    }

    @Test func sequenceNumberStillChecked() throws {
        // Authentic and fresh, but an old sequence number: 135, authenticated, echoing.
        let h = registered()
        let before = h.snapshot
        let ts = h.wall.ntpTimestamp()
        let a = try #require(h.ack(h.handle(h.bu(seq: 99, from: mnCoA2))))
        #expect(a.ba.status == .sequenceOutOfWindow && a.ba.sequence == 100)
        #expect(h.verifyBA(a, careOf: mnCoA2, expected: ts) == .ok)
        #expect(h.snapshot == before)
    }

    @Test func alternateCareOfAddressIsTheOneAuthenticated() throws {
        // RFC 6275 §9.5.1 registers the Alternate CoA; the Mobility Data carries it, not the source.
        let h = AuthHAHarness()
        let bad = try #require(h.ack(h.handle(h.bu(seq: 7, from: coa, altCoA: mnCoA2, sealCareOf: coa))))
        #expect(bad.ba.status == .authenticationFailed && h.cache[hoa] == nil)
        let good = try #require(h.ack(h.handle(h.bu(seq: 8, from: coa, altCoA: mnCoA2))))
        #expect(good.ba.status == .accepted && h.cache[hoa]?.careOfAddress == mnCoA2)
        // The BA goes to the source (§9.5.4) but authenticates the registered CoA.
        #expect(good.to == coa)
        #expect(h.verifyBA(good, careOf: mnCoA2, expected: nil) == .ok)
        #expect(h.verifyBA(good, careOf: coa, expected: nil) == .badAuthenticator)
    }

    @Test func deregistrationFromHome() throws {
        let h = AuthHAHarness()
        _ = h.handle(h.bu(seq: 7))
        h.wall.advance(seconds: 1)
        // From the home address, no Home Address option: CoA = HoA in the Mobility Data.
        let a = try #require(h.ack(h.handle(h.bu(seq: 8, lifetime: 0, from: hoa))))
        #expect(a.ba.status == .accepted && h.cache[hoa] == nil)
        #expect(h.verifyBA(a, careOf: hoa, expected: nil) == .ok)
    }

    @Test func acknowledgementAfterDADIsAuthenticated() throws {
        let h = AuthHAHarness(dad: true)
        let ts = h.wall.ntpTimestamp()
        #expect(h.handle(h.bu(seq: 7)) == [.startDAD(homeAddress: hoa)])
        let a = try #require(h.ack(h.core.dadFinished(homeAddress: hoa, duplicate: false)))
        #expect(a.ba.status == .accepted)
        #expect(h.verifyBA(a, expected: ts) == .ok)
    }

    @Test func refusalsAreRateLimited() throws {
        let h = AuthHAHarness(errorsPerSecond: 1)
        let stranger = MNHASecurityAssociation(nai: "x@example.com", spi: 4242, key: AuthVectors.key)
        #expect(h.ack(h.handle(h.bu(seq: 1, association: stranger))) != nil)
        #expect(h.handle(h.bu(seq: 2, association: stranger)).isEmpty)
        #expect(h.refusals(.unknownSPI) == 2)
        #expect(h.core.counters.drops[.errorRateLimited] == 1)
    }

    @Test func logsNameTheRefusalButNoKey() {
        let h = registered()
        let wrong = MNHASecurityAssociation(nai: "mn1@example.com", spi: 4096, key: AuthHAHarness.mn2Key)
        _ = h.handle(h.bu(seq: 101, association: wrong))
        _ = h.handle(h.bu(seq: 102, association: wrong))
        let notices = h.logs.records.filter { $0.metadata["mip6.auth"] == "badAuthenticator" }
        #expect(notices.count == 2)
        #expect(notices.first?.level == .notice && notices.last?.level == .debug)
        #expect(notices.first?.metadata["mip6.spi"] == "4096")
        h.expectNoKeysInLogs()
    }
}

// MARK: - Mobile node

@Suite("Mobile node: MN-HA authentication")
struct MobileNodeAuthenticationTests {
    final class H {
        let clock = TestClock()
        let wall: TestWallClock
        let logs = LogCapture()
        let core: MobileNodeCore

        init(key: MobilityKey = AuthVectors.key, maxResyncs: Int = 3) {
            wall = TestWallClock(following: clock)
            let config = MobileNodeConfiguration(homeAddress: hoa, homeAgent: ha, homePrefix: mnHomePrefix,
                                                 maxConsecutiveResyncs: maxResyncs,
                                                 credentials: MobileNodeCredentials(nai: AuthVectors.nai, spi: AuthVectors.spi,
                                                                                    key: key, clock: wall))
            core = MobileNodeCore(configuration: config, clock: clock, logger: logs.logger(), initialSequence: 100)
        }

        func bu(_ actions: [MobileNodeAction]) -> (bu: BindingUpdate, mh: [UInt8], source: IPv6Address)? {
            let all = actions.compactMap { action -> (BindingUpdate, [UInt8], IPv6Address)? in
                guard case .send(let bytes, _) = action, let p = try? IPv6PacketParser.parseMobility(bytes),
                      case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(p.mh, source: p.checksumSource,
                                                                                    destination: p.checksumDestination)
                else { return nil }
                return (bu, p.mh, p.source)
            }
            return all.count == 1 ? all[0] : nil
        }

        func timestamp(_ bu: BindingUpdate) -> UInt64? {
            for case .replayProtection(let t) in bu.options { return t }
            return nil
        }

        func ba(status: BAStatus = .accepted, seq: UInt16, timestamp: UInt64?, key: MobilityKey = AuthVectors.key,
                to: IPv6Address = coa) -> [UInt8] {
            PacketBuilder.bindingAcknowledgement(
                BindingAcknowledgement(status: status, sequence: seq, lifetime: status.isAccepted ? 150 : 0),
                from: ha, to: to, homeAddress: hoa,
                authentication: MNHASeal(association: MNHASecurityAssociation(nai: AuthVectors.nai, spi: AuthVectors.spi, key: key),
                                         timestamp: timestamp, careOf: to, homeAddress: hoa))
        }
    }

    @Test func bindingUpdatesCarryTheOptionsInOrder() throws {
        let h = H()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        #expect(sent.bu.options.count == 3)
        #expect(sent.bu.options[0] == .mobileNodeIdentifier(subtype: 1, identifier: Array(AuthVectors.nai.utf8)))
        #expect(sent.bu.options[1] == .replayProtection(h.wall.ntpTimestamp()))
        guard case .mobilityMessageAuthentication(1, AuthVectors.spi, _) = sent.bu.options[2] else {
            Issue.record("\(sent.bu.options)"); return
        }
        let keys = try KeyStore(parsing: AuthHAHarness.keyFile)
        let v = MobilityAuthentication.verifyBindingUpdate(mh: sent.mh, bu: sent.bu, careOf: coa, homeAddress: hoa, keys: keys,
                                                           homePrefix: mnHomePrefix, now: h.wall.ntpTimestamp(),
                                                           allowedSkew: 7, lastAccepted: nil)
        #expect(v.result == .ok)
        // Retransmissions get newer timestamps even when the wall clock has not moved.
        h.wall.follow = nil
        h.clock.advance(seconds: 1.5)
        let again = try #require(h.bu(h.core.tick()))
        #expect(NTPTimestamp.isNewer(try #require(h.timestamp(again.bu)), than: try #require(h.timestamp(sent.bu))))
    }

    @Test func acceptsOnlyAuthenticatedAcknowledgements() throws {
        let h = H()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let ts = try #require(h.timestamp(sent.bu))
        // Plain BA: ignored.
        let plain = PacketBuilder.bindingAcknowledgement(BindingAcknowledgement(status: .accepted, sequence: 100, lifetime: 150),
                                                         from: ha, to: coa, homeAddress: hoa)
        #expect(h.core.handlePacket(plain).isEmpty)
        // Another key, or not echoing our timestamp: ignored.
        #expect(h.core.handlePacket(h.ba(seq: 100, timestamp: ts, key: MobilityKey(bytes: [UInt8](repeating: 3, count: 16)))).isEmpty)
        #expect(h.core.handlePacket(h.ba(seq: 100, timestamp: ts - 1)).isEmpty)
        // An unauthenticated rejection does not stop us either.
        let reject = PacketBuilder.bindingAcknowledgement(BindingAcknowledgement(status: .authenticationFailed, sequence: 100, lifetime: 0),
                                                          from: ha, to: coa, homeAddress: hoa)
        #expect(h.core.handlePacket(reject).isEmpty)
        #expect(h.core.counters.acksUnauthenticated == 4 && h.core.counters.acksIgnored == 4)
        #expect(h.core.status.state == "registering")
        // The real one.
        let actions = h.core.handlePacket(h.ba(seq: 100, timestamp: ts))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
    }

    @Test func authenticated146IsARejection() throws {
        let h = H()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        let actions = h.core.handlePacket(h.ba(status: .authenticationFailed, seq: 100, timestamp: h.timestamp(sent.bu)))
        #expect(actions == [.registrationFailed(status: .authenticationFailed)])
    }

    @Test func status144ResynchronisesAndRetriesAtOnce() throws {
        let h = H()
        let sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        // The home agent's clock is 100 s ahead of ours.
        let haTime = h.wall.ntpTimestamp() &+ ntp(100)
        let actions = h.core.handlePacket(h.ba(status: .idMismatch, seq: 100, timestamp: haTime))
        let retry = try #require(h.bu(actions))
        #expect(retry.bu.sequence == 101)
        let ts = try #require(h.timestamp(retry.bu))
        #expect(NTPTimestamp.within(ts, haTime, seconds: 1))
        #expect(h.core.counters.resyncs144 == 1)
        #expect(h.core.status.lastStatus == 144)
        _ = sent
        // The next BA echoes the new timestamp and is accepted.
        #expect(h.core.handlePacket(h.ba(seq: 101, timestamp: ts)).contains(.registered(careOf: coa, lifetime: 600)))
    }

    @Test func countersFromBeforeAuthenticationStillDecode() throws {
        let old = #"{"busSent":3,"retransmissions":1,"acksAccepted":1,"acksIgnored":0,"resyncs135":0,"registrations":1,"refreshes":0,"deregistrations":0,"rejections":0,"expirations":0,"refreshRequests":0,"packetsIgnored":0}"#
        let counters = try JSONDecoder().decode(MobileNodeCounters.self, from: Data(old.utf8))
        #expect(counters.busSent == 3 && counters.acksUnauthenticated == 0 && counters.resyncs144 == 0)
        #expect(counters.lastRegistrationMs == nil)
        var c = MobileNodeCounters()
        c.resyncs144 = 2
        #expect(try JSONDecoder().decode(MobileNodeCounters.self, from: JSONEncoder().encode(c)) == c)
    }

    @Test func status144IsBounded() throws {
        let h = H(maxResyncs: 2)
        var sent = try #require(h.bu(h.core.careOfAddressChanged(coa)))
        for round in 0..<2 {
            h.clock.advance(seconds: 0.5)   // MAX_UPDATE_RATE: 3 a second
            let actions = h.core.handlePacket(h.ba(status: .idMismatch, seq: sent.bu.sequence, timestamp: h.wall.ntpTimestamp() &+ ntp(50)))
            sent = try #require(h.bu(actions), "round \(round)")
        }
        h.clock.advance(seconds: 0.5)
        let last = h.core.handlePacket(h.ba(status: .idMismatch, seq: sent.bu.sequence, timestamp: h.wall.ntpTimestamp()))
        #expect(last == [.registrationFailed(status: .idMismatch)])
        #expect(h.core.counters.resyncs144 == 2)
    }
}

// MARK: - End to end

@Suite("Mobile node against the home agent, with MN-HA authentication")
struct AuthenticatedEndToEndTests {
    final class Pair {
        let clock = TestClock()
        let haWall: TestWallClock
        let mnWall: TestWallClock
        let dataPlane = MockDataPlane()
        let cache: BindingCache
        let agent: HomeAgentCore
        let mn: MobileNodeCore
        let haLogs = LogCapture()
        let mnLogs = LogCapture()

        init(mnKey: MobilityKey = AuthVectors.key, mnClockOffset: Double = 0) {
            haWall = TestWallClock(following: clock)
            mnWall = TestWallClock(following: clock)
            mnWall.offsetSeconds = mnClockOffset
            cache = BindingCache(capacity: 10, dataPlane: dataPlane)
            let policy = HomeAgentAuthenticationPolicy(keys: try! KeyStore(parsing: AuthHAHarness.keyFile), clock: haWall)
            let config = HomeAgentConfiguration(homeAgentAddress: ha, homePrefix: mnHomePrefix, maxLifetime: 3600, capacity: 10,
                                                duplicateAddressDetection: false, authentication: policy)
            agent = HomeAgentCore(configuration: config, cache: cache, clock: clock, logger: haLogs.logger())
            let mnConfig = MobileNodeConfiguration(homeAddress: hoa, homeAgent: ha, homePrefix: mnHomePrefix,
                                                   credentials: MobileNodeCredentials(nai: AuthVectors.nai, spi: AuthVectors.spi,
                                                                                      key: mnKey, clock: mnWall))
            mn = MobileNodeCore(configuration: mnConfig, clock: clock, logger: mnLogs.logger(), initialSequence: 40000)
        }

        func packets(_ actions: [MobileNodeAction]) -> [[UInt8]] {
            actions.compactMap { if case .send(let p, _) = $0 { return p } else { return nil } }
        }

        func exchange(_ actions: [MobileNodeAction]) -> [MobileNodeAction] {
            var result = actions.filter { if case .send = $0 { return false } else { return true } }
            var toHA = packets(actions)
            while !toHA.isEmpty {
                let bu = toHA.removeFirst()
                for reply in agent.handlePacket(bu, localAddresses: [ha]) {
                    guard case .send(let packet, _) = reply else { continue }
                    let back = mn.handlePacket(packet)
                    toHA += packets(back)
                    result += back.filter { if case .send = $0 { return false } else { return true } }
                }
            }
            return result
        }

        func expectNoKeysInLogs() {
            for record in haLogs.records + mnLogs.records {
                let text = (record.message + " " + record.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")).lowercased()
                #expect(!text.contains(AuthVectors.keyHex) && !text.contains("mn-ha secret"), "\(text)")
            }
        }
    }

    @Test func registerMoveRefreshAndDeregister() throws {
        let pair = Pair()
        var actions = pair.exchange(pair.mn.careOfAddressChanged(coa))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
        #expect(pair.cache[hoa]?.careOfAddress == coa)

        pair.clock.advance(seconds: 20)
        actions = pair.exchange(pair.mn.careOfAddressChanged(mnCoA2))
        #expect(actions == [.registered(careOf: mnCoA2, lifetime: 600), .tunnelUp(careOf: mnCoA2)])
        #expect(pair.cache[hoa]?.careOfAddress == mnCoA2)

        pair.clock.now = try #require(pair.mn.nextDeadline)
        actions = pair.exchange(pair.mn.tick())
        #expect(actions == [.registered(careOf: mnCoA2, lifetime: 600)])

        pair.clock.advance(seconds: 20)
        actions = pair.exchange(pair.mn.careOfAddressChanged(hoa))
        #expect(actions == [.tunnelDown])
        #expect(pair.cache[hoa] == nil)
        #expect(pair.mn.status.state == "home")

        #expect(pair.agent.counters.authenticatedBindingUpdates == 4)
        #expect(pair.agent.counters.authRefusals.isEmpty)
        #expect(pair.mn.counters.acksUnauthenticated == 0 && pair.mn.counters.acksIgnored == 0)
        pair.expectNoKeysInLogs()
    }

    @Test func restartedMobileNodeResynchronisesItsSequenceNumber() throws {
        // 135 answers are authenticated and echo the timestamp, so the mobile node believes them.
        let pair = Pair()
        _ = pair.exchange(pair.mn.careOfAddressChanged(coa))
        pair.clock.advance(seconds: 5)
        let restarted = MobileNodeCore(configuration: pair.mn.configuration, clock: pair.clock,
                                       logger: pair.mnLogs.logger(), initialSequence: 39000)
        var actions = restarted.careOfAddressChanged(mnCoA2)
        var replies: [MobileNodeAction] = []
        while let bu = pair.packets(actions).first {
            actions = []
            for reply in pair.agent.handlePacket(bu, localAddresses: [ha]) {
                guard case .send(let packet, _) = reply else { continue }
                let back = restarted.handlePacket(packet)
                actions += back
                replies += back.filter { if case .send = $0 { return false } else { return true } }
            }
        }
        #expect(replies == [.registered(careOf: mnCoA2, lifetime: 600), .tunnelUp(careOf: mnCoA2)])
        #expect(restarted.counters.resyncs135 == 1)
        #expect(pair.cache[hoa]?.sequence == 40001 && pair.cache[hoa]?.careOfAddress == mnCoA2)
    }

    @Test func shutdownDeregisters() throws {
        let pair = Pair()
        _ = pair.exchange(pair.mn.careOfAddressChanged(coa))
        pair.clock.advance(seconds: 3)
        #expect(pair.exchange(pair.mn.shutdown()) == [.tunnelDown])
        #expect(pair.cache[hoa] == nil)
        #expect(pair.mn.counters.deregistrations == 1)
    }

    @Test(arguments: [60.0, -60.0])
    func clockSkewIsRepairedBy144(offset: Double) throws {
        let pair = Pair(mnClockOffset: offset)
        let actions = pair.exchange(pair.mn.careOfAddressChanged(coa))
        #expect(actions == [.registered(careOf: coa, lifetime: 600), .tunnelUp(careOf: coa)])
        #expect(pair.mn.counters.resyncs144 == 1)
        #expect(pair.agent.counters.authRefusals == [.staleTimestamp: 1])
        #expect(pair.cache[hoa]?.careOfAddress == coa)
        // Later Binding Updates stay in the window.
        pair.clock.advance(seconds: 20)
        #expect(pair.exchange(pair.mn.careOfAddressChanged(mnCoA2)).contains(.registered(careOf: mnCoA2, lifetime: 600)))
        #expect(pair.mn.counters.resyncs144 == 1)
    }

    @Test func wrongKeyNeverRegisters() throws {
        let pair = Pair(mnKey: MobilityKey(bytes: Array("not the real key".utf8)))
        var actions = pair.exchange(pair.mn.careOfAddressChanged(coa))
        // Two minutes of retransmissions.
        let end = pair.clock.now + 120_000_000_000
        while let deadline = pair.mn.nextDeadline, deadline <= end {
            pair.clock.now = deadline
            actions += pair.exchange(pair.mn.tick())
        }
        #expect(!actions.contains { if case .registered = $0 { return true } else { return false } })
        #expect(!actions.contains { if case .tunnelUp = $0 { return true } else { return false } })
        #expect(pair.cache.count == 0 && pair.dataPlane.installCalls == 0)
        #expect(pair.mn.counters.busSent > 5)
        #expect(pair.agent.counters.authRefusals[.badAuthenticator] == pair.mn.counters.busSent)
        // The 146 answers carry no authentication, so the mobile node cannot believe them.
        #expect(pair.mn.counters.acksUnauthenticated == pair.mn.counters.busSent)
        #expect(pair.mn.status.state == "registering")
        pair.expectNoKeysInLogs()
    }
}
