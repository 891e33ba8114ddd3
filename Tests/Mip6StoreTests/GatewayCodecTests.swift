import ControlPlane
import Foundation
import Testing
@testable import Mip6Store

/// The gateway's request writer, watch-line reader, base64 and the stored binding record,
/// checked against Foundation's JSON and base64 (no etcd needed).
@Suite("etcd gateway codec")
struct GatewayCodecTests {
    func foundation(_ bytes: [UInt8]) throws -> NSObject {
        try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as! NSObject
    }

    @Test("request bodies are the JSON Foundation reads, escapes included")
    func writer() throws {
        let body = GatewayJSON.object([
            ("key", .base64(Array("/mip6/b/2001:db8::1".utf8))), ("n", .int64(-42)), ("on", .bool(true)),
            ("text", .string("quote \" backslash \\ newline \n tab \t nul \u{0} é 😀")),
            ("list", .array([.object([]), .array([]), .string("")])),
        ])
        let parsed = try foundation(body.bytes) as! [String: Any]
        #expect(parsed["key"] as? String == Data("/mip6/b/2001:db8::1".utf8).base64EncodedString())
        #expect(parsed["n"] as? String == "-42") // int64 as a string: the gateway's convention
        #expect(parsed["on"] as? Bool == true)
        #expect(parsed["text"] as? String == "quote \" backslash \\ newline \n tab \t nul \u{0} é 😀")
        #expect((parsed["list"] as? [Any])?.count == 3)
    }

    @Test("base64 both ways matches Foundation for every length and tail")
    func base64() throws {
        var g = SystemRandomNumberGenerator()
        for n in 0..<80 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            var out: [UInt8] = []
            Wire.writeBase64(bytes, to: &out)
            let text = Data(bytes).base64EncodedString()
            #expect(String(decoding: out, as: UTF8.self) == text)
            #expect(Wire.base64(text.utf8) == bytes)
        }
        for bad in ["abc", "ab!d", "a===", "ab=d", "abcd=", "é..."] {
            #expect(Wire.base64(bad.utf8) == nil, "\(bad)")
        }
    }

    @Test("the reader agrees with Foundation on every kind of value")
    func reader() throws {
        let docs = [
            #"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-1.5e3,"g":""}"#,
            #"  [ "x\"y\\z\/\b\f\n\r\t", "\u00e9\u4e2d\ud83d\ude00", 0, 12345678901234 ]  "#,
            #"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"YQ==","value":""}}]}}"#,
            "\"plain\"", "true", "null", "[]", "{}",
        ]
        for d in docs {
            let mine = try JSONNode.parse(Array(d.utf8))
            #expect(try foundation(Array(d.utf8)) == mine.foundation, "\(d)")
        }
    }

    @Test("malformed or hostile text is an error, never a crash")
    func readerRefuses() {
        let bad = ["", "{", "[1,", #"{"a" 1}"#, #"{"a":1,}"#, "[1 2]", "\"open", "\"ctl \u{1} char\"", #""\x""#, #""\ud800""#,
                   #""\ud800\u0041""#, #""\u12g4""#, "tru", "nul", "{} x", "@", String(repeating: "[", count: 10_000)]
        for b in bad {
            #expect(throws: EtcdError.self, "\(b.prefix(20))") { try JSONNode.parse(Array(b.utf8)) }
        }
    }

    @Test("a watch line reads the same as through JSONDecoder")
    func watchLine() throws {
        let key = Data("/mip6/v1/h/b/2001:db8:1::5".utf8).base64EncodedString()
        let lines = [
            #"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"99","raft_term":"3"},"events":[{"kv":{"key":"\#(key)","create_revision":"90","mod_revision":"99","version":"4","value":"AQID","lease":"7"}},{"type":"DELETE","kv":{"key":"\#(key)","mod_revision":"99"}}]}}"#,
            #"{"result":{"header":{"revision":"5"},"created":true}}"#,
            #"{"result":{"header":{"revision":"5"},"canceled":true,"compact_revision":"40","cancel_reason":"compacted"}}"#,
            #"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable","code":14}}"#,
        ]
        for l in lines {
            let mine = try WatchLine(line: Array(l.utf8))
            let theirs = try JSONDecoder().decode(WatchLine.self, from: Data(l.utf8))
            #expect(mine.result?.header?.revision == theirs.result?.header?.revision)
            #expect(mine.result?.created == theirs.result?.created && mine.result?.canceled == theirs.result?.canceled)
            #expect(mine.result?.compact_revision == theirs.result?.compact_revision)
            #expect(mine.result?.cancel_reason == theirs.result?.cancel_reason)
            #expect(mine.result?.events?.map(\.type) == theirs.result?.events?.map(\.type))
            #expect(mine.result?.events?.map(\.kv) == theirs.result?.events?.map(\.kv))
            #expect(mine.error?.message == theirs.error?.message && mine.error?.code == theirs.error?.code)
        }
        let first = try WatchLine(line: Array(lines[0].utf8)).result?.events?.first?.kv
        #expect(first?.value == [1, 2, 3] && first?.modRevision == 99 && first?.lease == 7 && first?.version == 4)
        #expect(throws: EtcdError.self) { try WatchLine(line: Array(#"{"result":{"events":[{"kv":{"key":"!!"}}]}}"#.utf8)) }
    }

    @Test("a range reply reads the same as through JSONDecoder")
    func rangeReply() throws {
        let reply = #"{"header":{"revision":"12"},"kvs":[{"key":"YQ==","create_revision":"3","mod_revision":"11","version":"2","value":"AQ=="},{"key":"Yg==","mod_revision":"12"}],"more":true,"count":"7"}"#
        let mine = try RangeResponse(reply: Array(reply.utf8))
        let theirs = try JSONDecoder().decode(RangeResponse.self, from: Data(reply.utf8))
        #expect(mine.header?.revision == 12 && theirs.header?.revision == 12)
        #expect(mine.kvs == theirs.kvs && mine.kvs?.count == 2 && mine.more == true && mine.count == "7")
        let empty = try RangeResponse(reply: Array(#"{"header":{"revision":"1"}}"#.utf8))
        #expect(empty.kvs == nil && empty.more == nil)
    }

    // MARK: the stored record

    static let clocks = BindingRecord.Clocks(monotonicNs: 1_000_000_000_000, wallNs: 1_800_000_000_000_000_000)

    func record(auth: UInt64?) -> BindingRecord {
        let b = Binding(homeAddress: IPv6Address("2001:db8:1::100")!, careOfAddress: IPv6Address("2001:db8:f1::100")!, sequence: 0x1234,
                        flags: [.ack, .home], lifetime: 600, registeredAt: Self.clocks.monotonicNs)
        return BindingRecord(b, clocks: Self.clocks, authTimestamp: auth, writer: "ha1")
    }

    @Test("the binary record: its layout byte by byte, round trips with and without the RFC 4285 timestamp")
    func recordLayout() throws {
        let r = record(auth: nil)
        // The same bytes as Python's struct.pack(">BB16sHHIqq", 1, 0, coa, 0x1234, 0xC000, 600, reg, exp) + b"ha1"
        // (Tests/e2e/test_forwarder.py writes records this way).
        let hex = r.encoded.map { String(format: "%02x", $0) }.joined()
        #expect(hex == "0100" + "20010db800f100000000000000000100" + "1234" + "c000" + "00000258"
            + String(format: "%016llx", 1_800_000_000_000_000_000 as Int64) + String(format: "%016llx", 1_800_000_600_000_000_000 as Int64)
            + "686131")
        #expect(try BindingRecord(decoding: r.encoded) == r)
        let signed = record(auth: 0xdead_beef_0000_0001)
        #expect(signed.encoded.count == r.encoded.count + 8 && signed.encoded[1] == 1)
        #expect(try BindingRecord(decoding: signed.encoded) == signed)
        let b = r.binding(homeAddress: IPv6Address("2001:db8:1::100")!, clocks: Self.clocks)
        #expect(b.sequence == 0x1234 && b.lifetime == 600 && b.expiresAt - b.registeredAt == 600_000_000_000)
    }

    @Test("a record as JSON (written by hand) still reads")
    func recordJSON() throws {
        let r = record(auth: 5)
        let json = #"{"coa":"2001:db8:f1::100","seq":4660,"flags":49152,"lifetime":600,"registered_unix_ns":1800000000000000000,"expires_unix_ns":1800000600000000000,"auth_ts":5,"writer":"ha1"}"#
        #expect(try BindingRecord(decoding: Array(json.utf8)) == r)
    }

    @Test("a value that is not a record is refused with what is wrong")
    func recordRefuses() {
        let good = record(auth: nil).encoded
        var newer = good; newer[0] = 2
        var options = good; options[1] = 2
        var authShort = Array(good.prefix(BindingRecord.fixedLength)); authShort[1] = 1
        for (value, says) in [(Array(good.prefix(41)), "at least"), (newer, "version 2"), (options, "options 2"),
                              (authShort, "options 1"), (Array("{\"coa\":1}".utf8), "")] {
            #expect {
                try BindingRecord(decoding: value)
            } throws: { error in
                says.isEmpty || "\(error)".contains(says)
            }
        }
    }
}

extension JSONNode {
    /// As JSONSerialization would give it, to compare.
    var foundation: NSObject {
        switch self {
        case let .string(s): return s as NSString
        case let .number(n): return (try! JSONSerialization.jsonObject(with: Data(n.utf8), options: [.fragmentsAllowed])) as! NSObject
        case let .bool(b): return NSNumber(value: b)
        case .null: return NSNull()
        case let .array(a): return a.map(\.foundation) as NSArray
        case let .object(o): return Dictionary(uniqueKeysWithValues: o.map { ($0.0, $0.1.foundation) }) as NSDictionary
        }
    }
}
