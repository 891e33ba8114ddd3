import Foundation
import Testing
@testable import Mip6HTTP

@Suite struct HealthTests {
    @Test func reportIsOkOnlyWhenEveryCheckPasses() {
        #expect(HealthReport().ok)
        let r = HealthReport([.init("programs", ok: true), .init("signaling", ok: false, detail: "no punt for 90 s")])
        #expect(!r.ok)
        #expect(r.failing.map(\.name) == ["signaling"])
        #expect(r.text(endpoint: "readyz") == "[+]programs ok\n[-]signaling failed: no punt for 90 s\nreadyz check failed\n")
        #expect(HealthReport([.init("loop", ok: true)]).text(endpoint: "healthz") == "[+]loop ok\nhealthz ok\n")
    }

    @Test func heartbeatFailsBeforeTheFirstBeatAndWhenStale() async throws {
        let h = Heartbeat()
        let before = h.check(maxAge: 5)
        #expect(!before.ok)
        #expect(before.detail == "the loop has not started")
        h.beat()
        #expect(h.check(maxAge: 5).ok)
        try await Task.sleep(for: .milliseconds(50))
        let stale = h.check("loop", maxAge: 0.01)
        #expect(!stale.ok)
        #expect(stale.detail.hasPrefix("no turn for "))
        h.beat()
        #expect(h.check(maxAge: 1).ok)
    }
}
