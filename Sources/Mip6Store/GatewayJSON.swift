// Request bodies for etcd's JSON gateway, written straight to bytes. JSONSerialization over
// [String: Any] (bridging every value through Any) cost as much CPU as the rest of a BU at
// 10,000 BU/s; these bodies have a fixed, small shape.

/// A JSON value as the gateway takes it: bytes as base64 strings, int64 as decimal strings.
indirect enum GatewayJSON {
    case string(String)
    case base64([UInt8])
    case int64(Int64)
    case bool(Bool)
    case array([GatewayJSON])
    case object([(String, GatewayJSON)])

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    func write(to out: inout [UInt8]) {
        switch self {
        case let .string(s): Self.writeString(s, to: &out)
        case let .base64(b):
            out.append(UInt8(ascii: "\""))
            Wire.writeBase64(b, to: &out)
            out.append(UInt8(ascii: "\""))
        case let .int64(v):
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: String(v).utf8)
            out.append(UInt8(ascii: "\""))
        case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case let .array(items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .object(members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// RFC 8259 §7: quote, backslash and control characters escaped; the rest as UTF-8.
    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
