import CMip6
import DataPlane
import Foundation
import Glibc
import Logging

/// How our program sits on one interface, recorded at attach time (readiness, status).
public struct AttachedProgram: Sendable, Equatable {
    public var how: Attachment
    public var ifindex: UInt32
    public var programID: UInt32
}

/// Putting the home-agent object's program on interfaces, the same way for `mip6 ha` and
/// `mip6 forwarder` (both load `mip6_ha`): --attach-mode, auto's fallback to TC, and the
/// interfaces an earlier daemon left that are not ours now.
enum ProgramAttachment {
    /// Attaches to every interface (replacing, without a gap, what an earlier daemon left)
    /// and detaches from interfaces an earlier daemon had that are not in `ifaces`.
    static func attach(object: BPFObject, maps: HomeAgentMaps, interfaces ifaces: [NetworkInterface], mode: AttachMode,
                       pins: String, logger: Logger) throws -> [String: AttachedProgram] {
        let xdp = try object.program(MIP6_PROG_HA_XDP)
        let tc = try object.program(MIP6_PROG_HA_TC)
        var previous: [UInt32: Attachment] = [:]
        for (ifindex, v) in try maps.readInterfaces() { previous[ifindex] = Attachment(rawValue: v.attach) }
        var attached: [String: AttachedProgram] = [:]
        for i in ifaces {
            var want: Attachment
            var why: String
            switch mode {
            case .xdp: (want, why) = (.xdpNative, "--attach-mode xdp")
            case .xdpGeneric: (want, why) = (.xdpGeneric, "--attach-mode xdp-generic")
            case .tc: (want, why) = (.tc, "--attach-mode tc")
            case .auto: (want, why) = HomeAgentPins.autoAttachment(interface: i.name)
            }
            var got: Attachment
            do {
                got = try HomeAgentPins.attach(xdp: xdp, tc: tc, interface: i, want: want, previous: previous[i.index],
                                               directory: pins, logger: logger)
            } catch let error as SystemError where mode == .auto && want == .xdpNative
                && error.errno.is(EOPNOTSUPP, EINVAL, ENOTSUP) {
                // The driver has no native XDP after all: TC keeps GSO, generic XDP would not.
                logger.notice("native XDP refused; using TC", metadata: ["mip6.interface": "\(i.name)", "mip6.error": "\(error)"])
                (want, why) = (.tc, "native XDP refused by the driver")
                got = try HomeAgentPins.attach(xdp: xdp, tc: tc, interface: i, want: want, previous: previous[i.index],
                                               directory: pins, logger: logger)
            } catch let error as SystemError {
                switch error.errno {
                case EBUSY, EEXIST:
                    throw StartupError("\(i.name) already has an XDP program that is not ours; detach it first (ip link set dev \(i.name) xdp off)")
                case EOPNOTSUPP, EINVAL:
                    throw StartupError("cannot attach in \(want.label) mode to \(i.name): \(error) (try --attach-mode tc)")
                default:
                    throw error
                }
            }
            previous[i.index] = nil
            attached[i.name] = AttachedProgram(how: got, ifindex: i.index, programID: got == .tc ? tc.id : xdp.id)
            try maps.setInterface(ifindex: i.index, mac: i.mac, mtu: i.mtu, attachment: got)
            logger.info("program attached", metadata: ["mip6.interface": "\(i.name)", "mip6.attach": "\(got.label)", "mip6.why": "\(why)",
                                                       "mip6.program_tag": "\(got == .tc ? tc.tag : xdp.tag)"])
        }
        for (ifindex, old) in previous { // an earlier daemon's interface we no longer serve
            try HomeAgentPins.detach(directory: pins, ifindex: ifindex, attachment: old)
            try maps.removeInterface(ifindex: ifindex)
            logger.notice("detached from an interface no longer configured", metadata: ["mip6.ifindex": "\(ifindex)"])
        }
        return attached
    }

    /// Interfaces whose attached program is not the one we put there ("name: why").
    static func wrong(_ attached: [String: AttachedProgram], interfaces: [String]) -> [String] {
        var wrong: [String] = []
        for name in interfaces {
            guard let a = attached[name] else {
                wrong.append("\(name): not attached")
                continue
            }
            let found = HomeAgentPins.attachedProgramID(ifindex: a.ifindex, attachment: a.how)
            if found != a.programID {
                wrong.append("\(name): \(a.how.label) program \(found.map { "\($0)" } ?? "none"), expected \(a.programID)")
            }
        }
        return wrong
    }
}
