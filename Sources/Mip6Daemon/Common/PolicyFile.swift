import ControlPlane
import DataPlane
import Foundation

extension ProxyPolicy {
    /// The PMIPv6 policy file both `mip6 lma` and `mip6 mag` read (--policy), at start and on
    /// SIGHUP; its errors name the file and the line.
    static func read(_ path: String) throws -> ProxyPolicy {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw StartupError("--policy \(path): cannot read it (\(error.localizedDescription))")
        }
        do { return try ProxyPolicy(parsing: text) } catch { throw StartupError("--policy \(path): \(error)") }
    }
}
