import ControlPlane

/// The fuzz targets. Every input starts with one selector byte: `FuzzTarget.allCases[byte %
/// count]` runs on the rest (unless MIP6_FUZZ_TARGET / --target pins one; the selector byte is
/// then still there and ignored, so every corpus works with every setting).
enum FuzzTarget: String, CaseIterable, Sendable {
    /// `MobilityHeaderCodec.decode` + round trip: [ctrl][source 16][destination 16][MH ...]
    case mh
    /// `HomeAgentCore.handlePacket`, a sequence of packets: [cfg] ([op][len 2][IPv6 packet])*
    case ha
    /// `MobileNodeCore.handlePacket`, after a first BU: [cfg] ([op][len 2][IPv6 packet])*
    case mn
    /// `KeyStore(parsing:)`: [text ...]
    case keys
    /// `IPv6PacketParser.parseNeighborAdvertisement` + builder round trip: [ctrl][packet ...]
    case na
    /// `IPv6PacketParser.parseMobility` + decode + `PacketBuilder` round trip: [ctrl][packet ...]
    case packet

    var selector: UInt8 { UInt8(FuzzTarget.allCases.firstIndex(of: self)!) }

    static func select(_ byte: UInt8) -> FuzzTarget {
        allCases[Int(byte) % allCases.count]
    }
}

enum Fuzz {
    /// Set from MIP6_FUZZ_TARGET or --target before the first input.
    nonisolated(unsafe) static var pinned: FuzzTarget?
    /// --replay with MIP6_FUZZ_VERBOSE=1: print what the cores did with each packet.
    nonisolated(unsafe) static var verbose = false

    static func trace(_ text: @autoclosure () -> String) {
        if verbose { print("  " + text()) }
    }

    /// One input. Returns normally unless a property fails (which traps).
    static func run(_ data: UnsafeRawBufferPointer) {
        guard data.count >= 1 else { return }
        let target = pinned ?? FuzzTarget.select(data[0])
        let body = UnsafeRawBufferPointer(rebasing: data[1...])
        switch target {
        case .mh: mhTarget(body)
        case .ha: haTarget(body)
        case .mn: mnTarget(body)
        case .keys: keyStoreTarget(body)
        case .na: naTarget(body)
        case .packet: packetTarget(body)
        }
    }

    // MARK: MH codec

    /// ctrl bit 0: repair the checksum before decoding. bit 1: also decode without checksum
    /// verification. Whatever decodes must re-encode (same source/destination) to a header that
    /// decodes to the same message, and encoding that again gives the same bytes.
    static func mhTarget(_ data: UnsafeRawBufferPointer) {
        var r = ByteReader(data)
        let ctrl = r.u8()
        let source = r.address()
        let destination = r.address()
        var mh = r.rest()
        if ctrl & 1 != 0 { Repair.mhChecksum(&mh, source: source, destination: destination) }
        if ctrl & 2 != 0 {
            if let m = try? MobilityHeaderCodec.decode(mh, source: source, destination: destination, verifyChecksum: false) {
                roundTrip(m, source: source, destination: destination)
            }
        }
        _ = MobilityHeaderCodec.peekType(mh)
        do {
            let m = try MobilityHeaderCodec.decode(mh, source: source, destination: destination)
            roundTrip(m, source: source, destination: destination)
        } catch {
            _ = error.fieldOffset
            _ = "\(error)"
        }
    }

    static func describe(_ a: HomeAgentAction) -> String {
        switch a {
        case .send(_, let description): return "send \(description)"
        case .startDAD(let hoa, let ll): return "startDAD \(hoa)" + (ll.map { " + \($0)" } ?? "")
        case .sendUnsolicitedNA(let hoa, let ll): return "NA \(hoa)" + (ll.map { " + \($0)" } ?? "")
        case .bindingInstalled(let b): return "installed \(b.homeAddress) -> \(b.careOfAddress) seq \(b.sequence) \(b.lifetime)s"
        case .bindingRemoved(let b, let why): return "removed \(b.homeAddress) (\(why))"
        }
    }

    /// The length `MobilityHeaderCodec.encode` gives `m`, from the alignment rules of RFC 6275
    /// §6.2 and RFC 4283/4285 (each option padded to its xn+y, the whole to 8 octets). Decoded
    /// options are stored without their padding, so a header packed without it decodes to a
    /// message that may not fit 2048 octets again: `encode` rejects that by contract.
    static func encodedLength(_ m: MobilityMessage) -> Int {
        var n: Int
        let options: [MobilityOption]
        switch m {
        case .bindingRefreshRequest(let x): n = 8; options = x.options
        case .bindingUpdate(let x): n = 12; options = x.options
        case .bindingAcknowledgement(let x): n = 12; options = x.options
        case .bindingError(let x): n = 24; options = x.options
        case .unrecognized(_, let data): return (6 + data.count + 7) / 8 * 8
        }
        for option in options {
            let (x, y, size): (Int, Int, Int)
            switch option {
            case .pad1: (x, y, size) = (1, 0, 1)
            case .padN(let k): (x, y, size) = (1, 0, k)
            case .bindingRefreshAdvice: (x, y, size) = (2, 0, 4)
            case .alternateCareOfAddress: (x, y, size) = (8, 6, 18)
            case .nonceIndices: (x, y, size) = (2, 0, 6)
            case .bindingAuthorizationData(let d): (x, y, size) = (8, 2, 2 + d.count)
            case .mobileNodeIdentifier(_, let id): (x, y, size) = (1, 0, 3 + id.count)
            // RFC 4285 §5 asks 4n+1; we lay it out at 8n+5 (which is 4n+1) so that, as the last
            // option (§5.1), the 19-octet MN-HA option ends the header with no padding after it.
            case .mobilityMessageAuthentication(_, _, let a): (x, y, size) = (8, 5, 7 + a.count)
            case .replayProtection: (x, y, size) = (8, 2, 10)
            // RFC 5213 §8.3-§8.8 (the MN Link-layer Identifier's "as its size needs": 8n+6).
            case .homeNetworkPrefix: (x, y, size) = (8, 4, 20)
            case .handoffIndicator, .accessTechnologyType: (x, y, size) = (1, 0, 4)
            case .mobileNodeLinkLayerIdentifier(let l): (x, y, size) = (8, 6, 4 + l.count)
            case .linkLocalAddress: (x, y, size) = (8, 6, 18)
            case .timestamp: (x, y, size) = (8, 2, 10)
            case .unknown(_, let d): (x, y, size) = (1, 0, 2 + d.count)
            }
            n += ((y - n) % x + x) % x + size
        }
        return (n + 7) / 8 * 8
    }

    static func roundTrip(_ m: MobilityMessage, source: IPv6Address, destination: IPv6Address) {
        guard encodedLength(m) <= 2048 else { return }
        let encoded = MobilityHeaderCodec.encode(m, source: source, destination: destination)
        let again: MobilityMessage
        do {
            again = try MobilityHeaderCodec.decode(encoded, source: source, destination: destination)
        } catch {
            check(false, "re-encoded \(m) does not decode: \(error); bytes \(hexString(encoded))")
            return
        }
        check(encoded.count == encodedLength(m), "encoded \(encoded.count) octets, §6.2 alignment says \(encodedLength(m))")
        check(again == m, "round trip changed the message: \(m) -> \(again)")
        let twice = MobilityHeaderCodec.encode(again, source: source, destination: destination)
        check(twice == encoded, "encoding is not stable: \(hexString(encoded)) vs \(hexString(twice))")
        _ = m.mhType
        if case .bindingAcknowledgement(let ba) = m { _ = ba.status.description; _ = ba.bindingRefreshAdvice }
        if case .bindingUpdate(let bu) = m { _ = bu.alternateCareOfAddress; _ = bu.lifetimeSeconds; _ = bu.proxyOptions.networkAccessIdentifier }
    }

    // MARK: Home agent

    /// cfg bits: 0 authentication policy, 1 DAD, 2 capacity 2 (else 16), 3 no error messages,
    /// 4 no Parameter Problem, 5-6 max lifetime (3600 s, 4 s, 60 s, 262140 s), 7 trace logging.
    ///
    /// op bits: 0 repair the MH checksum, 1 repair the MN-HA authenticator, 2 DAD finds a
    /// duplicate, 3 leave DAD unanswered for now, 4-5 advance both clocks (0, 1, 100, 5000 s)
    /// before the packet, 6 expire() after it, 7 the data plane fails its next write.
    static func haTarget(_ data: UnsafeRawBufferPointer) {
        var r = ByteReader(data)
        let cfg = r.u8()
        let clock = FuzzClock()
        let dataPlane = NullDataPlane()
        let capacity = cfg & 4 != 0 ? 2 : 16
        let lifetimes: [UInt32] = [3600, 4, 60, 262_140]
        let config = HomeAgentConfiguration(
            homeAgentAddress: Fixture.homeAgent, homePrefix: Fixture.homePrefix,
            maxLifetime: lifetimes[Int(cfg >> 5 & 3)], capacity: capacity,
            duplicateAddressDetection: cfg & 2 != 0, dadTimeout: 10,
            errorMessagesPerSecond: cfg & 8 != 0 ? 0 : 10, sendParameterProblem: cfg & 16 == 0,
            authentication: cfg & 1 != 0 ? HomeAgentAuthenticationPolicy(keys: Fixture.keys, allowedSkew: 7, clock: clock) : nil)
        let cache = BindingCache(capacity: capacity, dataPlane: dataPlane)
        let core = HomeAgentCore(configuration: config, cache: cache, clock: clock,
                                 logger: cfg & 0x80 != 0 ? Fixture.traceLogger : Fixture.quietLogger)
        var heldDAD: [IPv6Address] = []
        var acceptedTimestamps: [IPv6Address: UInt64] = [:]
        var records = 0
        while !r.isEmpty, records < 16 {
            records += 1
            let op = r.u8()
            var packet = r.take(Int(r.u16()))
            clock.advance(seconds: [0, 1, 100, 5000][Int(op >> 4 & 3)])
            dataPlane.failNext = op & 0x80 != 0
            Repair.withMobilityHeader(&packet) { p, mh in
                if op & 2 != 0 {
                    let hoa = p.homeAddressOption ?? p.source
                    var coa = p.source
                    if case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(mh, source: p.checksumSource,
                                                                                       destination: p.checksumDestination,
                                                                                       verifyChecksum: false),
                       let alt = bu.alternateCareOfAddress {
                        coa = alt
                    }
                    Repair.authenticator(&mh, careOf: coa, homeAddress: hoa) { Fixture.keys[spi: $0]?.key }
                }
                if op & 1 != 0 { Repair.mhChecksum(&mh, source: p.checksumSource, destination: p.checksumDestination) }
            }
            var actions = core.handlePacket(packet, localAddresses: Fixture.localAddresses)
            if config.authentication != nil {
                checkAuthenticatedOutcome(actions, request: packet, now: clock.ntp, lastAccepted: &acceptedTimestamps)
            }
            for case .startDAD(let hoa, _) in actions {
                if op & 8 != 0 {
                    heldDAD.append(hoa)
                } else {
                    actions += core.dadFinished(homeAddress: hoa, duplicate: op & 4 != 0)
                }
            }
            if op & 8 == 0, !heldDAD.isEmpty {
                for hoa in heldDAD { actions += core.dadFinished(homeAddress: hoa, duplicate: op & 4 != 0) }
                heldDAD = []
            }
            if op & 0x40 != 0 { actions += core.expire() }
            trace("ha record \(records) op 0x\(hexString([op])) \(packet.count) bytes -> \(actions.map(describe))")
            checkHomeAgent(actions, core: core, config: config, request: packet)
            dataPlane.failNext = false
        }
        _ = core.nextDeadline
        _ = core.pendingDAD
        _ = core.counters.totalDrops
    }

    /// With an authentication policy, a BU that got past authentication (DAD started, or a BA
    /// signed with the MN-HA key other than 144/145/146) must check out when verified here,
    /// independently of `MobilityAuthentication` (RFC 4285 §5.1, §6): its last MN-HA option's
    /// authenticator is HMAC-SHA1(key of its SPI, CoA | HoA | MH up to the SPI) with the fixture
    /// keys, its NAI is the SPI's, the SPI covers the home address, and its timestamp is within
    /// 7 s of the clock and newer than the last one that got past for this home address.
    static func checkAuthenticatedOutcome(_ actions: [HomeAgentAction], request: [UInt8], now: UInt64,
                                          lastAccepted: inout [IPv6Address: UInt64]) {
        var passed = actions.contains { if case .startDAD = $0 { return true } else { return false } }
        for case .send(let bytes, _) in actions {
            guard let p = try? IPv6PacketParser.parseMobility(bytes),
                  case .bindingAcknowledgement(let ba)? = try? MobilityHeaderCodec.decode(
                      p.mh, source: p.checksumSource, destination: p.checksumDestination)
            else { continue }
            let signed = ba.options.contains { if case .mobilityMessageAuthentication = $0 { return true } else { return false } }
            if signed, ![144, 145, 146].contains(ba.status.rawValue) { passed = true }
            check(signed || ba.status.rawValue == 146, "unauthenticated BA status \(ba.status) under an authentication policy")
        }
        guard passed else { return }
        guard let q = try? IPv6PacketParser.parseMobility(request),
              case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(q.mh, source: q.checksumSource,
                                                                             destination: q.checksumDestination),
              let off = Repair.authOptionOffset(q.mh)
        else {
            check(false, "a BU without a well-formed MN-HA option got past authentication")
            return
        }
        let hoa = q.homeAddressOption ?? q.source
        let coa = bu.alternateCareOfAddress ?? q.source
        var spi: UInt32 = 0
        for k in 3...6 { spi = spi << 8 | UInt32(q.mh[off + k]) }
        guard let entry = Fixture.keys[spi: spi] else {
            check(false, "BU with unknown SPI \(spi) got past authentication")
            return
        }
        var data = Array(q.mh[0..<off + 7])
        data[4] = 0
        data[5] = 0
        let expected = MobilityAuthentication.authenticator(key: entry.key, careOf: coa, homeAddress: hoa, mhData: data)
        check(Array(q.mh[off + 7..<off + 19]) == expected, "BU with a wrong authenticator got past authentication")
        var nai: [UInt8]?
        for case .mobileNodeIdentifier(1, let id) in bu.options where !id.isEmpty && nai == nil { nai = id }
        check(nai == Array(entry.nai.utf8), "BU with NAI \(nai.map { String(decoding: $0, as: UTF8.self) } ?? "none") got past SPI \(spi)")
        check(entry.permits(hoa, homePrefix: Fixture.homePrefix), "SPI \(spi) registered home address \(hoa)")
        guard let ts = Repair.replayProtection(q.mh)?.value else {
            check(false, "BU without a timestamp got past authentication")
            return
        }
        check(NTPTimestamp.within(ts, now, seconds: 7), "BU timestamp \(NTPTimestamp.seconds(NTPTimestamp.difference(ts, now))) s off got past")
        if let last = lastAccepted[hoa] {
            check(NTPTimestamp.isNewer(ts, than: last), "replayed BU timestamp got past (not newer than the last)")
        }
        lastAccepted[hoa] = ts
    }

    /// What the home agent sends must be well formed; an authenticated BA must verify at the
    /// mobile node; the cache never outgrows its capacity; a binding is for the home prefix.
    static func checkHomeAgent(_ actions: [HomeAgentAction], core: HomeAgentCore, config: HomeAgentConfiguration,
                               request: [UInt8]) {
        check(core.cache.count <= config.capacity, "cache holds \(core.cache.count) > capacity \(config.capacity)")
        for action in actions {
            switch action {
            case .send(let bytes, let description):
                check(bytes.count <= 1280 || bytes.count <= request.count + 200,
                      "reply of \(bytes.count) bytes to a \(request.count)-byte packet: \(description)")
                guard bytes.count >= 40, bytes[6] != 58 else { continue } // ICMPv6 error: checked by length only
                let p: MobilityPacket
                let m: MobilityMessage
                do {
                    p = try IPv6PacketParser.parseMobility(bytes)
                    m = try MobilityHeaderCodec.decode(p.mh, source: p.checksumSource, destination: p.checksumDestination)
                } catch {
                    check(false, "home agent sent a packet that does not decode (\(error)): \(description)")
                    return
                }
                check(p.source == Fixture.homeAgent || p.source == Fixture.otherLocal,
                      "reply from \(p.source), not one of our addresses: \(description)")
                guard case .bindingAcknowledgement(let ba) = m else { continue }
                let signed = ba.options.contains {
                    if case .mobilityMessageAuthentication = $0 { return true } else { return false }
                }
                guard signed, let spi = ba.options.lazy.compactMap({ option -> UInt32? in
                    if case .mobilityMessageAuthentication(_, let spi, _) = option { return spi } else { return nil }
                }).first, let association = Fixture.keys[spi: spi]?.association else { continue }
                // The BA covers the BU's care-of address (source or Alternate CoA) and home address.
                let hoa = p.finalDestination
                var careOfs = [p.destination]
                if let q = try? IPv6PacketParser.parseMobility(request) {
                    careOfs.append(q.source)
                    if case .bindingUpdate(let bu)? = try? MobilityHeaderCodec.decode(q.mh, source: q.checksumSource,
                                                                                       destination: q.checksumDestination,
                                                                                       verifyChecksum: false),
                       let alt = bu.alternateCareOfAddress {
                        careOfs.append(alt)
                    }
                }
                // A BU without Replay Protection refused before its timestamp was looked at (146 for
                // a wrong NAI or home address) gets a BA without one, which a mobile node ignores
                // (it always sends one); the authenticator must still verify.
                let echoesNoTimestamp = !ba.options.contains {
                    if case .replayProtection = $0 { return true } else { return false }
                }
                let verifies = careOfs.contains { careOf in
                    let result = MobilityAuthentication.verifyBindingAcknowledgement(
                        mh: p.mh, ba: ba, careOf: careOf, homeAddress: hoa, association: association,
                        expectedTimestamp: nil).result
                    return result == .ok || (result == .missingTimestamp && echoesNoTimestamp)
                }
                check(verifies, "authenticated BA does not verify at the mobile node: \(description)")
            case .bindingInstalled(let b):
                check(config.homePrefix.contains(b.homeAddress), "binding outside the home prefix: \(b.homeAddress)")
                check(b.careOfAddress.isUnicastRoutable, "binding to care-of address \(b.careOfAddress)")
                check(b.lifetime > 0 && b.lifetime <= max(4, config.maxLifetime), "binding lifetime \(b.lifetime)")
                check(core.cache[b.homeAddress] == b, "installed binding is not the cached one")
            case .bindingRemoved(let b, _):
                check(core.cache[b.homeAddress] == nil, "removed binding \(b.homeAddress) still cached")
            case .startDAD(let hoa, let ll), .sendUnsolicitedNA(let hoa, let ll):
                check(config.homePrefix.contains(hoa), "DAD/NA for \(hoa) outside the home prefix")
                check(ll == nil || ll == hoa.derivedLinkLocal, "link-local \(String(describing: ll)) is not \(hoa)'s")
            }
        }
    }

    // MARK: Mobile node

    /// cfg bits: 0 credentials (MN-HA authentication), 1 start at home (else away at careOf),
    /// 2 trace logging.
    ///
    /// op bits: 0 repair the MH checksum, 1 repair the MN-HA authenticator, 2-3 event before
    /// the packet (none, tick, move between the two care-of addresses, home / no address),
    /// 4-5 advance both clocks (0, 1, 30, 5000 s), 6 set a BA's sequence number to that of the
    /// last BU sent, 7 set its Replay Protection timestamp to that of the last BU sent.
    static func mnTarget(_ data: UnsafeRawBufferPointer) {
        var r = ByteReader(data)
        let cfg = r.u8()
        let clock = FuzzClock()
        let credentials = cfg & 1 != 0
            ? MobileNodeCredentials(nai: Fixture.mn1.nai, spi: Fixture.mn1.spi, key: Fixture.mn1.key, clock: clock) : nil
        let config = MobileNodeConfiguration(homeAddress: Fixture.homeAddress, homeAgent: Fixture.homeAgent,
                                             homePrefix: Fixture.homePrefix, requestedLifetime: 600,
                                             credentials: credentials)
        let core = MobileNodeCore(configuration: config, clock: clock,
                                  logger: cfg & 4 != 0 ? Fixture.traceLogger : Fixture.quietLogger,
                                  initialSequence: Fixture.mnInitialSequence)
        var careOf: IPv6Address? = cfg & 2 != 0 ? Fixture.homeAddress : Fixture.careOf
        var lastBU: (sequence: UInt16, timestamp: UInt64?, source: IPv6Address)?
        func absorb(_ actions: [MobileNodeAction]) {
            for case .send(let bytes, let description) in actions {
                let p: MobilityPacket
                let m: MobilityMessage
                do {
                    p = try IPv6PacketParser.parseMobility(bytes)
                    m = try MobilityHeaderCodec.decode(p.mh, source: p.checksumSource, destination: p.checksumDestination)
                } catch {
                    check(false, "mobile node sent a packet that does not decode (\(error)): \(description)")
                    return
                }
                guard case .bindingUpdate(let bu) = m else {
                    check(false, "mobile node sent \(m), not a BU")
                    return
                }
                check(p.destination == Fixture.homeAgent, "BU to \(p.destination)")
                check((p.homeAddressOption ?? p.source) == Fixture.homeAddress, "BU for another home address")
                lastBU = (bu.sequence, Repair.replayProtection(p.mh)?.value, p.source)
            }
        }
        absorb(core.careOfAddressChanged(careOf))
        var records = 0
        var toggle = false
        while !r.isEmpty, records < 16 {
            records += 1
            let op = r.u8()
            var packet = r.take(Int(r.u16()))
            clock.advance(seconds: [0, 1, 30, 5000][Int(op >> 4 & 3)])
            switch op >> 2 & 3 {
            case 1: absorb(core.tick())
            case 2:
                careOf = careOf == Fixture.careOf ? Fixture.careOf2 : Fixture.careOf
                absorb(core.careOfAddressChanged(careOf))
            case 3:
                toggle.toggle()
                careOf = toggle ? Fixture.homeAddress : nil
                absorb(core.careOfAddressChanged(careOf))
            default: break
            }
            Repair.withMobilityHeader(&packet) { p, mh in
                guard mh.count >= 12 else { return }
                if mh[2] == 6, let last = lastBU {
                    if op & 0x40 != 0 { mh[8] = UInt8(last.sequence >> 8); mh[9] = UInt8(last.sequence & 0xff) }
                    if op & 0x80 != 0, let ts = last.timestamp, let rp = Repair.replayProtection(mh) {
                        for k in 0..<8 { mh[rp.offset + 2 + k] = UInt8(ts >> UInt64(56 - 8 * k) & 0xff) }
                    }
                }
                if op & 2 != 0, let last = lastBU {
                    Repair.authenticator(&mh, careOf: last.source, homeAddress: Fixture.homeAddress) {
                        $0 == Fixture.mn1.spi ? Fixture.mn1.key : nil
                    }
                }
                if op & 1 != 0 { Repair.mhChecksum(&mh, source: p.checksumSource, destination: p.checksumDestination) }
            }
            let before = lastBU
            let actions = core.handlePacket(packet)
            if credentials != nil, actions.contains(where: { if case .registered = $0 { return true } else { return false } }) {
                checkAcceptedBA(packet, lastBU: before)
            }
            trace("mn record \(records) op 0x\(hexString([op])) \(packet.count) bytes -> \(actions) state \(core.status.state)")
            absorb(actions)
            for action in actions {
                if case .registered(let coa, let lifetime) = action {
                    check(lifetime > 0 && lifetime <= 600, "registered for \(lifetime) s, asked for 600")
                    check(!config.isAtHome(coa), "registered a care-of address at home: \(coa)")
                }
            }
        }
        absorb(core.tick())
        _ = core.nextDeadline
        let status = core.status
        check(["home", "registering", "registered", "deregistering", "no-care-of-address", "failed"].contains(status.state),
              "unknown state \(status.state)")
        absorb(core.shutdown())
    }

    /// With credentials, a BA the mobile node registered on must check out when verified here,
    /// independently of `MobilityAuthentication`: MN-HA authenticator with our key over the
    /// care-of address of the BU it answers and the home address, our SPI, the BU's sequence
    /// number and Replay Protection timestamp (RFC 4285 §5.1, §6; RFC 6275 §11.7.3).
    static func checkAcceptedBA(_ packet: [UInt8], lastBU: (sequence: UInt16, timestamp: UInt64?, source: IPv6Address)?) {
        guard let bu = lastBU, let p = try? IPv6PacketParser.parseMobility(packet), p.mh.count >= 12,
              let off = Repair.authOptionOffset(p.mh)
        else {
            check(false, "registered on a BA without an MN-HA option or with no BU outstanding")
            return
        }
        var spi: UInt32 = 0
        for k in 3...6 { spi = spi << 8 | UInt32(p.mh[off + k]) }
        check(spi == Fixture.mn1.spi, "registered on a BA with SPI \(spi)")
        var data = Array(p.mh[0..<off + 7])
        data[4] = 0
        data[5] = 0
        let expected = MobilityAuthentication.authenticator(key: Fixture.mn1.key, careOf: bu.source,
                                                            homeAddress: Fixture.homeAddress, mhData: data)
        check(Array(p.mh[off + 7..<off + 19]) == expected, "registered on a BA with a wrong authenticator")
        check(UInt16(p.mh[8]) << 8 | UInt16(p.mh[9]) == bu.sequence, "registered on a BA for another sequence number")
        check(Repair.replayProtection(p.mh)?.value == bu.timestamp, "registered on a BA that does not echo the BU's timestamp")
    }

    // MARK: Key file

    /// Any text: parse, then the entries must satisfy what `KeyStore` promises, and no text
    /// form may show a key.
    static func keyStoreTarget(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        // The format treats "\r" as blank, so a file saved with CRLF line ends must read the
        // same as with LF: same entries or the same error on the same line.
        let lf = text.replacing("\r\n", with: "\n")
        let outcome = Result { () throws(KeyStoreError) in try KeyStore(parsing: text) }
        let lfOutcome = Result { () throws(KeyStoreError) in try KeyStore(parsing: lf) }
        switch (outcome, lfOutcome) {
        case (.success(let a), .success(let b)):
            check(a.entries == b.entries, "CRLF and LF texts give different entries: \(a) vs \(b)")
        case (.failure(let a), .failure(let b)):
            check(a == b, "CRLF and LF texts fail differently: \(a) vs \(b)")
        default:
            check(false, "CRLF and LF texts differ: \(outcome) vs \(lfOutcome)")
        }
        let store: KeyStore
        switch outcome {
        case .success(let s): store = s
        case .failure(let error):
            _ = error.description
            return
        }
        var spis = Set<UInt32>()
        for entry in store.entries {
            check(entry.spi > 255, "reserved SPI \(entry.spi) accepted")
            check((16...64).contains(entry.key.count), "key of \(entry.key.count) octets accepted")
            check(!entry.nai.isEmpty && entry.nai.utf8.count <= 254, "NAI of \(entry.nai.utf8.count) octets accepted")
            check(spis.insert(entry.spi).inserted, "duplicate SPI \(entry.spi) accepted")
            check(store[spi: entry.spi] == entry, "lookup by SPI \(entry.spi) finds another entry")
            if case .exact(let a) = entry.homeAddress { check(a.isUnicastRoutable, "home address \(a) accepted") }
            _ = entry.permits(Fixture.homeAddress, homePrefix: Fixture.homePrefix)
            // No text form shows the key (the NAI is the user's text, so only the key's part is checked).
            check(entry.key.description == "<redacted, \(entry.key.count) bytes>"
                  && String(reflecting: entry.key) == entry.key.description
                  && "\(entry)".hasSuffix(" key \(entry.key)")
                  && entry.association.description.hasSuffix("key: \(entry.key))"), "a text form shows the key")
        }
    }

    // MARK: Neighbor Advertisement

    /// ctrl bit 0: repair the ICMPv6 checksum when ICMPv6 follows the IPv6 header directly.
    /// Then: whatever parses has a non-multicast target; and an NA built from fuzzed fields
    /// parses back to the same fields.
    static func naTarget(_ data: UnsafeRawBufferPointer) {
        var r = ByteReader(data)
        let ctrl = r.u8()
        var packet = r.rest()
        if ctrl & 1 != 0, packet.count >= 44, packet[0] >> 4 == 6, packet[6] == 58 {
            let end = min(packet.count, 40 + (Int(packet[4]) << 8 | Int(packet[5])))
            var icmp = Array(packet[40..<end])
            if icmp.count >= 4 {
                icmp[2] = 0
                icmp[3] = 0
                let src = IPv6Address(bytes: packet[8..<24])
                let dst = IPv6Address(bytes: packet[24..<40])
                let c = InternetChecksum.upperLayer(source: src, destination: dst, nextHeader: 58, payload: icmp)
                packet[42] = UInt8(c >> 8)
                packet[43] = UInt8(c & 0xff)
            }
        }
        if let na = IPv6PacketParser.parseNeighborAdvertisement(packet) {
            check(!na.target.isMulticast, "NA for multicast target \(na.target) accepted")
        }
        _ = try? IPv6PacketParser.parseMobility(packet)

        // Builder round trip from the first bytes of the input.
        var f = ByteReader(data)
        let flags = f.u8()
        let target = f.address()
        let source = f.address()
        let lla = f.take(Int(flags & 7))
        let built = PacketBuilder.neighborAdvertisement(
            target: target, source: source, destination: IPv6Address("ff02::1")!,
            flags: (router: flags & 0x80 != 0, solicited: flags & 0x40 != 0, override: flags & 0x20 != 0),
            targetLinkLayer: flags & 8 != 0 ? lla : nil)
        let parsed = IPv6PacketParser.parseNeighborAdvertisement(built)
        if target.isMulticast {
            check(parsed == nil, "built NA for multicast target parsed")
        } else {
            check(parsed?.target == target && parsed?.source == source && parsed?.flags == flags & 0xe0,
                  "built NA does not parse back: \(hexString(built))")
        }
        let ns = PacketBuilder.neighborSolicitation(target: target, source: source, destination: target.solicitedNodeMulticast,
                                                    sourceLinkLayer: flags & 8 != 0 ? lla : nil)
        check(IPv6PacketParser.parseNeighborAdvertisement(ns) == nil, "an NS parsed as an NA")
    }

    // MARK: Whole packets

    /// ctrl bit 0: repair the MH checksum. Whatever parses: the MH is the payload tail; what
    /// decodes can be rebuilt with `PacketBuilder` (BU, BA, BE) and parses back the same.
    static func packetTarget(_ data: UnsafeRawBufferPointer) {
        var r = ByteReader(data)
        let ctrl = r.u8()
        var packet = r.rest()
        if ctrl & 1 != 0 {
            Repair.withMobilityHeader(&packet) { p, mh in
                Repair.mhChecksum(&mh, source: p.checksumSource, destination: p.checksumDestination)
            }
        }
        let p: MobilityPacket
        do {
            p = try IPv6PacketParser.parseMobility(packet)
        } catch {
            _ = "\(error)"
            _ = IPv6PacketParser.parseNeighborAdvertisement(packet)
            return
        }
        check(p.mhOffset >= 40 && p.mhOffset + p.mh.count <= packet.count
              && Array(packet[p.mhOffset..<p.mhOffset + p.mh.count]) == p.mh, "MH is not where mhOffset says")
        guard let m = try? MobilityHeaderCodec.decode(p.mh, source: p.checksumSource, destination: p.checksumDestination),
              encodedLength(m) <= 2048
        else { return }
        let rebuilt: [UInt8]
        switch m {
        case .bindingUpdate(let bu):
            let hoa = p.homeAddressOption ?? p.source
            rebuilt = PacketBuilder.bindingUpdate(bu, careOf: p.source, homeAgent: p.checksumDestination, homeAddress: hoa)
        case .bindingAcknowledgement(let ba):
            rebuilt = PacketBuilder.bindingAcknowledgement(ba, from: p.source, to: p.destination,
                                                           homeAddress: p.routingType2Address)
        case .bindingError(let be):
            rebuilt = PacketBuilder.bindingError(be, from: p.source, to: p.checksumDestination)
        default:
            return
        }
        guard let q = try? IPv6PacketParser.parseMobility(rebuilt),
              let again = try? MobilityHeaderCodec.decode(q.mh, source: q.checksumSource, destination: q.checksumDestination)
        else {
            check(false, "rebuilt packet does not parse/decode: \(hexString(rebuilt))")
            return
        }
        check(again == m, "rebuilt packet decodes differently: \(m) -> \(again)")
    }
}

