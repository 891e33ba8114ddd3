import Foundation

/// A real 3-member etcd cluster on loopback for one test run (Debian's etcd-server, installed by
/// scripts/install-deps): data under a temporary directory, ports from `basePort`, stopped at exit.
final class EtcdCluster: @unchecked Sendable {
    let dir: URL
    let clientURLs: [String]
    var processes: [Process?] = []
    let members: [(name: String, client: Int, peer: Int)]

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") }

    init(basePort: Int = 20000 + Int(getpid() % 2000) * 10) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mip6-etcd-\(getpid())-\(basePort)")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        members = (0..<3).map { ("e\($0 + 1)", basePort + 2 * $0, basePort + 2 * $0 + 1) }
        clientURLs = members.map { "http://127.0.0.1:\($0.client)" }
        processes = Array(repeating: nil, count: 3)
        for i in 0..<3 { try start(i) }
        try watchdog()
        try waitHealthy()
    }

    /// The test process may end without running atexit handlers: a shell outlives it by a
    /// second and removes the members (restarted ones too, found by the cluster token) and
    /// their data.
    func watchdog() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; "
                       + "pkill -9 -f -- '--initial-cluster-token \(dir.lastPathComponent)'; sleep 0.5; rm -rf '\(dir.path)'"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
    }

    func start(_ i: Int) throws {
        let m = members[i]
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peer)" }.joined(separator: ",")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        p.arguments = ["--name", m.name, "--data-dir", dir.appendingPathComponent(m.name).path,
                       "--listen-client-urls", "http://127.0.0.1:\(m.client)", "--advertise-client-urls", "http://127.0.0.1:\(m.client)",
                       "--listen-peer-urls", "http://127.0.0.1:\(m.peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(m.peer)",
                       "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", dir.lastPathComponent,
                       "--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "error"]
        let log = FileHandle(forWritingAtPath: dir.appendingPathComponent("\(m.name).log").path)
            ?? { FileManager.default.createFile(atPath: dir.appendingPathComponent("\(m.name).log").path, contents: nil)
                 return FileHandle(forWritingAtPath: dir.appendingPathComponent("\(m.name).log").path)! }()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        processes[i] = p
    }

    /// SIGSTOP / SIGCONT: a hung member, its connections open and silent.
    func freeze(_ i: Int) { if let p = processes[i] { Glibc.kill(p.processIdentifier, SIGSTOP) } }
    func thaw(_ i: Int) { if let p = processes[i] { Glibc.kill(p.processIdentifier, SIGCONT) } }

    func kill(_ i: Int) {
        guard let p = processes[i] else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        processes[i] = nil
    }

    /// Until every member answers /health with "true" (10 s at most).
    func waitHealthy(members which: [Int] = [0, 1, 2], seconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if which.allSatisfy({ healthy(clientURLs[$0]) }) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw NSError(domain: "etcd", code: 1, userInfo: [NSLocalizedDescriptionKey: "etcd cluster not healthy in \(seconds) s; logs in \(dir.path)"])
    }

    func healthy(_ url: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
        p.arguments = ["--endpoints", url, "--command-timeout=1s", "endpoint", "health"]
        p.environment = ["ETCDCTL_API": "3"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
