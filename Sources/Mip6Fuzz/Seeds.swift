import ControlPlane
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The seed corpus: real messages, built with the project's own builders and cores (a BA in a
/// mobile-node seed is what the home agent core answered to that mobile node's BU), framed
/// for the fuzz targets of Targets.swift.
enum Seeds {
    typealias Seed = (name: String, bytes: [UInt8])

    static func all() -> [Seed] {
        mhSeeds() + withTraceLogging(haSeeds(), bit: 0x80) + withTraceLogging(mnSeeds(), bit: 4)
            + keySeeds() + naSeeds() + packetSeeds()
    }

    /// Each seed, and a copy with the cfg bit that turns on trace logging (byte 1).
    static func withTraceLogging(_ seeds: [Seed], bit: UInt8) -> [Seed] {
        seeds.flatMap { seed -> [Seed] in
            var traced = seed.bytes
            traced[1] |= bit
            return [seed, (seed.name + "-trace", traced)]
        }
    }

    /// Writes every seed as DIR/NAME; returns how many.
    static func write(to directory: String) -> Int {
        mkdir(directory, 0o755)
        var n = 0
        for seed in all() {
            let path = directory + "/" + seed.name
            guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
            _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
            n += 1
        }
        return n
    }

    // MARK: Framing

    static func record(_ op: UInt8, _ packet: [UInt8]) -> [UInt8] {
        [op, UInt8(packet.count >> 8), UInt8(packet.count & 0xff)] + packet
    }

    static func frame(_ target: FuzzTarget, _ body: [UInt8]) -> [UInt8] { [target.selector] + body }

    // MARK: Messages

    static let everyOption: [MobilityOption] = [
        .bindingRefreshAdvice(10),
        .alternateCareOfAddress(Fixture.careOf),
        .nonceIndices(home: 0x1234, careOf: 0x5678),
        .bindingAuthorizationData([UInt8](repeating: 0xab, count: 12)),
        .mobileNodeIdentifier(subtype: 1, identifier: Array("mn1@example.net".utf8)),
        .replayProtection(Fixture.ntpBase),
        .unknown(type: 200, data: [1, 2, 3]),
        .mobilityMessageAuthentication(subtype: 1, spi: 0x1001, authenticator: [UInt8](repeating: 0, count: 12)),
    ]

    static func bu(_ seq: UInt16, lifetime: UInt16 = 150, flags: BUFlags = [.ack, .home],
                   options: [MobilityOption] = []) -> BindingUpdate {
        BindingUpdate(sequence: seq, flags: flags, lifetime: lifetime, options: options)
    }

    /// A BU as a mobile node away from home sends it (Home Address option), optionally sealed.
    static func buPacket(_ bu: BindingUpdate, careOf: IPv6Address = Fixture.careOf, to ha: IPv6Address = Fixture.homeAgent,
                         home: IPv6Address = Fixture.homeAddress, seal: MNHASecurityAssociation? = nil,
                         timestamp: UInt64? = Fixture.ntpBase) -> [UInt8] {
        guard let seal else { return PacketBuilder.bindingUpdate(bu, careOf: careOf, homeAgent: ha, homeAddress: home) }
        let coa = bu.alternateCareOfAddress ?? careOf
        return PacketBuilder.bindingUpdate(bu, careOf: careOf, homeAgent: ha, homeAddress: home,
                                           authentication: MNHASeal(association: seal, timestamp: timestamp,
                                                                    careOf: coa, homeAddress: home))
    }

    /// A message from the home agent to the home address through a Type 2 Routing Header.
    static func fromHomeAgent(_ m: MobilityMessage, careOf: IPv6Address = Fixture.careOf) -> [UInt8] {
        let mh = MobilityHeaderCodec.encode(m, source: Fixture.homeAgent, destination: Fixture.homeAddress)
        let rh2: [UInt8] = [ipProtoMobility, 2, 2, 1, 0, 0, 0, 0] + Fixture.homeAddress.bytes
        return ipv6Packet(source: Fixture.homeAgent, destination: careOf, nextHeader: 43, extensionHeaders: rh2, payload: mh)
    }

    static func mhOnly(_ m: MobilityMessage, from source: IPv6Address, to destination: IPv6Address) -> [UInt8] {
        let mh = MobilityHeaderCodec.encode(m, source: source, destination: destination)
        return ipv6Packet(source: source, destination: destination, nextHeader: ipProtoMobility, payload: mh)
    }

    // MARK: mh

    static func mhSeeds() -> [Seed] {
        let s = Fixture.homeAddress, d = Fixture.homeAgent
        func seed(_ name: String, ctrl: UInt8 = 0, _ mh: [UInt8], _ src: IPv6Address = s, _ dst: IPv6Address = d) -> Seed {
            ("mh-" + name, frame(.mh, [ctrl] + src.bytes + dst.bytes + mh))
        }
        let messages: [(String, MobilityMessage)] = [
            ("bu", .bindingUpdate(bu(7, lifetime: 900))),
            ("bu-altcoa", .bindingUpdate(bu(7, lifetime: 900, options: [.alternateCareOfAddress(Fixture.careOf)]))),
            ("bu-every-option", .bindingUpdate(bu(8, flags: [.ack, .home, .linkLocal, .key, .mapRegistration, .mobileRouter, .proxy],
                                                 options: everyOption))),
            ("ba", .bindingAcknowledgement(BindingAcknowledgement(status: .accepted, sequence: 7, lifetime: 900))),
            ("ba-bra", .bindingAcknowledgement(BindingAcknowledgement(status: .accepted, flags: [.key, .mobileRouter, .proxy],
                                                                      sequence: 7, lifetime: 900,
                                                                      options: [.bindingRefreshAdvice(100)]))),
            ("ba-135", .bindingAcknowledgement(BindingAcknowledgement(status: .sequenceOutOfWindow, sequence: 40, lifetime: 0))),
            ("ba-every-option", .bindingAcknowledgement(BindingAcknowledgement(status: .idMismatch, sequence: 1, lifetime: 0,
                                                                               options: everyOption))),
            ("be", .bindingError(BindingError(status: 2, homeAddress: Fixture.homeAddress))),
            ("be-options", .bindingError(BindingError(status: 1, options: [.nonceIndices(home: 1, careOf: 2), .padN(6)]))),
            ("brr", .bindingRefreshRequest(BindingRefreshRequest())),
            ("brr-options", .bindingRefreshRequest(BindingRefreshRequest(options: [.unknown(type: 33, data: []), .pad1]))),
            ("hoti", .unrecognized(type: 1, data: [0, 0] + [UInt8](repeating: 0x11, count: 8))),
            ("type42", .unrecognized(type: 42, data: [9, 9])),
        ]
        var seeds = messages.map { seed($0.0, MobilityHeaderCodec.encode($0.1, source: s, destination: d)) }
        let sealed = MobilityAuthentication.seal(.bindingUpdate(bu(9, options: [.alternateCareOfAddress(Fixture.careOf)])),
                                                 with: MNHASeal(association: Fixture.mn1, timestamp: Fixture.ntpBase,
                                                                careOf: Fixture.careOf, homeAddress: s),
                                                 checksumSource: s, checksumDestination: d)
        seeds.append(seed("bu-authenticated", sealed))
        // Broken on purpose, checksum repaired by the harness (ctrl bit 0).
        var badProto = MobilityHeaderCodec.encode(.bindingUpdate(bu(1)), source: s, destination: d)
        badProto[0] = 6
        seeds.append(seed("bad-payload-proto", ctrl: 1, badProto))
        seeds.append(seed("short", ctrl: 1, [59, 0, 5, 0, 0, 0, 0]))
        seeds.append(seed("bu-below-min", ctrl: 1, [59, 0, 5, 0, 0, 0, 0, 1]))
        // 113 Alternate Care-of Address options packed without their 8n+6 padding: the largest
        // header there is (2048 octets), which decodes but does not fit when re-encoded.
        let packed: [UInt8] = [59, 255, 5, 0, 0, 0, 0, 1, 0xc0, 0, 0, 1]
            + (0..<113).flatMap { _ in [MobilityOption.Kind.alternateCareOfAddress, 16] + Fixture.careOf.bytes } + [1, 0]
        seeds.append(seed("bu-2048-packed-altcoa", ctrl: 1, packed))
        seeds.append(seed("option-overrun", ctrl: 3, [59, 1, 5, 0, 0, 0, 0, 1, 0xc0, 0, 0, 1, 3, 16, 0, 0]))
        return seeds
    }

    // MARK: ha

    static func haSeeds() -> [Seed] {
        func seed(_ name: String, cfg: UInt8, _ records: [[UInt8]]) -> Seed {
            ("ha-" + name, frame(.ha, [cfg] + records.flatMap { $0 }))
        }
        let ha = Fixture.homeAgent, hoa = Fixture.homeAddress
        let register = buPacket(bu(10))
        return [
            seed("bu-hao", cfg: 0, [record(0, register)]),
            seed("bu-refresh-move-dereg", cfg: 0, [
                record(0, register),
                record(0x10, buPacket(bu(11))),
                record(0x10, buPacket(bu(12), careOf: Fixture.careOf2)),
                record(0x10, buPacket(bu(12))), // 135
                record(0x10, buPacket(bu(13, lifetime: 0))),
            ]),
            seed("bu-dad", cfg: 2, [record(0, register)]),
            seed("bu-dad-duplicate", cfg: 2, [record(4, register)]),
            seed("bu-dad-held-retransmit-expire", cfg: 2, [
                record(8, register), record(0x18, buPacket(bu(11))), record(0x68, buPacket(bu(12, lifetime: 0))),
            ]),
            seed("bu-at-home", cfg: 0, [record(0, PacketBuilder.bindingUpdate(bu(3), careOf: hoa, homeAgent: ha, homeAddress: hoa))]),
            seed("bu-altcoa", cfg: 0, [record(0, buPacket(bu(4, options: [.alternateCareOfAddress(Fixture.careOf2)])))]),
            seed("bu-no-h-flag", cfg: 0, [record(0, buPacket(bu(4, flags: [.ack])))]),
            seed("bu-to-other-local-131", cfg: 0, [record(0, buPacket(bu(5), to: Fixture.otherLocal))]),
            seed("bu-outside-prefix-132", cfg: 0, [record(0, buPacket(bu(5), home: IPv6Address("2001:db8:99::1")!))]),
            seed("bu-ha-address-129", cfg: 0, [record(0, buPacket(bu(5), home: ha))]),
            seed("dereg-unknown-133", cfg: 0, [record(0, buPacket(bu(5, lifetime: 0)))]),
            seed("capacity-130", cfg: 4, [
                record(0, buPacket(bu(1))),
                record(0, buPacket(bu(1), home: Fixture.homeAddress2)),
                record(0, buPacket(bu(1), home: IPv6Address("2001:db8:1::300")!)),
            ]),
            seed("expire", cfg: 0x20, [record(0, register), record(0x70, buPacket(bu(11)))]),
            seed("dataplane-failure", cfg: 0, [record(0x80, register), record(0, register), record(0x80, buPacket(bu(11, lifetime: 0)))]),
            seed("auth-bu", cfg: 1, [record(0, buPacket(bu(20), seal: Fixture.mn1))]),
            seed("auth-bu-refresh-replay", cfg: 1, [
                record(0, buPacket(bu(20), seal: Fixture.mn1)),
                record(0x10, buPacket(bu(21), seal: Fixture.mn1, timestamp: Fixture.ntpBase + (1 << 32))),
                record(0, buPacket(bu(20), seal: Fixture.mn1)),
            ]),
            seed("auth-bu-any", cfg: 1, [record(0, buPacket(bu(20), home: Fixture.homeAddress2, seal: Fixture.anyMN))]),
            seed("auth-bu-altcoa-dad", cfg: 3, [
                record(0, buPacket(bu(20, options: [.alternateCareOfAddress(Fixture.careOf2)]), seal: Fixture.mn1)),
            ]),
            seed("auth-bu-stale-144", cfg: 1, [record(0x30, buPacket(bu(20), seal: Fixture.mn1))]),
            seed("auth-bu-no-timestamp-145", cfg: 1, [record(0, buPacket(bu(20), seal: Fixture.mn1, timestamp: nil))]),
            seed("auth-bu-wrong-hoa-146", cfg: 1, [record(0, buPacket(bu(20), home: Fixture.homeAddress2, seal: Fixture.mn1))]),
            seed("auth-bu-bad-authenticator", cfg: 1, [record(1, {
                var p = buPacket(bu(20), seal: Fixture.mn1)
                p[p.count - 3] ^= 0xff
                return p
            }())]),
            seed("auth-missing", cfg: 1, [record(0, register)]),
            seed("unexpected-ba-brr-be", cfg: 0, [
                record(0, mhOnly(.bindingAcknowledgement(BindingAcknowledgement(status: .accepted, sequence: 1, lifetime: 1)),
                                 from: Fixture.careOf, to: ha)),
                record(0, mhOnly(.bindingRefreshRequest(BindingRefreshRequest()), from: Fixture.careOf, to: ha)),
                record(0, mhOnly(.bindingError(BindingError(status: 1)), from: Fixture.careOf, to: ha)),
            ]),
            seed("unknown-type-be", cfg: 0, [record(0, mhOnly(.unrecognized(type: 42, data: [0, 0]), from: Fixture.careOf, to: ha))]),
            seed("hoti-be", cfg: 0, [record(0, mhOnly(.unrecognized(type: 1, data: [UInt8](repeating: 0, count: 10)),
                                                      from: Fixture.correspondent, to: ha))]),
            seed("bad-payload-proto-icmp", cfg: 0, [record(1, {
                var p = register
                p[64] = 17
                return p
            }())]),
            seed("not-for-us", cfg: 0, [record(0, buPacket(bu(1), to: Fixture.correspondent))]),
            seed("fragment", cfg: 0, [record(0, ipv6Packet(source: Fixture.careOf, destination: ha, nextHeader: 44,
                                                             extensionHeaders: [135, 0, 0, 1, 0, 0, 0, 1],
                                                             payload: MobilityHeaderCodec.encode(.bindingUpdate(bu(1)), source: hoa, destination: ha)))]),
        ]
    }

    // MARK: mn

    /// BAs produced by a real home agent core for the BUs a real mobile node core sends.
    static func mnSeeds() -> [Seed] {
        func seed(_ name: String, cfg: UInt8, _ records: [[UInt8]]) -> Seed {
            ("mn-" + name, frame(.mn, [cfg] + records.flatMap { $0 }))
        }
        /// The first BU the mobile node target sends for `cfg`, and the home agent's answer.
        func exchange(cfg: UInt8, haCapacity: Int = 16) -> (bu: [UInt8], ba: [UInt8]) {
            let clock = FuzzClock()
            let credentials = cfg & 1 != 0
                ? MobileNodeCredentials(nai: Fixture.mn1.nai, spi: Fixture.mn1.spi, key: Fixture.mn1.key, clock: clock) : nil
            let mn = MobileNodeCore(configuration: MobileNodeConfiguration(
                                        homeAddress: Fixture.homeAddress, homeAgent: Fixture.homeAgent,
                                        homePrefix: Fixture.homePrefix, requestedLifetime: 600, credentials: credentials),
                                    clock: clock, logger: Fixture.quietLogger, initialSequence: Fixture.mnInitialSequence)
            let actions = mn.careOfAddressChanged(cfg & 2 != 0 ? Fixture.homeAddress : Fixture.careOf)
            guard case .send(let bu, _)? = actions.first(where: { if case .send = $0 { return true } else { return false } })
            else { fatalError("mobile node sent no BU") }
            let cache = BindingCache(capacity: haCapacity, dataPlane: NullDataPlane())
            let ha = HomeAgentCore(
                configuration: HomeAgentConfiguration(
                    homeAgentAddress: Fixture.homeAgent, homePrefix: Fixture.homePrefix, capacity: haCapacity,
                    duplicateAddressDetection: false,
                    authentication: credentials.map { _ in HomeAgentAuthenticationPolicy(keys: Fixture.keys, clock: clock) }),
                cache: cache, clock: clock, logger: Fixture.quietLogger)
            for case .send(let ba, _) in ha.handlePacket(bu, localAddresses: Fixture.localAddresses) { return (bu, ba) }
            fatalError("home agent did not answer the seed BU")
        }
        let plain = exchange(cfg: 0)
        let authed = exchange(cfg: 1)
        let home = exchange(cfg: 2)
        let homeAuthed = exchange(cfg: 3)
        let seq = Fixture.mnInitialSequence
        let brr = fromHomeAgent(.bindingRefreshRequest(BindingRefreshRequest()))
        let ba135 = PacketBuilder.bindingAcknowledgement(
            BindingAcknowledgement(status: .sequenceOutOfWindow, sequence: seq &+ 100, lifetime: 0),
            from: Fixture.homeAgent, to: Fixture.careOf, homeAddress: Fixture.homeAddress)
        let baBRA = PacketBuilder.bindingAcknowledgement(
            BindingAcknowledgement(status: .accepted, sequence: seq, lifetime: 150, options: [.bindingRefreshAdvice(10)]),
            from: Fixture.homeAgent, to: Fixture.careOf, homeAddress: Fixture.homeAddress)
        let baReject = PacketBuilder.bindingAcknowledgement(
            BindingAcknowledgement(status: .notHomeSubnet, sequence: seq, lifetime: 0),
            from: Fixture.homeAgent, to: Fixture.careOf, homeAddress: Fixture.homeAddress)
        let ba144 = PacketBuilder.bindingAcknowledgement(
            BindingAcknowledgement(status: .idMismatch, sequence: seq, lifetime: 0),
            from: Fixture.homeAgent, to: Fixture.careOf, homeAddress: Fixture.homeAddress,
            authentication: MNHASeal(association: Fixture.mn1, timestamp: Fixture.ntpBase + (100 << 32),
                                     careOf: Fixture.careOf, homeAddress: Fixture.homeAddress))
        let be = mhOnly(.bindingError(BindingError(status: 2, homeAddress: Fixture.homeAddress)),
                        from: Fixture.homeAgent, to: Fixture.careOf)
        return [
            seed("ba", cfg: 0, [record(0, plain.ba)]),
            seed("ba-then-brr-refresh", cfg: 0, [record(0, plain.ba), record(0, brr), record(0x64, plain.ba)]),
            seed("ba-bra", cfg: 0, [record(0, baBRA)]),
            seed("ba-135-resync", cfg: 0, [record(0, ba135), record(0x41, plain.ba)]),
            seed("ba-reject", cfg: 0, [record(0, baReject), record(0x35, plain.ba)]),
            seed("ba-move", cfg: 0, [record(0, plain.ba), record(0x48, plain.ba), record(0x43, plain.ba)]),
            seed("ba-home-dereg", cfg: 2, [record(0, home.ba)]),
            seed("ba-leave-home", cfg: 2, [record(0, home.ba), record(0x48, plain.ba)]),
            seed("be", cfg: 0, [record(0, be)]),
            seed("auth-ba", cfg: 1, [record(0, authed.ba)]),
            seed("auth-ba-144", cfg: 1, [record(0, ba144), record(0xc3, authed.ba)]),
            seed("auth-ba-repaired", cfg: 1, [record(0xc3, authed.ba), record(0x14, brr), record(0xc7, authed.ba)]),
            seed("auth-ba-home", cfg: 3, [record(0, homeAuthed.ba)]),
            seed("auth-ba-unsigned", cfg: 1, [record(0, plain.ba)]),
        ]
    }

    // MARK: keys

    static func keySeeds() -> [Seed] {
        let texts: [(String, String)] = [
            ("fixture", Fixture.keyFile),
            ("crlf-comments", "# keys\r\nmn@x 2001:db8:1::5 256 00112233445566778899aabbccddeeff # trailing\r\n\r\n"),
            ("hex-spi-any", "a@b any 0XFFFFFFFF " + String(repeating: "ab", count: 64) + "\n"),
            ("bad-fields", "only three fields\n"),
            ("bad-address", "n fe80::1 300 00112233445566778899aabbccddeeff\n"),
            ("reserved-spi", "n 2001:db8::1 255 00112233445566778899aabbccddeeff\n"),
            ("duplicate-spi", "n 2001:db8::1 300 00112233445566778899aabbccddeeff\nm 2001:db8::2 300 00112233445566778899aabbccddeeff\n"),
            ("short-key", "n 2001:db8::1 300 0011\n"),
            ("odd-hex", "n 2001:db8::1 300 0011223344556677889\n"),
            ("v4-mapped", "n ::ffff:192.0.2.1 300 00112233445566778899aabbccddeeff\n"),
        ]
        return texts.map { ("keys-" + $0.0, frame(.keys, Array($0.1.utf8))) }
    }

    // MARK: na

    static func naSeeds() -> [Seed] {
        let mac: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a]
        let unsolicited = PacketBuilder.neighborAdvertisement(
            target: Fixture.homeAddress, source: Fixture.homeAgent, destination: IPv6Address("ff02::1")!,
            flags: (router: false, solicited: false, override: true), targetLinkLayer: mac)
        let solicited = PacketBuilder.neighborAdvertisement(
            target: Fixture.homeAddress, source: IPv6Address("fe80::1")!, destination: Fixture.homeAgent,
            flags: (router: true, solicited: true, override: false), targetLinkLayer: nil)
        let dad = PacketBuilder.neighborSolicitation(target: Fixture.homeAddress, source: .unspecified,
                                                     destination: Fixture.homeAddress.solicitedNodeMulticast,
                                                     sourceLinkLayer: mac)
        var multicastTarget = unsolicited
        multicastTarget.replaceSubrange(48..<64, with: IPv6Address("ff02::1")!.bytes)
        var withRH = solicited
        // Same NA behind a routing header (type 0, segments left 0): the walk skips it.
        withRH.insert(contentsOf: [58, 0, 0, 0, 0, 0, 0, 0], at: 40)
        withRH[6] = 43
        withRH[5] &+= 8
        return [
            ("na-unsolicited", frame(.na, [0x2e] + unsolicited)),
            ("na-solicited", frame(.na, [0xc0] + solicited)),
            ("na-multicast-target", frame(.na, [1] + multicastTarget)),
            ("na-behind-routing-header", frame(.na, [0] + withRH)),
            ("ns-dad", frame(.na, [0] + dad)),
        ]
    }

    // MARK: packet

    static func packetSeeds() -> [Seed] {
        let ha = Fixture.homeAgent, hoa = Fixture.homeAddress
        let mh = MobilityHeaderCodec.encode(.bindingUpdate(bu(1)), source: hoa, destination: ha)
        // Hop-by-Hop (PadN, unknown skippable option 0x1e), Destination Options with the Home
        // Address option, Routing type 0 with Segments Left 0, then the MH.
        let hbh: [UInt8] = [60, 0, 1, 0, 0x1e, 2, 0xaa, 0xbb]
        let dest: [UInt8] = [43, 2, 1, 2, 0, 0, 201, 16] + hoa.bytes
        let rh0: [UInt8] = [ipProtoMobility, 0, 0, 0, 0, 0, 0, 0]
        let chained = ipv6Packet(source: Fixture.careOf, destination: ha, nextHeader: 0, extensionHeaders: hbh + dest + rh0, payload: mh)
        let ba = PacketBuilder.bindingAcknowledgement(BindingAcknowledgement(status: .accepted, sequence: 1, lifetime: 9),
                                                      from: ha, to: Fixture.careOf, homeAddress: hoa)
        let be = PacketBuilder.bindingError(BindingError(status: 1, homeAddress: hoa), from: ha, to: Fixture.careOf)
        return [
            ("packet-bu-hao", frame(.packet, [0] + buPacket(bu(1, options: everyOption)))),
            ("packet-bu-authenticated", frame(.packet, [0] + buPacket(bu(1), seal: Fixture.mn1))),
            ("packet-ba-rh2", frame(.packet, [0] + ba)),
            ("packet-ba-rh2-processed", frame(.packet, [1] + { var p = ba; p[43] = 0; return p }())),
            ("packet-be", frame(.packet, [0] + be)),
            ("packet-brr-rh2", frame(.packet, [0] + fromHomeAgent(.bindingRefreshRequest(BindingRefreshRequest())))),
            ("packet-chain", frame(.packet, [1] + chained)),
            ("packet-trailing-bytes", frame(.packet, [0] + ba + [0, 0, 0, 0])),
        ]
    }
}
