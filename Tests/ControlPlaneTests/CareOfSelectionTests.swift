import Testing
@testable import ControlPlane

// RFC 6275 §11.5.1 movement detection from kernel flags (CareOfSelection). `hoa`, `coa`
// come from MobilityHeaderTests.swift; mnCoA2/3 and mnHomePrefix from MobileNodeCoreTests.swift.
struct CareOfSelectionTests {
    typealias I = CareOfSelection.Interface
    typealias A = CareOfSelection.Address

    func choose(_ interfaces: [I], current: IPv6Address? = nil) -> IPv6Address? {
        CareOfSelection.choose(interfaces, current: current, homeAddress: hoa, homePrefix: mnHomePrefix)
    }

    @Test func firstInterfaceUpWithCarrierWins() {
        let f1 = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa)])
        let f2 = I(name: "eth2", isUp: true, hasCarrier: true, addresses: [A(mnCoA2)])
        #expect(choose([f1, f2]) == coa)
        #expect(choose([f2, f1]) == mnCoA2)
    }

    @Test func downOrNoCarrierIsSkipped() {
        // `ip link set eth1 down` clears IFF_UP at once; a pulled cable clears IFF_LOWER_UP.
        // The address may still be listed in between: it must not count.
        let down = I(name: "eth1", isUp: false, hasCarrier: true, addresses: [A(coa)])
        let noCarrier = I(name: "eth1", isUp: true, hasCarrier: false, addresses: [A(coa)])
        let f2 = I(name: "eth2", isUp: true, hasCarrier: true, addresses: [A(mnCoA2)])
        #expect(choose([down, f2], current: coa) == mnCoA2)
        #expect(choose([noCarrier, f2], current: coa) == mnCoA2)
        #expect(choose([down]) == nil)
    }

    @Test func tentativeAddressWaitsForDAD() {
        // RFC 4862 §5.4: a tentative address receives nothing but DAD: registering it would
        // send the home agent's traffic (and the BA) where it cannot arrive for a second.
        let back = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa, tentative: true)])
        let f2 = I(name: "eth2", isUp: true, hasCarrier: true, addresses: [A(mnCoA2)])
        #expect(choose([back, f2], current: mnCoA2) == mnCoA2)
        #expect(choose([back]) == nil)
        // DAD done: the preferred link wins again.
        var done = back
        done.addresses = [A(coa)]
        #expect(choose([done, f2], current: mnCoA2) == coa)
        // RFC 4429 §3: an optimistic address may be used at once.
        let optimistic = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa, tentative: true, optimistic: true)])
        #expect(choose([optimistic, f2], current: mnCoA2) == coa)
        // Failed DAD: never.
        let failed = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa, dadFailed: true)])
        #expect(choose([failed, f2]) == mnCoA2)
    }

    @Test func currentAddressStaysWhileUsable() {
        // A second address on the same link (SLAAC, privacy) must not move the binding.
        let two = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(mnCoA3), A(coa)])
        #expect(choose([two], current: coa) == coa)
        #expect(choose([two], current: nil) == mnCoA3)
        // Deprecated (preferred lifetime over): a preferred one replaces it, if there is one.
        let aging = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa, deprecated: true), A(mnCoA3)])
        #expect(choose([aging], current: coa) == mnCoA3)
        let onlyDeprecated = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa, deprecated: true)])
        #expect(choose([onlyDeprecated], current: coa) == coa)
    }

    @Test func homePrefixMeansHome() {
        let home = I(name: "home", isUp: true, hasCarrier: true, addresses: [A(hoa)])
        let f1 = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(coa)])
        #expect(choose([home, f1]) == hoa)
        #expect(choose([f1, home]) == coa)
        // Link-local and other non-routable addresses never count.
        let linkLocalOnly = I(name: "eth1", isUp: true, hasCarrier: true, addresses: [A(IPv6Address("fe80::1")!)])
        #expect(choose([linkLocalOnly]) == nil)
    }
}
