import ControlPlane
import Foundation
import Testing
@testable import Mip6Daemon

/// A scratch --state-dir, removed at deinit.
private final class StateDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mip6-list-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private let pcoa = IPv6Address("2001:db8:10::1")!
private let lma = IPv6Address("2001:db8:20::1")!

/// An entry as `mip6 mag status` shows it (decoded: the type has no public initialiser).
private func entry(_ id: String, mac: String, state: MobileAccessGatewayEntryState) -> MobileAccessGatewayEntryStatus {
    let json = """
        {"identifier":"\(id)","mac":"\(mac)","ifindex":3,"lma":"\(lma)","requestedPrefixes":[],"homeNetworkPrefixes":[],
         "state":"\(state.rawValue)","installed":\(state == .registered),"grantedLifetime":0,"transmissions":0}
        """
    return try! JSONDecoder().decode(MobileAccessGatewayEntryStatus.self, from: Data(json.utf8))
}

private func nodes(pid: Int32 = 42, takenAt: UInt64 = realtimeNanoseconds(), registrations: UInt64 = 1,
                   entries: [MobileAccessGatewayEntryStatus] = [entry("mn1@x", mac: "02:00:00:00:0a:01", state: .registered)])
    -> MobileAccessGatewayNodes {
    var counters = MobileAccessGatewayCounters()
    counters.registrations = registrations
    return MobileAccessGatewayNodes(pid: pid, takenAtNanoseconds: takenAt,
                                    status: MobileAccessGatewayStatus(proxyCareOf: pcoa, defaultLMA: lma, entries: entries,
                                                                      counters: counters))
}

@Suite("A list written on request (SIGUSR1): the CLI's request, wait and fallback")
struct ListOnRequestTests {
    @Test func aListWrittenForTheRequestIsFresh() throws {
        let dir = StateDir()
        try nodes(takenAt: 1).write(stateDir: dir.path) // an old one, there already
        var asked: [Int32] = []
        let reply = MobileAccessGatewayNodes.request(from: 42, stateDir: dir.path, wait: 5, isRunning: { _ in true }) { pid in
            asked.append(pid)
            try? nodes(registrations: 2).write(stateDir: dir.path) // what the daemon does on SIGUSR1
            return true
        }
        #expect(asked == [42])
        #expect(reply.fresh && reply.running)
        #expect(reply.list?.status.counters.registrations == 2)
        #expect(reply.note(stateDir: dir.path) == nil, "nothing on stderr")
    }

    @Test func noAnswerFallsBackToTheLastListAndSaysSo() throws {
        let dir = StateDir()
        try nodes(takenAt: 1_000_000_000).write(stateDir: dir.path)
        let reply = MobileAccessGatewayNodes.request(from: 42, stateDir: dir.path, wait: 0.05, isRunning: { _ in true },
                                                     ask: { _ in true })
        #expect(!reply.fresh && reply.running)
        #expect(reply.list?.takenAtNanoseconds == 1_000_000_000)
        #expect(reply.takenAt == Date(timeIntervalSince1970: 1))
        let note = try #require(reply.note(stateDir: dir.path))
        #expect(note.contains("(pid 42) did not answer within 0.05 s") && note.contains("Binding Update List written at"), "\(note)")
    }

    @Test func aListOfAnotherDaemonIsNoAnswer() throws {
        let dir = StateDir()
        let reply = MobileAccessGatewayNodes.request(from: 42, stateDir: dir.path, wait: 0.05, isRunning: { _ in true }) { _ in
            try? nodes(pid: 41).write(stateDir: dir.path) // the daemon before a restart, say
            return true
        }
        #expect(!reply.fresh && reply.list?.pid == 41)
        #expect(nodes(pid: 42, takenAt: 10).answers(pid: 42, requestedAt: 10))
        #expect(!nodes(pid: 42, takenAt: 9).answers(pid: 42, requestedAt: 10))
        #expect(!nodes(pid: 41, takenAt: 10).answers(pid: 42, requestedAt: 10))
    }

    @Test func aStoppedDaemonIsNotAskedAndItsLastListFollows() throws {
        let dir = StateDir()
        try nodes(takenAt: 5).write(stateDir: dir.path)
        var asked = false
        let reply = MobileAccessGatewayNodes.request(from: 42, stateDir: dir.path, wait: 5, isRunning: { _ in false }) { _ in
            asked = true
            return true
        }
        #expect(!asked && !reply.running && !reply.fresh && reply.list != nil)
        #expect(reply.note(stateDir: dir.path)?.contains("(pid 42) is not running; the Binding Update List written at") == true)
    }

    @Test func noListAtAll() {
        let dir = StateDir()
        let stopped = LocalMobilityAnchorBindings.request(from: 7, stateDir: dir.path, wait: 5, isRunning: { _ in false }, ask: { _ in true })
        #expect(stopped.list == nil && stopped.takenAt == nil)
        #expect(stopped.note(stateDir: dir.path) == "mip6: no binding list in \(dir.path): the daemon (pid 7) is not running and left none")
        let silent = LocalMobilityAnchorBindings.request(from: 7, stateDir: dir.path, wait: 0, isRunning: { _ in true }, ask: { _ in true })
        #expect(silent.note(stateDir: dir.path) == "mip6: no binding list in \(dir.path): the daemon (pid 7) did not write one within 0.0 s")
    }
}

@Suite("mag.json holds counters only; `mip6 mag status` adds the list")
struct MobileAccessGatewayStateFileTests {
    func report(registrations: UInt64 = 5) -> MobileAccessGatewayReport {
        var counters = MobileAccessGatewayCounters()
        counters.registrations = registrations
        return MobileAccessGatewayReport(
            pid: 42, updatedAt: Date(timeIntervalSince1970: 1_700_000_000), proxyCareOf: pcoa, defaultLMA: lma,
            nodes: MobileAccessGatewayReport.nodes([.registered: 2, .pending: 1]), counters: counters,
            daemon: MobileAccessGatewayDaemonCounters(), dataplane: ["encap": 3], accessInterfaces: ["acc0"],
            coreInterface: "core0", mac: "02:00:5e:00:53:01", linkLocal: IPv6Address("fe80::1")!)
    }

    @Test func stateFileHasCountsByStateAndNoEntries() throws {
        let dir = StateDir()
        try report().write(stateDir: dir.path)
        let text = try String(contentsOfFile: MobileAccessGatewayReport.path(stateDir: dir.path), encoding: .utf8)
        #expect(!text.contains("entries"))
        #expect(text.contains("\"nodes\":{\"pending\":1,\"registered\":2}"), "\(text)")
        let back = try MobileAccessGatewayReport.read(stateDir: dir.path)
        #expect(back.nodes == ["registered": 2, "pending": 1] && back.counters.registrations == 5)
    }

    @Test func listRoundTrips() throws {
        let dir = StateDir()
        let written = nodes()
        try written.write(stateDir: dir.path)
        let back = try MobileAccessGatewayNodes.read(stateDir: dir.path)
        #expect(back.status == written.status && back.pid == 42 && back.takenAtNanoseconds == written.takenAtNanoseconds)
    }

    @Test func freshListBringsItsCountersStaleListTheStateFiles() {
        let listed = nodes(registrations: 9, entries: [entry("a", mac: "02:00:00:00:0a:01", state: .registered),
                                                       entry("b", mac: "02:00:00:00:0a:02", state: .pending),
                                                       entry("c", mac: "02:00:00:00:0a:03", state: .registered)])
        let fresh = report().status(listed: listed, fresh: true)
        #expect(fresh.status.entries.map(\.identifier) == ["a", "b", "c"])
        #expect(fresh.status.counters.registrations == 9, "as of the entries")
        #expect(fresh.nodes == ["registered": 2, "pending": 1], "counted from the entries shown")
        #expect(fresh.status.proxyCareOf == pcoa && fresh.status.defaultLMA == lma)
        let stale = report().status(listed: listed, fresh: false)
        #expect(stale.status.entries.count == 3 && stale.status.counters.registrations == 5)
        let none = report().status(listed: nil, fresh: false)
        #expect(none.status.entries.isEmpty && none.status.counters.registrations == 5)
        #expect(none.nodes == ["registered": 2, "pending": 1], "the state file's counts")
    }
}
