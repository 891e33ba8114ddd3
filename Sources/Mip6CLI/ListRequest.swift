import Foundation
import Mip6Daemon

/// How `mip6 lma bindings` and `mip6 mag status` get a daemon's list: SIGUSR1 to `pid` and a
/// wait for the list written for that request; else the last one written, with a note on
/// stderr saying so (or that there is none).
func requestList<L: ListOnRequest>(_: L.Type, pid: Int32, stateDir: String, wait: Double) -> ListReply<L> {
    let reply = L.request(from: pid, stateDir: stateDir, wait: wait)
    if let note = reply.note(stateDir: stateDir) { FileHandle.standardError.write(Data((note + "\n").utf8)) }
    return reply
}
