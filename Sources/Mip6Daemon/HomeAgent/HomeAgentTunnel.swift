import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// The home agent's share of RFC 2473 §7.1(b): tunnel packets that must travel in fragments.
struct FragmentedTunnelCounters {
    /// Packets the data plane punted (MIP6_PUNT_FRAGMENT) and the daemon sent as fragmented
    /// tunnel packets.
    var sent: UInt64 = 0
    /// Punted packets not sent, by FragmentedTunnel.EntryDrop raw value or "send_failed".
    var drops: [String: UInt64] = [:]
    /// ICMPv6 Packet Too Big about our tunnel packets: the kernel lowered the path MTU to a
    /// care-of address (and the data plane's next-hop cache was invalidated).
    var packetTooBig: UInt64 = 0
    /// Other ICMPv6 errors about our tunnel packets (unreachable care-of addresses, ...).
    var otherErrors: UInt64 = 0
    /// Tunnel packets to us that the kernel reassembled (a fragmented reverse tunnel): the data
    /// plane sees only their fragments and nothing here decapsulates them.
    var ignored: UInt64 = 0
}

extension HomeAgentDaemon {
    /// A punted packet of 1280 bytes or less whose tunnel packet exceeds the path MTU to the
    /// care-of address: sent on the tunnel socket, whose kernel fragments the tunnel packet to
    /// the path MTU; the mobile node's kernel reassembles it (RFC 2473 §7.1(b)).
    func sendFragmentedTunnel(_ inner: [UInt8]) {
        switch FragmentedTunnel.encapsulate(inner, cache: core.cache, now: clock.nanoseconds()) {
        case let .send(packet, careOf):
            do {
                try tunnel.send(packet, to: careOf)
                fragmented.sent += 1
            } catch {
                fragmentedDropped("send_failed", "\(error)")
            }
        case let .drop(reason):
            fragmentedDropped(reason.rawValue, "")
        }
    }

    func fragmentedDropped(_ reason: String, _ detail: String) {
        fragmented.drops[reason, default: 0] += 1
        if fragmented.drops[reason] == 1 {
            logger.warning("fragmented tunnel packet not sent (further ones of this kind are only counted: mip6 stats)",
                           metadata: ["mip6.reason": "\(reason)", "mip6.error": "\(detail)"])
        }
    }

    /// What the tunnel socket has: ICMPv6 errors about our tunnel packets (the kernel has lowered
    /// the path MTU for a Packet Too Big already: the next-hop cache is invalidated, once per
    /// turn, so the data plane's next packet to that care-of address sees it at once), and
    /// tunnel packets to us the kernel reassembled, counted. At most `drainLimit` of each a turn.
    /// A failing read is counted with the send failures, never the end of the loop.
    func drainTunnel() {
        do { try readTunnel() } catch { sendFailed("tunnel socket", error) }
    }

    private func readTunnel() throws {
        var tooBig = false
        defer {
            if tooBig {
                do { try maps.bumpNextHopGeneration() } catch {
                    logger.error("cannot invalidate the next-hop cache", metadata: ["mip6.error": "\(error)"])
                }
            }
        }
        for _ in 0..<Self.drainLimit {
            guard let e = try tunnel.receiveError() else { break }
            stateDirty = true
            guard e.isPacketTooBig else {
                fragmented.otherErrors += 1
                continue
            }
            tooBig = true
            fragmented.packetTooBig += 1
            if fragmented.packetTooBig == 1 {
                logger.info("path MTU to a care-of address lowered by a Packet Too Big (further ones are only counted: mip6 stats)",
                            metadata: ["mip6.coa": "\(e.destination)", "mip6.mtu": "\(e.info)", "mip6.from": "\(e.offender)"])
            }
        }
        for _ in 0..<Self.drainLimit {
            guard try tunnel.receive() != nil else { break }
            fragmented.ignored += 1
            stateDirty = true
        }
    }

    static let drainLimit = 256
}
