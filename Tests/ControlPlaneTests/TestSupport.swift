import Logging
@testable import ControlPlane

/// Bytes from hex text. Whitespace and "|" separate groups; "//" starts a comment to the end of the line.
func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let code = line.components(separatedBy: "//")[0]
        for token in code.split(whereSeparator: { $0 == " " || $0 == "|" || $0 == "\t" }) {
            precondition(token.count % 2 == 0 && token.allSatisfy(\.isHexDigit), "bad hex token \(token)")
            var i = token.startIndex
            while i < token.endIndex {
                let j = token.index(i, offsetBy: 2)
                out.append(UInt8(token[i..<j], radix: 16)!)
                i = j
            }
        }
    }
    return out
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

func addr(_ text: String) -> IPv6Address {
    guard let a = IPv6Address(text) else { fatalError("bad test address \(text)") }
    return a
}

/// Recomputes the MH checksum field of `mh` in place.
func fixChecksum(_ mh: inout [UInt8], source: IPv6Address, destination: IPv6Address) {
    mh[4] = 0
    mh[5] = 0
    let c = InternetChecksum.upperLayer(source: source, destination: destination, nextHeader: 135, payload: mh)
    mh[4] = UInt8(c >> 8)
    mh[5] = UInt8(c & 0xff)
}

/// A clock the test moves by hand. Tests drive it from one task only.
final class TestClock: MonotonicClock, @unchecked Sendable {
    var now: UInt64
    init(_ now: UInt64 = 1_000_000_000_000) { self.now = now }
    func nanoseconds() -> UInt64 { now }
    func advance(seconds: Double) { now += UInt64(seconds * 1e9) }
}

struct DataPlaneFailure: Error, Equatable {
    var message = "map update failed"
}

/// Records what the cache wrote through; can be told to fail.
final class MockDataPlane: BindingDataPlane {
    var installed: [IPv6Address: Binding] = [:]
    var installCalls = 0
    var removeCalls = 0
    var failInstalls = false
    var failRemoves = false
    /// Fail removal of just this home address.
    var failRemoveOf: IPv6Address?

    func install(_ binding: Binding) throws {
        installCalls += 1
        if failInstalls { throw DataPlaneFailure() }
        installed[binding.homeAddress] = binding
    }

    func remove(homeAddress: IPv6Address) throws {
        removeCalls += 1
        if failRemoves || failRemoveOf == homeAddress { throw DataPlaneFailure(message: "map delete failed") }
        installed[homeAddress] = nil
    }
}

/// Captures log records so tests can check levels and metadata.
final class LogCapture: @unchecked Sendable {
    struct Record {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }
    var records: [Record] = []

    func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "test") { _ in CaptureHandler(capture: self) }
        logger.logLevel = level
        return logger
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.records.append(Record(level: event.level, message: event.message.description,
                                          metadata: event.metadata ?? [:]))
        }
    }
}
