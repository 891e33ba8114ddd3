// The JSON of etcd's v3 gRPC gateway (etcdserverpb over HTTP/1.1): bytes are base64,
// int64 are strings, proto3 defaults are left out (a PUT event has no "type").
import Foundation

/// A key-value pair as etcd returns it.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
    public var modRevision: Int64
    public var createRevision: Int64
    public var version: Int64
    public var lease: Int64

    public var keyString: String { String(decoding: key, as: UTF8.self) }
}

/// What the gateway says went wrong, or a reply it could not have meant.
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

extension EtcdKeyValue: Decodable {
    enum CodingKeys: String, CodingKey {
        case key, value, mod_revision, create_revision, version, lease
    }

    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        key = try Wire.bytes(c.decodeIfPresent(String.self, forKey: .key))
        value = try Wire.bytes(c.decodeIfPresent(String.self, forKey: .value))
        modRevision = try Wire.int(c.decodeIfPresent(String.self, forKey: .mod_revision))
        createRevision = try Wire.int(c.decodeIfPresent(String.self, forKey: .create_revision))
        version = try Wire.int(c.decodeIfPresent(String.self, forKey: .version))
        lease = try Wire.int(c.decodeIfPresent(String.self, forKey: .lease))
    }
}

/// Conversions for the gateway's encodings.
enum Wire {
    static func bytes(_ s: String?) throws -> [UInt8] {
        guard let s else { return [] }
        guard let d = base64(s.utf8) else { throw EtcdError("not base64: \(s.prefix(40))") }
        return d
    }

    /// RFC 4648 §4: the alphabet, and each byte's value in it (0xff: not in it).
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let sextets: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// RFC 4648 §4, with padding (what the gateway's protobuf JSON decoding takes for bytes).
    static func writeBase64(_ b: [UInt8], to out: inout [UInt8]) {
        var i = 0
        while i + 3 <= b.count {
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        switch b.count - i {
        case 1:
            let v = UInt32(b[i]) << 16
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")])
        case 2:
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        default: break
        }
    }

    /// RFC 4648 §4 with padding, as protobuf's JSON mapping writes bytes; nil if it is not.
    static func base64(_ text: some Collection<UInt8>) -> [UInt8]? {
        let c = Array(text)
        guard c.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(c.count / 4 * 3)
        var i = 0
        while i < c.count {
            let pad = i + 4 == c.count ? (c[i + 3] == UInt8(ascii: "=") ? (c[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var v: UInt32 = 0
            for k in 0..<4 {
                if k >= 4 - pad { v <<= 6; continue }
                let s = sextets[Int(c[i + k])]
                guard s != 0xff else { return nil }
                v = v << 6 | UInt32(s)
            }
            out.append(UInt8(v >> 16))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xff)) }
            if pad < 1 { out.append(UInt8(v & 0xff)) }
            i += 4
        }
        return out
    }

    static func int(_ s: String?) throws -> Int64 {
        guard let s else { return 0 }
        guard let v = Int64(s) else { throw EtcdError("not an int64: \(s.prefix(40))") }
        return v
    }

    /// The end of the range of every key starting with `prefix` (etcd's prefix convention).
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0] // the whole keyspace
    }
}

struct ResponseHeader: Decodable {
    var revision: Int64
    init(revision: Int64) { self.revision = revision }
    enum CodingKeys: String, CodingKey { case revision }
    init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        revision = try Wire.int(c.decodeIfPresent(String.self, forKey: .revision))
    }
}

struct RangeResponse: Decodable {
    var header: ResponseHeader?
    var kvs: [EtcdKeyValue]?
    var more: Bool?
    var count: String?
}

struct PutResponse: Decodable {
    var header: ResponseHeader?
}

struct DeleteRangeResponse: Decodable {
    var header: ResponseHeader?
    var deleted: String?
}

struct TxnResponse: Decodable {
    struct Op: Decodable {
        var response_range: RangeResponse?
    }
    var header: ResponseHeader?
    var succeeded: Bool?
    var responses: [Op]?
}

struct LeaseGrantResponse: Decodable {
    var ID: String?
    var TTL: String?
    var error: String?
}

/// The gateway's error body ({"error": "...", "code": N, "message": "..."}).
struct GatewayError: Decodable {
    var error: String?
    var message: String?
    var code: Int?
}

/// One line of a watch stream.
struct WatchLine: Decodable {
    struct Result: Decodable {
        struct Event: Decodable {
            var type: String?
            var kv: EtcdKeyValue?
        }
        var header: ResponseHeader? = nil
        var created: Bool?
        var canceled: Bool?
        var compact_revision: String?
        var cancel_reason: String?
        var events: [Event]?
    }
    var result: Result?
    var error: GatewayError?
    init(result: Result? = nil, error: GatewayError? = nil) {
        self.result = result
        self.error = error
    }
}
