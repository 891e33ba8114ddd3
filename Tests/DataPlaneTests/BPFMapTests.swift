import CMip6
import ControlPlane
import Testing
@testable import DataPlane

/// Key walks over live hash maps (the inspection commands and /metrics list bindings while
/// they expire).
@Suite("BPFMap key walks")
struct BPFMapTests {
    @Test("a key deleted mid-walk restarts the kernel's walk; each key is still returned once",
          .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
    func noDuplicatesWhenTheWalkRestarts() throws {
        let obj = try BPFObject(.homeAgent)
        try obj.setBindingCapacity(256)
        try obj.load()
        let locals = try BPFMap<mip6_addr_key, UInt32>(obj.map(MIP6_MAP_LOCAL_ADDRS))
        func key(_ i: Int) -> mip6_addr_key {
            var k: mip6_addr_key = zeroed()
            k.addr = IPv6Address("2001:db8::\(String(i, radix: 16))")!.cAddress
            return k
        }
        for i in 1...100 { try locals.update(key(i), UInt32(i)) }

        // Deleting the key the walk stands on sends bpf_map_get_next_key back to the first
        // bucket (the binding that expired while `mip6 bindings list` ran).
        var steps = 0
        let walked = try locals.keys(limit: .max) { k in
            steps += 1
            if steps == 50 { try locals.delete(k) }
        }
        let addresses = walked.map { IPv6Address(cAddress: $0.addr) }
        #expect(steps > 100, "the kernel restarted the walk (\(steps) steps for 100 keys)")
        #expect(Set(addresses).count == addresses.count, "no key twice")
        #expect(Set(addresses) == Set((1...100).map { IPv6Address(cAddress: key($0).addr) }), "every key, the deleted one included once")
        #expect(try locals.keys().count == 99)
    }
}
