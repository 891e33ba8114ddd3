import CMip6
import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

extension MobileNodeDaemon {
    /// RFC 6275 §11.5.1 movement detection, simplified to what netlink tells us: the
    /// care-of address is the global address of the first listed interface that is up
    /// and running; an address inside the home prefix means we are home.
    func rescan() {
        var chosen: IPv6Address?
        owner = [:]
        for name in options.interfaces {
            guard let i = try? NetworkInterface(named: name) else { continue }
            let globals = i.ipv6Addresses().filter(\.isUnicastRoutable)
            for a in globals { owner[a] = i }
            if chosen == nil && i.isRunning, let a = globals.first(where: { $0 != options.homeAddress }) ?? globals.first {
                chosen = options.homePrefix.contains(a) ? options.homeAddress : a
            }
        }
        if owner[options.homeAddress] == nil, let home = options.interfaces.lazy.compactMap({ try? NetworkInterface(named: $0) })
            .first(where: { $0.isRunning && $0.ipv6Addresses().contains { self.options.homePrefix.contains($0) } }) {
            owner[options.homeAddress] = home
        }
        perform(core.careOfAddressChanged(chosen))
    }
}
