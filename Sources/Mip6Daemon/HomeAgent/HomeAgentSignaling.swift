import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension HomeAgentDaemon {
    /// Everything waiting in the signaling ring, with the map writes of each 64 BUs batched
    /// (one bpf_map_update_batch) and their BAs sent after them (one sendmmsg): a BA never
    /// confirms a binding the data plane does not have yet.
    func drainSignaling() throws {
        table.deferring = true
        defer {
            flushSignaling()
            table.deferring = false
        }
        try ring.consume()
    }

    /// Writes the drain's staged bindings, then sends what confirms them: the unsolicited NAs
    /// of new home addresses (the router must not be pointed at us before we tunnel) and the
    /// BAs. A binding the maps refused gets neither; the cache goes back to the binding the
    /// maps still hold, which keeps forwarding, and the mobile node retransmits (§11.8).
    func flushSignaling() {
        if replica != nil { return storeFlush() }
        var refused: Set<IPv6Address> = []
        for r in table.flush() {
            mapUpdateFailures += 1
            refused.insert(r.homeAddress)
            core.dataPlaneWriteFailed(homeAddress: r.homeAddress, previous: r.previous, error: r.error)
        }
        let announcements = pendingAnnouncements.filter { !refused.contains($0.hoa) }
        pendingAnnouncements.removeAll(keepingCapacity: true)
        for a in announcements { sendUnsolicitedNA(a.hoa, linkLocal: a.linkLocal) }
        guard !pendingSends.isEmpty else { return }
        let sends = refused.isEmpty ? pendingSends : pendingSends.filter { $0.hoa.map { !refused.contains($0) } ?? true }
        pendingSends.removeAll(keepingCapacity: true)
        for (i, error) in rawSender.send(batch: sends.map(\.packet)) {
            sendFailed(sends[i].description, error)
        }
        if let observe = onAckLatency {
            let now = clock.nanoseconds()
            for s in sends where s.receivedNs > 0 && s.receivedNs <= now { observe(Double(now - s.receivedNs) / 1e9) }
        }
        stateDirty = true
    }

    /// SIGHUP: bindings an operator evicted from the maps (`mip6 bindings delete|flush`)
    /// leave the cache too, so that the next BU for them is a new registration.
    func reconcileWithMaps() {
        maps.forgetSlots() // the operator's deletes freed slots this process did not see go
        var evicted = 0
        for b in core.cache.all {
            // Only an answer of "absent" evicts; a failed lookup leaves the binding alone.
            guard case .success(.none) = Result(catching: { try maps.bindings.lookup(HomeAgentMaps.key(b.homeAddress)) }) else { continue }
            core.cache.revert(b.homeAddress, to: nil)
            evicted += 1
        }
        if evicted > 0 {
            stateDirty = true
            logger.notice("SIGHUP: bindings evicted from the data plane by an operator dropped from the cache",
                          metadata: ["mip6.count": "\(evicted)"])
        }
    }

    /// SIGHUP: re-read --auth-keys; bindings stay. A broken file keeps the old keys.
    func reloadKeys() {
        guard let path = options.authKeysPath else {
            logger.info("SIGHUP: no --auth-keys file to reload")
            return
        }
        do {
            let keys = try KeyFiles.keyStore(path, logger: logger)
            core.replaceKeys(keys)
            logger.notice("SIGHUP: keys reloaded, bindings kept", metadata: ["mip6.keys": "\(keys.count)"])
        } catch {
            logger.error("SIGHUP: keeping the previous keys", metadata: ["mip6.error": "\(error)"])
        }
    }

    func handlePunt(_ record: UnsafeRawBufferPointer) {
        stateDirty = true
        guard let punt = PuntRecord(record) else {
            puntsMalformed += 1 // short, or truncated by the data plane: never half-parsed
            return
        }
        let packet = punt.packet
        switch Int32(punt.kind) {
        case Int32(MIP6_PUNT_MH.rawValue):
            judge(packet, receivedNs: punt.timestampNanoseconds)
            if table.stagedCount >= Self.flushEvery || pendingSends.count >= Self.flushEvery { flushSignaling() }
        case Int32(MIP6_PUNT_NA.rawValue):
            // RFC 4862 §5.4.4: an NA for a tentative home address (or, L flag, its link-local
            // address, RFC 6275 §10.3.1) means it is in use.
            if let na = IPv6PacketParser.parseNeighborAdvertisement(packet), let hoa = dadHomeAddress(probing: na.target) {
                endDAD(hoa)
                logger.warning("duplicate address detected for home address", metadata: [
                    "mip6.hoa": "\(hoa)", "mip6.target": "\(na.target)", "mip6.from": "\(na.source)"])
                perform(core.dadFinished(homeAddress: hoa, duplicate: true))
                updateNACopy()
            }
        case Int32(MIP6_PUNT_FRAGMENT.rawValue):
            sendFragmentedTunnel(packet) // RFC 2473 §7.1(b): HomeAgentTunnel.swift
        default:
            puntsMalformed += 1
        }
        stateDirty = true
    }

    /// One Mobility Header packet through the core. With a store, a BU that changed a binding
    /// is kept until its commit: if another replica wrote the key first, it is judged again
    /// on the store's state (`HomeAgentReplication.finishCommit`), once.
    func judge(_ packet: [UInt8], receivedNs: UInt64, again: Bool = false) {
        let actions = core.handlePacket(packet, localAddresses: localAddresses)
        // The home address whose binding this BU changed: its BA confirms that change.
        let installed = actions.lazy.compactMap { a -> IPv6Address? in
            switch a {
            case let .bindingInstalled(b): return b.homeAddress
            case let .bindingRemoved(b, reason) where reason == .deregistered: return b.homeAddress
            default: return nil
            }
        }.first
        if let installed, replica != nil {
            storeState.requests[installed] = PendingRequest(packet: packet, receivedNs: receivedNs, judgedAgain: again)
        }
        currentPunt = (installed, receivedNs)
        perform(actions)
        currentPunt = nil
    }

    func perform(_ actions: [HomeAgentAction]) {
        for action in actions {
            switch action {
            case let .send(packet, description):
                if let punt = currentPunt, table.deferring {
                    pendingSends.append((packet, description, punt.hoa, punt.receivedNs))
                } else {
                    do { try rawSender.send(packet) } catch {
                        sendFailed(description, error)
                    }
                }
            case let .startDAD(hoa, linkLocal):
                startDAD(hoa, linkLocal: linkLocal)
            case let .sendUnsolicitedNA(hoa, linkLocal):
                if table.deferring {
                    pendingAnnouncements.append((hoa, linkLocal)) // after the map write (flushSignaling)
                } else {
                    sendUnsolicitedNA(hoa, linkLocal: linkLocal)
                }
            case let .bindingRemoved(b, reason) where reason == .deregistered && replica != nil && table.deferring:
                pendingRemovals[b.homeAddress] = b // the store deletes it before the BA leaves
            case .bindingInstalled, .bindingRemoved:
                break
            }
            stateDirty = true
        }
    }

    /// Counts a failed send; logs the first failure of each kind only (a BU flood with
    /// unroutable care-of addresses must not become a log flood).
    func sendFailed(_ what: String, _ error: Error) {
        sendFailures += 1
        let kind = (error as? SystemError).map { "\($0.operation):\($0.errno.rawValue)" } ?? "\(error)"
        if loggedSendFailures.insert(kind).inserted {
            logger.warning("sending failed (further failures of this kind are only counted: mip6 stats)",
                           metadata: ["mip6.what": "\(what)", "mip6.error": "\(error)"])
        }
    }
}
