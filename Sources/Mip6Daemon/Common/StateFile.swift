import Foundation

/// A daemon's status file under --state-dir: JSON, written atomically (rename), read by the CLI.
public protocol StateFile: Codable {
    static var fileName: String { get }
}

extension StateFile {
    public static func path(stateDir: String) -> String { "\(stateDir)/\(fileName)" }

    func write(stateDir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.dateEncodingStrategy = .iso8601
        try enc.encode(self).write(to: URL(fileURLWithPath: Self.path(stateDir: stateDir)), options: .atomic)
    }

    public static func read(stateDir: String) throws -> Self {
        let dec = JSONDecoder()
        dec.dateDecodingStrategy = .iso8601
        return try dec.decode(Self.self, from: Data(contentsOf: URL(fileURLWithPath: path(stateDir: stateDir))))
    }
}
