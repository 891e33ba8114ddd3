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
        for event in replica.takeEvents() {
            switch event {
            case let .listed(bindings, revision):
                applyList(bindings, revision: revision)
            case let .changes(c):
                for s in c.upserts { applyRemote(s) }
                for hoa in c.deletes { applyRemoteDelete(hoa) }
                if let newest = c.heartbeats.values.max() { storeState.newestHeartbeatNs = max(storeState.newestHeartbeatNs, newest) }
            case let .syncLost(why):
                storeState.counters.watchBreaks += 1
                logger.warning("store watch broken, listing again", metadata: ["mip6.error": "\(why)"])
            case let .committed(id, result):
                finishCommit(id, result)
            case let .commitFailed(id, why):
                commitFailed(id, why)
            case let .heartbeatWritten(ok):
                let now = clock.nanoseconds()
                if ok {
                    storeState.lastWriteOkNs = now
                    if core.refusingRegistrations != nil {
                        core.refusingRegistrations = nil
                        logger.notice("the binding store answers again: accepting Binding Updates")
                    }
                } else {
                    storeState.lastWriteFailedNs = now
                    storeState.counters.heartbeatFailures += 1
                    refuseRegistrations("the binding store does not answer")
                }
            }
            stateDirty = true
        }
        updateAnnouncement()
    }

    /// While the store cannot take writes (no quorum), authentic BUs get 130 and change
    /// nothing; forwarding goes on from the maps. Never a withdrawal: every replica would.
    func refuseRegistrations(_ why: String) {
        guard core.refusingRegistrations == nil else { return }
        core.refusingRegistrations = .insufficientResources
        logger.error("refusing Binding Updates (status 130) until the binding store answers; forwarding goes on",
                     metadata: ["mip6.reason": "\(why)"])
    }

    // MARK: list and watch

    func applyList(_ bindings: [StoredBinding], revision: Int64) {
        storeState.counters.lists += 1
        let listed = Set(bindings.map(\.homeAddress))
        let inFlight = Set(storeState.inFlight.values.flatMap { $0.writes.map(\.homeAddress) })
        for s in bindings { applyRemote(s, relist: true) }
        // Gone from the store while the watch was down (or before this daemon started).
        for b in core.cache.all where !listed.contains(b.homeAddress) && !inFlight.contains(b.homeAddress) {
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
        guard let b = try? s.record.binding(homeAddress: hoa, clocks: clocks) else { return }
        if b.expiresAt <= clock.nanoseconds() {
            if core.cache[hoa] != nil { _ = try? core.cache.remove(hoa) }
            return
        }
        if core.cache[hoa] == b { return }
        do {
            try core.cache.upsert(b)
            storeState.counters.remoteUpserts += 1
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

    func submit(_ batch: StoreBatch) {
        let id = storeState.nextBatch
        storeState.nextBatch += 1
        storeState.inFlight[id] = batch
        replica?.commit(id: id, batch.writes)
    }

    func finishCommit(_ id: Int, _ r: CommitResult) {
        guard let batch = storeState.inFlight.removeValue(forKey: id) else { return }
        if r.succeeded {
            storeState.counters.commits += 1
            storeState.counters.committedWrites += UInt64(batch.writes.count)
            for w in batch.writes {
                if case .put = w { storeState.revisions[w.homeAddress] = r.revision } else { storeState.revisions[w.homeAddress] = nil }
            }
            var refused: Set<IPv6Address> = []
            for f in table.write(batch.staged) {
                mapUpdateFailures += 1
                refused.insert(f.homeAddress)
                core.dataPlaneWriteFailed(homeAddress: f.homeAddress, previous: f.previous, error: f.error)
            }
            send(batch.sends.filter { $0.hoa.map { !refused.contains($0) } ?? true })
            return
        }
        // Someone else wrote one of these keys first. Those take the store's value and lose
        // their BA (the mobile node retransmits and is judged on the fresh state); the rest
        // of the batch goes again, once.
        storeState.counters.conflicts += 1
        var conflicting: Set<IPv6Address> = []
        for w in batch.writes {
            let expected: Int64?
            switch w {
            case let .put(_, _, e): expected = e
            case let .delete(_, e): expected = e
            }
            if (r.current[w.homeAddress] ?? nil)?.modRevision != expected { conflicting.insert(w.homeAddress) }
        }
        if batch.retried { conflicting = Set(batch.writes.map(\.homeAddress)) }
        for hoa in conflicting {
            undo(hoa, batch, error: StoreError("conflicting write in the binding store"))
            storeState.revisions[hoa] = nil
            if let current = r.current[hoa] ?? nil { applyRemote(current, relist: true) } else { applyRemoteDelete(hoa) }
        }
        let rest = batch.writes.filter { !conflicting.contains($0.homeAddress) }
        guard !rest.isEmpty else { return }
        let keys = Set(rest.map(\.homeAddress))
        submit(StoreBatch(writes: rest,
                          staged: BPFBindingTable.Staged(bindings: batch.staged.bindings.filter { keys.contains($0.key) },
                                                         before: batch.staged.before.filter { keys.contains($0.key) }),
                          removed: batch.removed.filter { keys.contains($0.key) },
                          sends: batch.sends.filter { $0.hoa.map { keys.contains($0) } ?? false }, retried: true))
    }

    /// The store did not answer: nothing of the batch happened. The cache goes back to what
    /// the maps hold, BAs are withheld (the mobile nodes retransmit), new BUs get 130.
    func commitFailed(_ id: Int, _ why: String) {
        guard let batch = storeState.inFlight.removeValue(forKey: id) else { return }
        storeState.counters.failures += 1
        for w in batch.writes { undo(w.homeAddress, batch, error: StoreError(why)) }
        refuseRegistrations(why)
    }

    /// Takes one key of a batch back out of the cache: to the binding before the BU for a
    /// put (never written to the maps), back into the cache and the maps for a de-registration.
    private func undo(_ hoa: IPv6Address, _ batch: StoreBatch, error: Error) {
        if batch.staged.bindings[hoa] != nil {
            core.dataPlaneWriteFailed(homeAddress: hoa, previous: batch.staged.before[hoa] ?? nil, error: error)
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

    /// Lag: how old the newest heartbeat the watch delivered is (ms); nil before one.
    var storeLagMilliseconds: Double? {
        guard storeState.newestHeartbeatNs > 0 else { return nil }
        return Double(StoreReplica.wallNanoseconds() - storeState.newestHeartbeatNs) / 1e6
    }

    /// Whether this replica should attract traffic: synced, not lagging behind a store that
    /// answers, not stopping. A store nobody can reach is no reason: every replica would go.
    var shouldAnnounce: Bool {
        if stopping { return false }
        guard let store = options.store else { return true }
        guard storeState.synced else { return false }
        let reachable = storeState.lastWriteOkNs > storeState.lastWriteFailedNs
        if reachable, let lag = storeLagMilliseconds, lag > Double(store.maxLagMilliseconds) { return false }
        return true
    }

    func updateAnnouncement() {
        guard let a = options.announce else { return }
        let want = shouldAnnounce
        guard want != storeState.announced else { return }
        do {
            try BirdControl(socket: a.birdSocket).run("\(want ? "enable" : "disable") \(a.protocolName)")
            storeState.announced = want
            logger.notice(want ? "announcing the home prefix" : "withdrawing the home prefix", metadata: [
                "mip6.protocol": "\(a.protocolName)", "mip6.lag_ms": "\(storeLagMilliseconds.map { String(format: "%.0f", $0) } ?? "-")"])
        } catch {
            logger.error("cannot change the announcement", metadata: ["mip6.error": "\(error)"])
        }
    }

    /// Graceful stop: withdraw, give the router time to move the traffic, let in-flight
    /// commits answer their BUs.
    func withdrawAndSettle() {
        stopping = true
        if storeState.announced {
            updateAnnouncement()
            usleep((options.announce?.withdrawDelayMilliseconds ?? 0) * 1000)
        }
        let deadline = clock.nanoseconds() + 1_000_000_000
        while !storeState.inFlight.isEmpty && clock.nanoseconds() < deadline {
            usleep(5000)
            drainStore()
        }
        replica?.stop()
    }
}
