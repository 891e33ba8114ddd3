import ControlPlane
import DataPlane
import Foundation
import Glibc
import Logging

/// Reading RFC 4285 key material from disk: the home agent's key file (KeyStore format)
/// and the mobile node's single key. Files other users can read get a warning; keys
/// never reach a log line or an error message.
public enum KeyFiles {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static func read(_ path: String, logger: Logger) throws(Failure) -> String {
        var st = stat()
        do { try Syscall.call("stat", path) { stat(path, &st) } } catch { throw Failure(description: "\(path): \(error.errno)") }
        if st.st_mode & 0o077 != 0 {
            logger.warning("key file is readable or writable by other users; chmod 600 it",
                           metadata: ["mip6.file": "\(path)", "mip6.mode": "\(String(st.st_mode & 0o777, radix: 8))"])
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "\(path): cannot read")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The home agent's `--auth-keys` file: `NAI HOME-ADDRESS|any SPI KEY-HEX` per line.
    public static func keyStore(_ path: String, logger: Logger) throws(Failure) -> KeyStore {
        let text = try read(path, logger: logger)
        do { return try KeyStore(parsing: text) } catch { throw Failure(description: "\(path): \(error)") }
    }

    /// The mobile node's `--key-file`: the first line that is not blank or a # comment, in hex.
    public static func key(_ path: String, logger: Logger) throws(Failure) -> MobilityKey {
        let text = try read(path, logger: logger)
        let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .first { !$0.isEmpty && !$0.hasPrefix("#") }
        guard let line, let key = MobilityKey(hex: line) else {
            throw Failure(description: "\(path): expected one line with the key in hex")
        }
        return key
    }
}
