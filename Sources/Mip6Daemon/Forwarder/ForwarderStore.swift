import CMip6
import ControlPlane
import DataPlane
import Foundation
import Logging
import Mip6Store

/// The forwarder's maps from the store (loop thread): a list replaces what is held, the watch
/// applies changes in order of revision, and each batch reaches the maps in one
/// bpf_map_update_batch. Bindings expire here on time, as at a replica.
extension ForwarderDaemon {
    var clocks: BindingRecord.Clocks {
        BindingRecord.Clocks(monotonicNs: clock.nanoseconds(), wallNs: StoreReplica.wallNanoseconds())
    }

    func drainStore() {
        guard let feed else { return }
        let events = feed.takeEvents()
        guard !events.isEmpty else { return }
        inBatch {
            for event in events {
                switch event {
                case let .listed(bindings, revision):
                    applyList(bindings, revision: revision)
                case let .changes(c):
                    for s in c.upserts { apply(s) }
                    for hoa in c.deletes { applyDelete(hoa) }
                    sync.changes(revision: c.revision, ownHeartbeat: c.heartbeats[options.store.replicaID], nowNs: clock.nanoseconds())
                case let .syncLost(why):
                    counters.watchBreaks += 1
                    sync.syncLost()
                    logger.warning("store watch lost, listing again", metadata: ["mip6.error": "\(why)"])
                case let .watchBroken(why, revision):
                    counters.watchBreaks += 1
                    sync.watchBroken()
                    logger.warning("store watch broken, watching again", metadata: ["mip6.error": "\(why)", "mip6.revision": "\(revision)"])
                case let .heartbeatWritten(ok, wallNs, acknowledged):
                    if ok { sync.heartbeatAcknowledged(carried: wallNs, atWallNs: acknowledged) } else { counters.heartbeatFailures += 1 }
                case .committed, .commitFailed:
                    break // a forwarder commits nothing
                }
            }
        }
        stateDirty = true
        feed.restartWatchIfLagging(lagMilliseconds: sync.lagMilliseconds(wallNs: StoreReplica.wallNanoseconds()),
                                   maxLagMilliseconds: options.store.maxLagMilliseconds)
        updateForwarding()
    }

    /// Runs `body` with installs staged, then writes them in one batch; a binding the maps
    /// refuse leaves the cache too (it holds what the maps hold).
    func inBatch(_ body: () -> Void) {
        table.deferring = true
        body()
        table.deferring = false
        for r in table.flush() {
            counters.mapUpdateFailures += 1
            cache.revert(r.homeAddress, to: r.previous)
            revisions[r.homeAddress] = nil
            logger.error("cannot install a binding from the store", metadata: ["mip6.hoa": "\(r.homeAddress)", "mip6.error": "\(r.error)"])
        }
    }

    /// Every binding at `revision`: what is not in it is gone.
    func applyList(_ bindings: [StoredBinding], revision: Int64) {
        counters.lists += 1
        var listed = Set<IPv6Address>(minimumCapacity: bindings.count)
        for s in bindings {
            listed.insert(s.homeAddress)
            apply(s, relist: true)
        }
        for b in cache.all where !listed.contains(b.homeAddress) { applyDelete(b.homeAddress) }
        sync.listed(revision: revision, nowNs: clock.nanoseconds())
        if firstSyncMilliseconds == nil {
            firstSyncMilliseconds = Double(clock.nanoseconds() - startedNs) / 1e6
            logger.notice("binding store listed", metadata: ["mip6.bindings": "\(cache.count)", "mip6.revision": "\(revision)",
                                                             "mip6.since_start_ms": "\(Int(firstSyncMilliseconds ?? 0))"])
        }
    }

    func apply(_ s: StoredBinding, relist: Bool = false) {
        let hoa = s.homeAddress
        if let known = revisions[hoa], s.modRevision < known || (s.modRevision == known && !relist) { return }
        revisions[hoa] = s.modRevision
        guard options.homePrefix.contains(hoa) else {
            counters.invalidRecords += 1
            return
        }
        let b = s.record.binding(homeAddress: hoa, clocks: clocks)
        if b.expiresAt <= clock.nanoseconds() {
            if cache[hoa] != nil { applyDelete(hoa, keepRevision: true) }
            return
        }
        // The same binding listed again converts to monotonic time a few ns apart: no write.
        if let old = cache[hoa], old.careOfAddress == b.careOfAddress, old.sequence == b.sequence, old.flags == b.flags,
           old.lifetime == b.lifetime, (old.expiresAt > b.expiresAt ? old.expiresAt - b.expiresAt : b.expiresAt - old.expiresAt) < 1_000_000 {
            return
        }
        do {
            try cache.upsert(b)
            counters.upserts += 1
            if !relist { convergence.note(Double(StoreReplica.wallNanoseconds() - s.record.registeredUnixNs) / 1e6) }
        } catch BindingCacheError.full {
            counters.cacheFull += 1
            revisions[hoa] = nil
        } catch {
            counters.mapUpdateFailures += 1
            revisions[hoa] = nil
        }
    }

    func applyDelete(_ hoa: IPv6Address, keepRevision: Bool = false) {
        if !keepRevision { revisions[hoa] = nil }
        guard cache[hoa] != nil else { return }
        do {
            try cache.remove(hoa)
            counters.deletes += 1
        } catch {
            counters.mapUpdateFailures += 1
        }
    }

    /// RFC 6275 §10.3.1: a binding is used for its lifetime only (the data plane checks it
    /// too; this frees the entry).
    func expire() {
        do {
            counters.expirations += UInt64(try cache.expire(now: clock.nanoseconds()).count)
        } catch let BindingCacheError.expiryInterrupted(expired, error) {
            counters.expirations += UInt64(expired.count)
            counters.mapUpdateFailures += 1
            logger.error("cannot remove an expired binding", metadata: ["mip6.error": "\(error)"])
        } catch {}
        stateDirty = true
    }

    /// MIP6_CFG_ENABLED while synced and not stopping; cleared otherwise (every packet passes
    /// and is routed to the replicas).
    func updateForwarding() {
        let why = stopping ? "stopping" : sync.notSyncedReason(nowNs: clock.nanoseconds(), wallNs: StoreReplica.wallNanoseconds())
        notSynced = why
        let want = why == nil
        guard want != forwarding else { return }
        do {
            try maps.setConfigFlag(UInt32(MIP6_CFG_ENABLED), want)
            forwarding = want
            stateDirty = true
            if want {
                logger.notice("synced with the store: forwarding", metadata: ["mip6.bindings": "\(cache.count)", "mip6.revision": "\(sync.revision)"])
            } else {
                counters.syncLosses += 1
                logger.warning("not synced: passing every packet to the replicas", metadata: ["mip6.reason": "\(why ?? "")"])
            }
        } catch {
            logger.error("cannot change mip6_config", metadata: ["mip6.error": "\(error)"])
        }
    }
}
