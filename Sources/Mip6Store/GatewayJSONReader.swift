// Reading the gateway's watch stream without JSONDecoder: every replica decodes every event
// of the cluster (10,000 a second at the target rate), and Codable's generic containers cost
// more than applying the binding to the maps. The reader takes any RFC 8259 text.
import Foundation

/// A parsed JSON value: objects keep their members in order (the gateway's are small).
enum JSONNode: Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([JSONNode])
    case object([(String, JSONNode)])

    static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)), let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    subscript(_ key: String) -> JSONNode? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    var bool: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    var array: [JSONNode]? {
        if case let .array(a) = self { return a }
        return nil
    }

    static func parse(_ bytes: some Collection<UInt8>) throws -> JSONNode {
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { p in
            var r = JSONReader(p)
            let v = try r.value(depth: 0)
            r.skipSpace()
            guard r.i == p.count else { throw r.error("trailing characters") }
            return v
        }
    }
}

struct JSONReader {
    let p: UnsafeBufferPointer<UInt8>
    var i = 0
    /// Deeper than this is not a gateway reply: refused rather than recursed into.
    static let maxDepth = 32

    init(_ p: UnsafeBufferPointer<UInt8>) { self.p = p }

    func error(_ what: String) -> EtcdError { EtcdError("bad JSON at byte \(i): \(what)") }

    mutating func skipSpace() {
        while i < p.count, p[i] == 0x20 || p[i] == 0x0a || p[i] == 0x0d || p[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws -> JSONNode {
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth)") }
        skipSpace()
        guard i < p.count else { throw error("unexpected end") }
        switch p[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(String, JSONNode)] = []
            skipSpace()
            if i < p.count, p[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < p.count, p[i] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                skipSpace()
                guard i < p.count, p[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
                i += 1
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < p.count else { throw error("unterminated object") }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                guard p[i] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                i += 1
                return .object(members)
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONNode] = []
            skipSpace()
            if i < p.count, p[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < p.count else { throw error("unterminated array") }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                guard p[i] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                i += 1
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            i += 1
            while i < p.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p[i]) || p[i] == UInt8(ascii: ".")
                || p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") || p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") {
                i += 1
            }
            return .number(String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self))
        default:
            throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= p.count, memcmp(p.baseAddress! + i, word.utf8Start, n) == 0 else { throw error("expected \(word)") }
        i += n
    }

    /// At the opening quote; RFC 8259 §7 escapes, surrogate pairs joined.
    mutating func string() throws -> String {
        i += 1
        let start = i
        while i < p.count, p[i] != UInt8(ascii: "\""), p[i] != UInt8(ascii: "\\") {
            guard p[i] >= 0x20 else { throw error("control character in a string") }
            i += 1
        }
        guard i < p.count else { throw error("unterminated string") }
        if p[i] == UInt8(ascii: "\"") { // the common case: nothing escaped
            defer { i += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self)
        }
        var out = Array(p[start..<i])
        while true {
            guard i < p.count else { throw error("unterminated string") }
            let c = p[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < p.count else { throw error("unterminated escape") }
                let e = p[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xd800..<0xdc00).contains(scalar) {
                        guard i + 1 < p.count, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") else { throw error("lone surrogate") }
                        i += 2
                        let low = try hex4()
                        guard (0xdc00..<0xe000).contains(low) else { throw error("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw error("bad escape")
                }
            default:
                guard c >= 0x20 else { throw error("control character in a string") }
                out.append(c)
            }
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= p.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = p[i]
            i += 1
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("bad hex digit")
            }
        }
        return v
    }
}

extension EtcdKeyValue {
    init(node: JSONNode) throws {
        key = try Wire.bytes(node["key"]?.string)
        value = try Wire.bytes(node["value"]?.string)
        modRevision = try Wire.int(node["mod_revision"]?.string)
        createRevision = try Wire.int(node["create_revision"]?.string)
        version = try Wire.int(node["version"]?.string)
        lease = try Wire.int(node["lease"]?.string)
    }
}

extension WatchLine {
    /// The same fields as the Decodable conformance, from one line of the stream.
    init(line: some Collection<UInt8>) throws {
        let node = try JSONNode.parse(line)
        if let e = node["error"] {
            error = GatewayError(error: e["error"]?.string, message: e["message"]?.string,
                                 code: e["code"].flatMap { if case let .number(n) = $0 { return Int(n) } else { return nil } })
        }
        guard let r = node["result"] else { return }
        var result = Result()
        if let h = r["header"] { result.header = ResponseHeader(revision: try Wire.int(h["revision"]?.string)) }
        result.created = r["created"]?.bool
        result.canceled = r["canceled"]?.bool
        result.compact_revision = r["compact_revision"]?.string
        result.cancel_reason = r["cancel_reason"]?.string
        if let events = r["events"]?.array {
            result.events = try events.map { e in
                Result.Event(type: e["type"]?.string, kv: try e["kv"].map(EtcdKeyValue.init(node:)))
            }
        }
        self.result = result
    }
}

extension RangeResponse {
    /// A page of a list: up to 5,000 key-values, 20 pages for a 100,000-binding cold start.
    init(reply: some Collection<UInt8>) throws {
        let node = try JSONNode.parse(reply)
        header = try node["header"].map { ResponseHeader(revision: try Wire.int($0["revision"]?.string)) }
        kvs = try node["kvs"]?.array?.map(EtcdKeyValue.init(node:))
        more = node["more"]?.bool
        count = node["count"]?.string
    }
}
