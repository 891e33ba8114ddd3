import CMip6
import Testing
@testable import DataPlane
import Mip6Daemon
import Mip6TestSupport

/// The shared header is the only definition of the map layouts: libbpf's view of the
/// compiled object must match what Swift imported from the same header.
@Suite("shared header layouts")
struct LayoutTests {
    @Test("every counter has a name", arguments: 0..<Int(MIP6_CNT_MAX.rawValue))
    func counterNames(_ i: Int) {
        let name = cmip6_counter_name(UInt32(i)).map { String(cString: $0) }
        #expect(name?.isEmpty == false)
    }

    @Test("every MAG counter has a name", arguments: 0..<Int(MIP6_MAG_CNT_MAX.rawValue))
    func magCounterNames(_ i: Int) {
        let name = cmip6_mag_counter_name(UInt32(i)).map { String(cString: $0) }
        #expect(name?.isEmpty == false)
    }

    @Test("map key and value sizes match MemoryLayout",
          .enabled(if: isRoot, "needs root to load BPF programs: run `sudo swift test` (CI is root)"))
    func mapSizes() throws {
        let obj = try BPFObject(.homeAgent)
        try obj.setBindingCapacity(16)
        try obj.load()
        let expected: [(String, Int, Int)] = [
            (MIP6_MAP_BINDINGS, MemoryLayout<mip6_binding_key>.size, MemoryLayout<mip6_binding>.size),
            (MIP6_MAP_BINDING_STATS, 4, MemoryLayout<mip6_binding_stats>.size),
            (MIP6_MAP_SLOT_NEXTHOP, 4, MemoryLayout<mip6_slot_nexthop>.size),
            (MIP6_MAP_COUNTERS, 4, 8),
            (MIP6_MAP_CONFIG, 4, MemoryLayout<mip6_config>.size),
            (MIP6_MAP_IFACES, 4, MemoryLayout<mip6_iface>.size),
            (MIP6_MAP_LOCAL_ADDRS, MemoryLayout<mip6_addr_key>.size, 4),
            (MIP6_MAP_PUNT_LIMIT, 4, MemoryLayout<mip6_token_bucket>.size),
            (MIP6_MAP_SRC_LIMIT, 8, MemoryLayout<mip6_rate_state>.size),
            (MIP6_MAP_NEXTHOP, MemoryLayout<mip6_addr_key>.size, MemoryLayout<mip6_nexthop>.size),
            (MIP6_MAP_ICMP_LIMIT, 4, MemoryLayout<mip6_token_bucket>.size),
            (MIP6_MAP_FRAG_LIMIT, 4, MemoryLayout<mip6_token_bucket>.size),
            (MIP6_MAP_LL_PROXY, MemoryLayout<mip6_addr_key>.size, MemoryLayout<mip6_binding_key>.size),
        ]
        for (name, k, v) in expected {
            let s = try obj.mapSizes(name)
            #expect(s.key == k && s.value == v, "\(name): libbpf \(s), Swift \(k)/\(v)")
        }
        #expect(Set(obj.mapNames) == Set(HomeAgentMaps.pinnedNames), "every map is pinned by name")
    }

    @Test("struct sizes are the ones the header asserts")
    func structSizes() {
        #expect(MemoryLayout<mip6_binding>.size == 48)
        #expect(MemoryLayout<mip6_binding_stats>.size == 32)
        #expect(MemoryLayout<mip6_config>.size == 80)
        #expect(MemoryLayout<mip6_nexthop>.size == 32)
        #expect(MemoryLayout<mip6_token_bucket>.size == 24)
        #expect(MemoryLayout<mip6_punt_hdr>.size == 32)
        #expect(MemoryLayout<mip6_mag_hnp_key>.size == 8)
        #expect(MemoryLayout<mip6_mag_node>.size == 40)
        #expect(MemoryLayout<mip6_mag_mac_key>.size == 8)
        #expect(MemoryLayout<mip6_mag_mac>.size == 8)
        #expect(MemoryLayout<mip6_mag_seen>.size == 16)
        #expect(MemoryLayout<mip6_mag_config>.size == 72)
    }
}
