import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6Store

/// A replica of an active-active home agent (issue 12), on the loop's thread. Every replica
/// holds every binding: the store's list and watch are written into the cache and the maps.
/// A BU accepted here is committed to the store (compare-and-swap on its key's revision, 64
/// BUs a transaction) before its BA leaves and before it reaches the maps, so two replicas
/// never both accept conflicting sequence numbers (RFC 6275 §9.5.1 holds cluster-wide).
extension HomeAgentDaemon {
    var clocks: BindingRecord.Clocks {
        BindingRecord.Clocks(monotonicNs: clock.nanoseconds(), wallNs: StoreReplica.wallNanoseconds())
    }

    /// Everything the store side posted since the last call.
    func drainStore() {
        guard let replica else { return }
        let events = replica.takeEvents()
        guard !events.isEmpty else { return }
        // Remote bindings go to the maps in one batched write per drain (as BUs do), not one
        // map update each.
        let wasDeferring = table.deferring
        table.deferring = true
        defer {
            if !wasDeferring {
                for f in table.flush() {
                    mapUpdateFailures += 1
                    core.dataPlaneWriteFailed(homeAddress: f.homeAddress, previous: f.previous, error: f.error)
                }
                table.deferring = false
            }
        }
        for event in events {
            switch event {
            case let .listed(bindings, revision):
                applyList(bindings, revision: revision)
            case let .changes(c):
                for s in c.upserts { applyRemote(s) }
                for hoa in c.deletes { applyRemoteDelete(hoa) }
                if let mine = c.heartbeats[options.store?.replicaID ?? ""] { storeState.heartbeats.delivered(mine) }
            case let .syncLost(why):
                storeState.counters.watchBreaks += 1
                logger.warning("store watch lost, listing again", metadata: ["mip6.error": "\(why)"])
            case let .watchBroken(why, revision):
                storeState.counters.watchBreaks += 1
                logger.warning("store watch broken, watching again", metadata: ["mip6.error": "\(why)", "mip6.revision": "\(revision)"])
            case let .committed(id, result):
                finishCommit(id, result)
            case let .commitFailed(id, why):
                commitFailed(id, why)
            case let .heartbeatWritten(ok, wallNs, acknowledged):
                let now = clock.nanoseconds()
                if ok {
                    storeState.lastWriteOkNs = now
                    storeState.heartbeats.acknowledged(carried: wallNs, atWallNs: acknowledged)
                    if core.refusingRegistrations != nil {
                        core.refusingRegistrations = nil
                        logger.notice("the binding store answers again: accepting Binding Updates")
                    }
                } else {
                    storeState.lastWriteFailedNs = now
                    storeState.counters.heartbeatFailures += 1
                    // An election takes about a second: only a store silent for longer is out.
                    if now - max(storeState.lastWriteOkNs, storeState.startedNs) > Self.storeOutageNs {
                        refuseRegistrations("the binding store has not taken a write for \(Self.storeOutageNs / 1_000_000_000) s")
                    }
                }
            }
            stateDirty = true
        }
        if let lag = storeLagMilliseconds, let store = options.store {
            replica.restartWatchIfLagging(lagMilliseconds: lag, maxLagMilliseconds: store.maxLagMilliseconds)
        }
        updateAnnouncement()
    }

    /// How long the store must refuse every write before BUs are refused.
    static let storeOutageNs: UInt64 = 3_000_000_000

    /// While the store cannot take writes (no quorum), authentic BUs get 130 and change
    /// nothing; forwarding goes on from the maps. Never a withdrawal: every replica would.
    func refuseRegistrations(_ why: String) {
        guard core.refusingRegistrations == nil else { return }
        core.refusingRegistrations = .insufficientResources
        logger.error("refusing Binding Updates (status 130) until the binding store answers; forwarding goes on",
                     metadata: ["mip6.reason": "\(why)"])
    }

    // MARK: list and watch

    /// Values in the store that did not decode are counted by the store client.
    var storeCountersNow: StoreCounters {
        var c = storeState.counters
        c.invalidRecords = replica?.store.invalidValues ?? 0
        return c
    }

    func applyList(_ bindings: [StoredBinding], revision: Int64) {
        storeState.counters.lists += 1
        storeState.heartbeats.listed()
        let listed = Set(bindings.map(\.homeAddress))
        for s in bindings { applyRemote(s, relist: true) }
        // Gone from the store while the watch was down (or before this daemon started).
        for b in core.cache.all where !listed.contains(b.homeAddress) && !storeState.pendingKeys.contains(b.homeAddress) {
            applyRemoteDelete(b.homeAddress)
        }
        if !storeState.synced {
            storeState.synced = true
            logger.notice("binding store synced", metadata: ["mip6.bindings": "\(core.cache.count)", "mip6.revision": "\(revision)"])
        }
    }

    /// A binding another replica (or this one, echoed) committed.
    func applyRemote(_ s: StoredBinding, relist: Bool = false) {
        let hoa = s.homeAddress
        if let known = storeState.revisions[hoa], s.modRevision < known || (s.modRevision == known && !relist) { return }
        storeState.revisions[hoa] = s.modRevision
        if let ts = s.record.authTimestamp { core.adoptTimestamp(ts, for: hoa) }
        let b = s.record.binding(homeAddress: hoa, clocks: clocks)
        if b.expiresAt <= clock.nanoseconds() {
            if core.cache[hoa] != nil { _ = try? core.cache.remove(hoa) }
            return
        }
        if core.cache[hoa] == b { return }
        do {
            try core.cache.upsert(b)
            storeState.counters.remoteUpserts += 1
            if !relist, s.record.writer != options.store?.replicaID {
                storeState.convergence.note(Double(StoreReplica.wallNanoseconds() - s.record.registeredUnixNs) / 1e6)
            }
        } catch {
            mapUpdateFailures += 1
            logger.error("cannot install a binding from the store", metadata: ["mip6.hoa": "\(hoa)", "mip6.error": "\(error)"])
        }
    }

    func applyRemoteDelete(_ hoa: IPv6Address) {
        storeState.revisions[hoa] = nil
        guard core.cache[hoa] != nil else { return }
        do {
            _ = try core.cache.remove(hoa)
            storeState.counters.remoteDeletes += 1
        } catch {
            mapUpdateFailures += 1
        }
    }

    // MARK: commits

    /// flushSignaling with a store: the drain's bindings and de-registrations go to the
    /// store first; the maps and the BAs that confirm them wait for the commit. Answers that
    /// confirm nothing (135, errors) leave now.
    func storeFlush() {
        let staged = table.takeStaged()
        let removed = pendingRemovals
        pendingRemovals.removeAll(keepingCapacity: true)
        let waiting = Set(staged.bindings.keys).union(removed.keys)
        var held: [IPv6Address: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]] = [:]
        var now: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)] = []
        for s in pendingSends {
            if let hoa = s.hoa, waiting.contains(hoa) { held[hoa, default: []].append(s) } else { now.append(s) }
        }
        pendingSends.removeAll(keepingCapacity: true)
        send(now)

        // A key with a write in flight waits for it: its compare needs the revision that
        // write makes (two batches naming the old one would conflict with each other).
        var free = BPFBindingTable.Staged()
        var freeRemoved: [IPv6Address: Binding] = [:]
        for hoa in waiting {
            if storeState.pendingKeys.contains(hoa) || storeState.deferred[hoa] != nil {
                var d = storeState.deferred[hoa] ?? DeferredWrite(binding: nil, before: staged.before[hoa] ?? nil, removed: nil, sends: [])
                d.binding = staged.bindings[hoa]
                if d.binding == nil { d.removed = removed[hoa] ?? d.removed }
                d.sends += held.removeValue(forKey: hoa) ?? []
                storeState.deferred[hoa] = d
            } else if let b = staged.bindings[hoa] {
                free.bindings[hoa] = b
                free.before[hoa] = staged.before[hoa] ?? nil
            } else if let r = removed[hoa] {
                freeRemoved[hoa] = r
            }
        }
        submit(staged: free, removed: freeRemoved, held: &held)
    }

    /// Turns bindings and de-registrations into writes against the revisions known now and
    /// submits them, 64 a transaction.
    func submit(staged: BPFBindingTable.Staged, removed: [IPv6Address: Binding],
                held: inout [IPv6Address: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]]) {
        let c = clocks
        var writes: [BindingWrite] = []
        for (hoa, b) in staged.bindings {
            let record = BindingRecord(b, clocks: c, authTimestamp: core.lastTimestamp(for: hoa), writer: options.store?.replicaID ?? "")
            writes.append(.put(hoa, record, expected: storeState.revisions[hoa]))
        }
        for (hoa, _) in removed where staged.bindings[hoa] == nil {
            if let rev = storeState.revisions[hoa] {
                writes.append(.delete(hoa, expected: rev))
            } else {
                send(held.removeValue(forKey: hoa) ?? []) // nothing stored: nothing to wait for
            }
        }
        var start = 0
        while start < writes.count {
            let chunk = Array(writes[start..<min(start + EtcdBindingStore.maxBatch, writes.count)])
            start += chunk.count
            let keys = Set(chunk.map(\.homeAddress))
            let batch = StoreBatch(
                writes: chunk,
                staged: BPFBindingTable.Staged(bindings: staged.bindings.filter { keys.contains($0.key) },
                                               before: staged.before.filter { keys.contains($0.key) }),
                removed: removed.filter { keys.contains($0.key) },
                sends: keys.flatMap { held[$0] ?? [] })
            submit(batch)
        }
    }

    /// At most this many transactions in flight per replica; what comes meanwhile waits and is
    /// merged into transactions of up to EtcdBindingStore.maxBatch BUs (under load, fewer and
    /// fuller transactions: a raft round and an HTTP request each). 2 measured no better at
    /// 10,000 BU/s once the store path got cheaper (p99 23-108 ms over six runs, against 29-35
    /// ms over four with 4; perf/README.md).
    static let maxInFlightBatches = 4

    func submit(_ batch: StoreBatch) {
        for w in batch.writes { storeState.pendingKeys.insert(w.homeAddress) }
        if storeState.inFlight.count >= Self.maxInFlightBatches {
            if !batch.retried, let last = storeState.queued.last, !last.retried,
               last.writes.count + batch.writes.count <= EtcdBindingStore.maxBatch {
                storeState.queued[storeState.queued.count - 1] = last.merged(with: batch)
            } else {
                storeState.queued.append(batch)
            }
            return
        }
        let id = storeState.nextBatch
        storeState.nextBatch += 1
        var batch = batch
        batch.submittedNs = clock.nanoseconds()
        storeState.inFlight[id] = batch
        replica?.commit(id: id, batch.writes)
    }

    /// A transaction finished: the next waiting ones go.
    func submitQueued() {
        while storeState.inFlight.count < Self.maxInFlightBatches, !storeState.queued.isEmpty {
            submit(storeState.queued.removeFirst())
        }
    }

    /// Writes that waited for a key this batch held go now.
    func releaseDeferred(_ batch: StoreBatch) {
        var staged = BPFBindingTable.Staged()
        var removed: [IPv6Address: Binding] = [:]
        var held: [IPv6Address: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]] = [:]
        for w in batch.writes {
            guard let d = storeState.deferred.removeValue(forKey: w.homeAddress) else { continue }
            if let b = d.binding {
                staged.bindings[w.homeAddress] = b
                staged.before[w.homeAddress] = d.before
            } else if let r = d.removed {
                removed[w.homeAddress] = r
            }
            held[w.homeAddress] = d.sends
        }
        if !held.isEmpty { submit(staged: staged, removed: removed, held: &held) }
    }

    func finishCommit(_ id: Int, _ r: CommitResult) {
        guard let batch = storeState.inFlight.removeValue(forKey: id) else { return }
        for w in batch.writes { storeState.pendingKeys.remove(w.homeAddress) }
        defer {
            releaseDeferred(batch)
            submitQueued()
        }
        storeState.commitLatency.note(Double(clock.nanoseconds() - batch.submittedNs) / 1e6)
        if r.succeeded {
            storeState.counters.commits += 1
            storeState.counters.committedWrites += UInt64(batch.writes.count)
            for w in batch.writes {
                if case .put = w { storeState.revisions[w.homeAddress] = r.revision } else { storeState.revisions[w.homeAddress] = nil }
                forgetRequest(w.homeAddress)
            }
            confirm(batch)
            return
        }
        // Someone else wrote one of these keys first. Those take the store's value, and their
        // BU is judged again on it at once (RFC 6275 §9.5.1 against the state that holds):
        // typically the same mobile node's earlier BU, committed late by another replica
        // during an etcd election, which this retransmission supersedes. Judged again, it is
        // accepted with the new revision and answered now rather than at the next
        // retransmission (1-2 s later); if it no longer holds it gets its status (135...). A
        // second conflict withholds the BA. The rest of the batch goes again, once.
        var conflicting: Set<IPv6Address> = []
        var ours: [IPv6Address: Int64?] = [:] // keys that already hold this batch's write
        for w in batch.writes {
            let current = r.current[w.homeAddress] ?? nil
            switch w {
            case let .put(hoa, record, expected):
                // A retry of a transaction that went through (its answer was late): our record is there.
                if let current, current.record == record { ours[hoa] = current.modRevision; continue }
                if current?.modRevision != expected { conflicting.insert(hoa) }
            case let .delete(hoa, expected):
                if current == nil { ours[hoa] = .some(nil); continue }
                if current?.modRevision != expected { conflicting.insert(hoa) }
            }
        }
        // What an earlier attempt did commit is confirmed now.
        for (hoa, rev) in ours {
            storeState.revisions[hoa] = rev
            forgetRequest(hoa)
        }
        if !ours.isEmpty {
            storeState.counters.commits += 1
            storeState.counters.committedWrites += UInt64(ours.count)
            confirm(batch.subset(Set(ours.keys)))
        }
        if batch.retried { conflicting = Set(batch.writes.map(\.homeAddress)).subtracting(ours.keys) }
        if !conflicting.isEmpty { storeState.counters.conflicts += 1 }
        var judgeAgain: [PendingRequest] = []
        for hoa in conflicting {
            // A BU that waited behind this one was judged on state that did not hold: the
            // latest BU for the key (that one, if any) is what gets judged again.
            storeState.deferred[hoa] = nil
            undo(hoa, batch, reason: "another replica wrote it first")
            storeState.revisions[hoa] = nil
            if let current = r.current[hoa] ?? nil { applyRemote(current, relist: true) } else { applyRemoteDelete(hoa) }
            if let request = storeState.requests.removeValue(forKey: hoa), !request.judgedAgain { judgeAgain.append(request) }
        }
        let rest = Set(batch.writes.map(\.homeAddress)).subtracting(conflicting).subtracting(ours.keys)
        if !rest.isEmpty {
            var again = batch.subset(rest)
            again.retried = true
            submit(again)
        }
        guard !judgeAgain.isEmpty else { return }
        storeState.counters.judgedAgain += UInt64(judgeAgain.count)
        for request in judgeAgain { judge(request.packet, receivedNs: request.receivedNs, again: true) }
        flushSignaling()
    }

    /// The key's write is settled: its BU need not be kept, unless a later one waits for it.
    private func forgetRequest(_ hoa: IPv6Address) {
        if storeState.deferred[hoa] == nil { storeState.requests[hoa] = nil }
    }

    /// The store has the batch: into the maps, then the BAs that confirm it.
    private func confirm(_ batch: StoreBatch) {
        var refused: Set<IPv6Address> = []
        for f in table.write(batch.staged) {
            mapUpdateFailures += 1
            refused.insert(f.homeAddress)
            core.dataPlaneWriteFailed(homeAddress: f.homeAddress, previous: f.previous, error: f.error)
        }
        send(batch.sends.filter { $0.hoa.map { !refused.contains($0) } ?? true })
    }

    /// The store did not take the batch in time: nothing of it happened. The cache goes back
    /// to what the maps hold and the BAs are withheld (the mobile nodes retransmit). Whether
    /// new BUs are refused (130) is the heartbeats' call: a slow election is no outage.
    func commitFailed(_ id: Int, _ why: String) {
        guard let batch = storeState.inFlight.removeValue(forKey: id) else { return }
        for w in batch.writes { storeState.pendingKeys.remove(w.homeAddress) }
        defer {
            releaseDeferred(batch)
            submitQueued()
        }
        storeState.counters.failures += 1
        for w in batch.writes {
            storeState.deferred[w.homeAddress] = nil
            storeState.requests[w.homeAddress] = nil
            undo(w.homeAddress, batch, reason: "the store did not answer")
        }
        logger.warning("binding store commit failed: BAs withheld", metadata: [
            "mip6.writes": "\(batch.writes.count)", "mip6.error": "\(why)"])
    }

    /// Takes one key of a batch back out of the cache: to the binding before the BU for a
    /// put (never written to the maps), back into the cache and the maps for a de-registration.
    private func undo(_ hoa: IPv6Address, _ batch: StoreBatch, reason: String) {
        if batch.staged.bindings[hoa] != nil {
            core.storeWriteFailed(homeAddress: hoa, previous: batch.staged.before[hoa] ?? nil, reason: reason)
        } else if let b = batch.removed[hoa] {
            try? core.cache.upsert(b)
        }
    }

    func send(_ sends: [(packet: [UInt8], description: String, hoa: IPv6Address?, receivedNs: UInt64)]) {
        guard !sends.isEmpty else { return }
        for (i, error) in rawSender.send(batch: sends.map(\.packet)) { sendFailed(sends[i].description, error) }
        if let observe = onAckLatency {
            let now = clock.nanoseconds()
            for s in sends where s.receivedNs > 0 && s.receivedNs <= now { observe(Double(now - s.receivedNs) / 1e9) }
        }
    }

    // MARK: announcement

    /// The watch's lag (ms, HeartbeatTrail).
    var storeLagMilliseconds: Double? {
        // A store that takes no writes has nothing new for any watch: no replica lags then.
        if storeState.lastWriteFailedNs > storeState.lastWriteOkNs { return 0 }
        return storeState.heartbeats.lagMilliseconds(nowWallNs: StoreReplica.wallNanoseconds())
    }

    /// How this replica should attract traffic: not before the first list is in the maps nor
    /// while stopping; less than the others while its watch lags behind a store that answers.
    /// Never withdrawn for the store: a store problem hits every replica at once.
    var wantedAnnouncement: Announcement {
        if stopping { return .withdrawn }
        guard let store = options.store else { return .preferred }
        guard storeState.synced else { return .withdrawn }
        if let lag = storeLagMilliseconds, lag > Double(store.maxLagMilliseconds) { return .lagging }
        return .preferred
    }

    func updateAnnouncement() {
        guard let a = options.announce else { return }
        let want = wantedAnnouncement
        guard want != storeState.announced else { return }
        let bird = BirdControl(socket: a.birdSocket)
        do {
            // Make before break: the new announcement is up before the old one goes.
            switch want {
            case .preferred:
                try bird.run("enable \(a.protocolName)")
                if storeState.announced == .lagging { _ = try? bird.run("disable \(a.laggingProtocolName)") }
            case .lagging:
                // A BIRD configured without the _lag protocol: keep the preferred announcement.
                if (try? bird.run("enable \(a.laggingProtocolName)")) != nil { try bird.run("disable \(a.protocolName)") }
            case .withdrawn:
                try bird.run("disable \(a.protocolName)")
                _ = try? bird.run("disable \(a.laggingProtocolName)")
            }
            logger.notice(want == .preferred ? "announcing the home prefix"
                          : want == .lagging ? "announcing the home prefix less preferred (store watch lags)" : "withdrawing the home prefix",
                          metadata: ["mip6.protocol": "\(a.protocolName)",
                                     "mip6.lag_ms": "\(storeLagMilliseconds.map { String(format: "%.0f", $0) } ?? "-")"])
            storeState.announced = want
        } catch {
            logger.error("cannot change the announcement", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// Graceful stop: withdraw, give the router time to move the traffic, let in-flight
    /// commits answer their BUs.
    func withdrawAndSettle() {
        stopping = true
        if storeState.announced != .withdrawn {
            updateAnnouncement()
            usleep((options.announce?.withdrawDelayMilliseconds ?? 0) * 1000)
        }
        let deadline = clock.nanoseconds() + 1_000_000_000
        while !(storeState.inFlight.isEmpty && storeState.queued.isEmpty) && clock.nanoseconds() < deadline {
            usleep(5000)
            drainStore()
        }
        replica?.stop()
    }
}
