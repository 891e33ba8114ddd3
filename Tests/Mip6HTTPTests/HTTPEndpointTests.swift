import Foundation
import Glibc
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing
@testable import Mip6HTTP

@Suite struct HTTPEndpointTests {
    @Test func healthzAnswers200WithTheChecks() async throws {
        let endpoint = makeEndpoint(health: { HealthReport([.init("loop", ok: true)]) })
        try await withRunningEndpoint(endpoint) { port in
            let r = try await httpRequest("/healthz", port: port)
            #expect(r.status == 200)
            #expect(r.body == "[+]loop ok\nhealthz ok\n")
            #expect(r.headers["content-type"] == "text/plain; charset=utf-8")
            #expect(r.headers["cache-control"] == "no-store")
        }
    }

    @Test func readyzIs503UntilReadyThen200() async throws {
        let attached = Flag(false)
        let endpoint = makeEndpoint(ready: {
            HealthReport([.init("maps", ok: true),
                          .init("programs", ok: attached.value, detail: attached.value ? "" : "XDP not attached to ha0")])
        })
        try await withRunningEndpoint(endpoint) { port in
            let notReady = try await httpRequest("/readyz", port: port)
            #expect(notReady.status == 503)
            #expect(notReady.body == "[+]maps ok\n[-]programs failed: XDP not attached to ha0\nreadyz check failed\n")
            attached.value = true
            let ready = try await httpRequest("/readyz", port: port)
            #expect(ready.status == 200)
            #expect(ready.body.hasSuffix("readyz ok\n"))
        }
    }

    @Test func healthzIs503WhenTheLoopStops() async throws {
        let beat = Heartbeat()
        // The limit moves instead of the test sleeping: no timing assumption on a loaded machine.
        let maxAge = Locked(60.0)
        let endpoint = makeEndpoint(health: { HealthReport([beat.check(maxAge: maxAge.withLock { $0 })]) })
        try await withRunningEndpoint(endpoint) { port in
            #expect(try await httpRequest("/healthz", port: port).status == 503)  // never beat
            beat.beat()
            #expect(try await httpRequest("/healthz", port: port).status == 200)
            maxAge.withLock { $0 = 0.000_001 }
            let stale = try await httpRequest("/healthz", port: port)
            #expect(stale.status == 503)
            #expect(stale.body.contains("[-]loop failed: no turn for"))
        }
    }

    @Test func metricsServesTheRegistryAfterUpdate() async throws {
        let metrics = HomeAgentMetrics(topBindings: 2)
        let endpoint = makeEndpoint(metrics: { metrics.render() })
        try await withRunningEndpoint(endpoint) { port in
            metrics.update(HomeAgentMetricsSnapshot(
                bindings: 3, bindingUpdates: 9, acksByStatus: [0: 8, 130: 1], dataPlane: ["encap": 42],
                puntsRateLimited: 5, puntsSourceRateLimited: 6,
                bindingTraffic: [BindingTraffic(homeAddress: "2001:db8::a", toMobileNodeBytes: 300),
                                 BindingTraffic(homeAddress: "2001:db8::b", toMobileNodeBytes: 200),
                                 BindingTraffic(homeAddress: "2001:db8::c", toMobileNodeBytes: 100)]))
            metrics.observeAckLatency(seconds: 0.000_2)
            let r = try await httpRequest("/metrics", port: port)
            #expect(r.status == 200)
            #expect(r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            let s = samples(r.body)
            #expect(s["mip6_bindings"] == 3)
            #expect(s["mip6_binding_updates_total"] == 9)
            #expect(s[#"mip6_binding_acks_total{status="130",result="rejected"}"#] == 1)
            #expect(s[#"mip6_dataplane_packets_total{reason="encap"}"#] == 42)
            #expect(s[#"mip6_punts_rate_limited_total{scope="source"}"#] == 6)
            #expect(s[#"mip6_binding_bytes_total{hoa="2001:db8::a",direction="to_mn"}"#] == 300)
            #expect(s[#"mip6_binding_bytes_total{hoa="other",direction="to_mn"}"#] == 100)
            #expect(s["mip6_ba_latency_seconds_count"] == 1)

            // The next scrape sees the next update.
            metrics.update(HomeAgentMetricsSnapshot(bindings: 4, dataPlane: ["encap": 50]))
            let again = samples(try await httpRequest("/metrics", port: port).body)
            #expect(again["mip6_bindings"] == 4)
            #expect(again[#"mip6_dataplane_packets_total{reason="encap"}"#] == 50)
        }
    }

    @Test func servesOnIPv6Loopback() async throws {
        let endpoint = makeEndpoint(address: try ListenAddress(parsing: "[::1]:0"))
        try await withRunningEndpoint(endpoint) { port in
            let r = try await httpRequest("/healthz", port: port, host: "::1")
            #expect(r.status == 200)
            // Bound to ::1 only: not reachable over IPv4.
            await #expect(throws: ClientError.self) { try await httpRequest("/healthz", port: port) }
        }
    }

    /// `*:PORT` is [::] and, with net.ipv6.bindv6only=0 (Linux's default), IPv4 too.
    @Test(.enabled(if: (try? String(contentsOfFile: "/proc/sys/net/ipv6/bindv6only", encoding: .utf8))?.hasPrefix("0") == true))
    func wildcardServesIPv6AndIPv4() async throws {
        let endpoint = makeEndpoint(address: try ListenAddress(parsing: "*:0"))
        try await withRunningEndpoint(endpoint) { port in
            let v6 = try await httpRequest("/readyz", port: port, host: "::1")
            let v4 = try await httpRequest("/readyz", port: port, host: "127.0.0.1")
            #expect(v6.status == 200)
            #expect(v4.status == 200)
        }
    }

    @Test func otherPathsAndMethods() async throws {
        try await withRunningEndpoint(makeEndpoint(metrics: { "mip6_x 1\n" })) { port in
            #expect(try await httpRequest("/nope", port: port).status == 404)
            let post = try await httpRequest("/metrics", method: "POST", port: port)
            #expect(post.status == 405)
            #expect(post.headers["allow"] == "GET, HEAD")
            let head = try await httpRequest("/metrics", method: "HEAD", port: port)
            #expect(head.status == 200)
            #expect(head.headers["content-length"] == "9")
            #expect(head.body.isEmpty)
            #expect(try await httpRequest("/", port: port).body.contains("/metrics"))
        }
    }

    @Test func portInUseIsReportedByThePreflightAndByRun() async throws {
        let first = makeEndpoint()
        try await withRunningEndpoint(first) { port in
            let second = makeEndpoint(port: port)
            let preflight = preflightError(second)
            #expect(preflight?.errno == EADDRINUSE)
            #expect(preflight?.description.hasPrefix("--http-listen 127.0.0.1:\(port): cannot listen: bind: ") == true)
            // run() fails at once instead of serving nothing.
            let started = ContinuousClock.now
            await #expect {
                try await second.run()
            } throws: { error in
                guard let e = error as? HTTPEndpointError, case .cannotListen(_, let errno, _) = e else { return false }
                return errno == EADDRINUSE && e.description.contains("another process has the port")
                    && e.description.hasPrefix("--http-listen 127.0.0.1:\(port): cannot listen: bind: ")
            }
            #expect(ContinuousClock.now - started < .seconds(3))
            // The first one still serves.
            let still = try await httpRequest("/healthz", port: port)
            #expect(still.status == 200)
        }
    }

    @Test func aNonLocalAddressCannotListen() {
        // 192.0.2.1 (TEST-NET-1) is on no interface here: bind() says EADDRNOTAVAIL, no packet is sent.
        let endpoint = HTTPEndpoint(address: try! ListenAddress(parsing: "192.0.2.1:0"), logger: quietLogger,
                                    health: { HealthReport() }, ready: { HealthReport() }, metrics: { "" })
        #expect(throws: HTTPEndpointError.cannotListen(endpoint.address, errno: EADDRNOTAVAIL,
                                                      message: "bind: \(String(cString: strerror(EADDRNOTAVAIL)))")) {
            try endpoint.checkCanListen()
        }
    }

    @Test func cancellationStopsAndReleasesThePort() async throws {
        let endpoint = makeEndpoint()
        let task = Task { try await endpoint.run() }
        let port = try await endpoint.waitUntilListening().port
        #expect(port != 0)
        #expect(thisProcessListens(on: port), "the check sees our listener while it runs")
        task.cancel()
        try await task.value  // returns normally, no error
        // The port is free again and nothing answers on it.
        #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
        await #expect(throws: ClientError.self) { try await httpRequest("/healthz", port: port) }
    }

    /// A scraper keeps its connection open between scrapes; an idle client may never send.
    /// Neither holds up a stop, and the port is free once `run()` returns.
    @Test(arguments: [false, true])
    func stopsPromptlyWithOpenConnections(graceful: Bool) async throws {
        try await testGracefulShutdown { trigger in
            let endpoint = makeEndpoint()
            let task = Task { try await endpoint.run() }
            let port = try await endpoint.waitUntilListening().port
            let keepAlive = try await openConnection(port: port, request: "/metrics")
            let idle = try await openConnection(port: port)
            defer { close(keepAlive); close(idle) }
            let started = ContinuousClock.now
            if graceful { trigger.triggerGracefulShutdown() } else { task.cancel() }
            try await task.value
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
        }
    }

    /// Stopping while accepted connections are still queued for the server: cancelling a NIO
    /// async server at that moment traps the whole process (apple/swift-nio#2813), so `run()`
    /// stops it gracefully instead. A trap here ends the test run.
    @Test(arguments: [false, true])
    func stopDuringABurstOfConnections(graceful: Bool) async throws {
        for _ in 0..<10 {
            try await testGracefulShutdown { trigger in
                let endpoint = makeEndpoint()
                let task = Task { try await endpoint.run() }
                let port = try await endpoint.waitUntilListening().port
                let fds = try await connectBurst(port: port, count: 32)
                defer { fds.forEach { close($0) } }
                if graceful { trigger.triggerGracefulShutdown() } else { task.cancel() }
                try await task.value
                #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
            }
        }
    }

    /// A closure that hangs does not hold up a stop for longer than the stop deadline.
    @Test func aHangingRequestIsCutAtTheStopDeadline() async throws {
        var endpoint = makeEndpoint(metrics: {
            try? await Task.sleep(for: .seconds(60))
            return ""
        })
        endpoint.stopDeadline = .milliseconds(200)
        let task = Task { try await endpoint.run() }
        let port = try await endpoint.waitUntilListening().port
        let scrape = Task { try await httpRequest("/metrics", port: port) }
        try await Task.sleep(for: .milliseconds(100))  // the request is in the closure
        let started = ContinuousClock.now
        task.cancel()
        try await task.value
        #expect(ContinuousClock.now - started < .seconds(3))
        _ = try? await scrape.value
        #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
    }

    /// The daemon's log gets no line per request (nor per connection) at info, and the
    /// endpoint leaves the start-up line to the daemon; at debug it is there.
    @Test func nothingIsLoggedPerRequestAtInfo() async throws {
        for level in [Logger.Level.info, .debug] {
            let capture = LogCapture()
            let endpoint = HTTPEndpoint(address: .loopback(port: 0), logger: capture.logger(level: level),
                                        health: { HealthReport() }, ready: { HealthReport() }, metrics: { "" })
            try await withRunningEndpoint(endpoint) { port in
                for path in ["/healthz", "/readyz", "/metrics", "/nope"] {
                    _ = try await httpRequest(path, port: port)
                }
                _ = try await httpRequest("/metrics", method: "POST", port: port)
                close(try await openConnection(port: port))  // a client that hangs up without a word
            }
            let records = capture.records
            if level == .info {
                #expect(records.isEmpty, "\(records)")
            } else {
                #expect(records.allSatisfy { $0.level == .debug })
                // Start-up and stop, not one line per request.
                #expect(records.count < 5, "\(records)")
            }
        }
    }

    @Test func gracefulShutdownEndsRun() async throws {
        try await testGracefulShutdown { trigger in
            let endpoint = makeEndpoint()
            let task = Task { try await endpoint.run() }
            let port = try await endpoint.waitUntilListening().port
            #expect(try await httpRequest("/healthz", port: port).status == 200)
            trigger.triggerGracefulShutdown()
            try await task.value
            #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
        }
    }

    /// How the daemon will use it: a bind failure ends the whole group with our error.
    @Test func inAServiceGroupABindFailureEndsTheGroup() async throws {
        let first = makeEndpoint()
        try await withRunningEndpoint(first) { port in
            let group = ServiceGroup(services: [makeEndpoint(port: port)], logger: quietLogger)
            await #expect(throws: HTTPEndpointError.self) { try await group.run() }
        }
    }

    @Test func inAServiceGroupGracefulShutdownStopsIt() async throws {
        let endpoint = makeEndpoint()
        let group = ServiceGroup(services: [endpoint], logger: quietLogger)
        let task = Task { try await group.run() }
        let port = try await endpoint.waitUntilListening().port
        #expect(try await httpRequest("/readyz", port: port).status == 200)
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(!thisProcessListens(on: port), "the endpoint let go of its port")
    }
}

private func preflightError(_ endpoint: HTTPEndpoint) -> HTTPEndpointError? {
    do {
        try endpoint.checkCanListen()
        return nil
    } catch {
        return error
    }
}
