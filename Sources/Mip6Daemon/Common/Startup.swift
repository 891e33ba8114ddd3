import CMip6
import DataPlane
import Foundation
import Logging

/// The checks and set-up every daemon does before it loads its programs.
enum DaemonStartup {
    /// CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW (or root).
    static func checkCapabilities() throws(StartupError) {
        let missing = Capabilities.current().missingForDaemon()
        if !missing.isEmpty {
            throw StartupError("missing \(missing.joined(separator: ", ")): run as root, or grant these capabilities to the container")
        }
    }

    /// Each --interface, or an error naming the one that is not in this namespace.
    static func interfaces(_ names: [String]) throws(StartupError) -> [NetworkInterface] {
        var out: [NetworkInterface] = []
        for name in names {
            guard let i = try? NetworkInterface(named: name) else {
                throw StartupError("--interface \(name): no such interface in this network namespace")
            }
            out.append(i)
        }
        return out
    }

    /// --bpffs on a BPF filesystem and --state-dir, both created when absent.
    /// --bpffs on a BPF filesystem that outlives the daemon (BPFFS.prepare) and locked for
    /// this daemon alone, and --state-dir, both created when absent. Keep the returned lock
    /// open for the daemon's life.
    static func prepareDirectories(bpffs: String, stateDir: String, logger: Logger) throws -> (pins: String, lock: OwnedFD) {
        let pins: String
        let lock: OwnedFD
        do {
            let prepared = try BPFFS.prepare(bpffs)
            if let note = prepared.note { logger.notice("\(note)", metadata: ["mip6.bpffs": "\(bpffs)", "mip6.pins": "\(prepared.path)"]) }
            pins = prepared.path
            lock = try BPFFS.lock(pins)
        } catch {
            throw StartupError("--bpffs \(bpffs): \(error)")
        }
        do { try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true) } catch {
            throw StartupError("--state-dir \(stateDir): \(error.localizedDescription)")
        }
        return (pins, lock)
    }

    /// libbpf's own messages into the daemon's logger, the same way for every daemon:
    /// warnings as warnings, info as debug, debug as trace.
    static func routeLibBPFLog(to logger: Logger) {
        LibBPFLog.route { level, msg in
            switch level {
            case 0: logger.warning("libbpf: \(msg)")
            case 1: logger.debug("libbpf: \(msg)")
            default: logger.trace("libbpf: \(msg)")
            }
        }
    }
}

extension DaemonStartup {
    /// The home-agent BPF object (built in, or `programObject`), loaded with its maps pinned
    /// under `pins`: an earlier compatible daemon's pins are adopted (their binding table
    /// keeps its size, returned), incompatible ones refused. Shared by `mip6 ha` and `mip6 forwarder`.
    static func loadHomeAgentObject(programObject: String?, maxBindings: Int, pins: String,
                                    logger: Logger) throws -> (object: BPFObject, adopting: Bool, capacity: UInt32) {
        let obj = try HomeAgentPins.openProgramObject(path: programObject, logger: logger)
        // Pins left by an earlier daemon are adopted only if this version can read them.
        let fingerprint = HomeAgentPins.fingerprint(mapSpecs: obj.mapSpecs)
        let adopting: Bool
        do { adopting = try HomeAgentPins.checkCompatible(directory: pins, fingerprint: fingerprint) != nil } catch {
            throw StartupError("\(error)")
        }
        var capacity = UInt32(maxBindings)
        if adopting, let pinned = try? BPFMapHandle(pinned: "\(pins)/\(MIP6_MAP_BINDINGS)").maxEntries(), pinned != capacity {
            logger.warning("--max-bindings differs from the pinned binding table's size; keeping the pinned size (detach to resize)",
                           metadata: ["mip6.pinned": "\(pinned)", "mip6.requested": "\(capacity)"])
            capacity = pinned
        }
        try obj.setBindingCapacity(capacity)
        try obj.pinMaps(under: pins)
        do { try obj.load() } catch {
            throw StartupError("loading the BPF programs failed: \(error)")
        }
        try HomeAgentPins.writeMetaIfAbsent(directory: pins, fingerprint: fingerprint)
        return (obj, adopting, capacity)
    }
}
