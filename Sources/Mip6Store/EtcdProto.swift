// The few etcdserverpb messages the store sends and reads over gRPC, in protobuf's wire format
// (etcd 3.4 api/etcdserverpb/rpc.proto, mvccpb/kv.proto). Hand-written: a dozen fields, where
// swift-protobuf's generated code for rpc.proto is 12k lines and a plugin build per CI run.

/// Protobuf encoding (varints, length-delimited fields) into one byte array.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A varint field; proto3 leaves zero out.
    mutating func int(_ field: UInt64, _ v: Int64) {
        guard v != 0 else { return }
        varint(field << 3)
        varint(UInt64(bitPattern: v))
    }

    mutating func bool(_ field: UInt64, _ v: Bool) { int(field, v ? 1 : 0) }

    /// A bytes field; proto3 leaves an empty one out.
    mutating func bytes(_ field: UInt64, _ b: [UInt8]) {
        guard !b.isEmpty else { return }
        varint(field << 3 | 2)
        varint(UInt64(b.count))
        bytes += b
    }

    /// An embedded message (written even when empty: its presence can mean something, as a oneof case).
    mutating func message(_ field: UInt64, _ body: (inout ProtoWriter) -> Void) {
        var m = ProtoWriter()
        body(&m)
        varint(field << 3 | 2)
        varint(UInt64(m.bytes.count))
        bytes += m.bytes
    }
}

/// Protobuf decoding: the fields of one message in order; unknown ones are skipped.
struct ProtoReader {
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed
    }

    private let b: ArraySlice<UInt8>
    private var i: Int

    init(_ b: ArraySlice<UInt8>) {
        self.b = b
        i = b.startIndex
    }

    private mutating func readVarint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < b.endIndex, shift < 64 else { throw EtcdError("protobuf: truncated varint") }
            let c = b[i]
            i += 1
            v |= UInt64(c & 0x7f) << shift
            if c < 0x80 { return v }
            shift += 7
        }
    }

    /// The next field, nil at the end.
    mutating func next() throws -> (field: UInt64, value: Value)? {
        guard i < b.endIndex else { return nil }
        let key = try readVarint()
        switch key & 7 {
        case 0: return (key >> 3, .varint(try readVarint()))
        case 2:
            let n = try readVarint()
            guard n <= UInt64(b.endIndex - i) else { throw EtcdError("protobuf: field \(key >> 3) longer than its message") }
            defer { i += Int(n) }
            return (key >> 3, .bytes(b[i..<(i + Int(n))]))
        case 1:
            guard b.endIndex - i >= 8 else { throw EtcdError("protobuf: truncated fixed64") }
            i += 8
            return (key >> 3, .fixed)
        case 5:
            guard b.endIndex - i >= 4 else { throw EtcdError("protobuf: truncated fixed32") }
            i += 4
            return (key >> 3, .fixed)
        default: throw EtcdError("protobuf: wire type \(key & 7) of field \(key >> 3)")
        }
    }

    /// Every field of `b`, to `body`.
    static func fields(_ b: ArraySlice<UInt8>, _ body: (UInt64, Value) throws -> Void) throws {
        var r = ProtoReader(b)
        while let (f, v) = try r.next() { try body(f, v) }
    }
}

extension ProtoReader.Value {
    var int: Int64 {
        if case let .varint(v) = self { return Int64(bitPattern: v) }
        return 0
    }

    var slice: ArraySlice<UInt8> {
        if case let .bytes(s) = self { return s }
        return []
    }
}

/// etcdserverpb requests and responses.
enum EtcdProto {
    // MARK: requests

    static func op(_ o: EtcdOperation, into w: inout ProtoWriter) {
        // RequestOp: oneof request_range = 1, request_put = 2, request_delete_range = 3.
        switch o {
        case let .get(key):
            w.message(1) { $0.bytes(1, key) }
        case let .put(key, value, lease):
            w.message(2) { p in
                p.bytes(1, key)
                p.bytes(2, value)
                p.int(3, lease)
            }
        case let .delete(key):
            w.message(3) { $0.bytes(1, key) }
        }
    }

    /// TxnRequest: compare = 1, success = 2, failure = 3.
    static func txn(_ compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation]) -> [UInt8] {
        var w = ProtoWriter()
        for c in compares {
            // Compare: result = 1 (EQUAL = 0), target = 2 (VERSION = 0, MOD = 2), key = 3,
            // version = 4, mod_revision = 6 (oneof target_union).
            w.message(1) { m in
                switch c {
                case let .modRevision(key, rev):
                    m.int(2, 2)
                    m.bytes(3, key)
                    // A oneof member is written even when zero (mod_revision 0: the key is absent).
                    m.varint(6 << 3)
                    m.varint(UInt64(bitPattern: rev))
                case let .absent(key):
                    m.bytes(3, key)
                    m.varint(4 << 3)
                    m.varint(0)
                }
            }
        }
        for o in success { w.message(2) { op(o, into: &$0) } }
        for o in failure { w.message(3) { op(o, into: &$0) } }
        return w.bytes
    }

    /// PutRequest: key = 1, value = 2, lease = 3.
    static func put(key: [UInt8], value: [UInt8], lease: Int64) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes(1, key)
        w.bytes(2, value)
        w.int(3, lease)
        return w.bytes
    }

    /// RangeRequest: key = 1, range_end = 2, limit = 3, revision = 4.
    static func range(key: [UInt8], end: [UInt8], limit: Int64, revision: Int64) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes(1, key)
        w.bytes(2, end)
        w.int(3, limit)
        w.int(4, revision)
        return w.bytes
    }

    /// DeleteRangeRequest: key = 1, range_end = 2.
    static func deleteRange(key: [UInt8], end: [UInt8]) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes(1, key)
        w.bytes(2, end)
        return w.bytes
    }

    /// LeaseGrantRequest: TTL = 1, ID = 2.
    static func leaseGrant(id: Int64, ttl: Int64) -> [UInt8] {
        var w = ProtoWriter()
        w.int(1, ttl)
        w.int(2, id)
        return w.bytes
    }

    /// WatchRequest { create_request = 1: WatchCreateRequest { key = 1, range_end = 2, start_revision = 3 } }.
    static func watchCreate(key: [UInt8], end: [UInt8], from revision: Int64) -> [UInt8] {
        var w = ProtoWriter()
        w.message(1) { c in
            c.bytes(1, key)
            c.bytes(2, end)
            c.int(3, revision)
        }
        return w.bytes
    }

    // MARK: responses

    /// ResponseHeader: revision = 3.
    static func headerRevision(_ b: ArraySlice<UInt8>) throws -> Int64 {
        var rev: Int64 = 0
        try ProtoReader.fields(b) { f, v in if f == 3 { rev = v.int } }
        return rev
    }

    /// mvccpb.KeyValue: key = 1, create_revision = 2, mod_revision = 3, version = 4, value = 5, lease = 6.
    static func keyValue(_ b: ArraySlice<UInt8>) throws -> EtcdKeyValue {
        var kv = EtcdKeyValue(key: [], value: [], modRevision: 0, createRevision: 0, version: 0, lease: 0)
        try ProtoReader.fields(b) { f, v in
            switch f {
            case 1: kv.key = Array(v.slice)
            case 2: kv.createRevision = v.int
            case 3: kv.modRevision = v.int
            case 4: kv.version = v.int
            case 5: kv.value = Array(v.slice)
            case 6: kv.lease = v.int
            default: break
            }
        }
        return kv
    }

    struct Range {
        var revision: Int64 = 0
        var kvs: [EtcdKeyValue] = []
        var more = false
    }

    /// RangeResponse: header = 1, kvs = 2, more = 3.
    static func range(_ b: ArraySlice<UInt8>) throws -> Range {
        var r = Range()
        try ProtoReader.fields(b) { f, v in
            switch f {
            case 1: r.revision = try headerRevision(v.slice)
            case 2: r.kvs.append(try keyValue(v.slice))
            case 3: r.more = v.int != 0
            default: break
            }
        }
        return r
    }

    /// TxnResponse: header = 1, succeeded = 2, responses = 3 (ResponseOp: response_range = 1).
    static func txnResult(_ b: ArraySlice<UInt8>) throws -> EtcdTxnResult {
        var r = EtcdTxnResult(succeeded: false, revision: 0, ranges: [])
        try ProtoReader.fields(b) { f, v in
            switch f {
            case 1: r.revision = try headerRevision(v.slice)
            case 2: r.succeeded = v.int != 0
            case 3:
                try ProtoReader.fields(v.slice) { f, op in
                    if f == 1 { r.ranges.append(try range(op.slice).kvs) }
                }
            default: break
            }
        }
        return r
    }

    /// PutResponse: header = 1.
    static func putRevision(_ b: ArraySlice<UInt8>) throws -> Int64 {
        var rev: Int64 = 0
        try ProtoReader.fields(b) { f, v in if f == 1 { rev = try headerRevision(v.slice) } }
        return rev
    }

    /// DeleteRangeResponse: deleted = 2.
    static func deleted(_ b: ArraySlice<UInt8>) throws -> Int64 {
        var n: Int64 = 0
        try ProtoReader.fields(b) { f, v in if f == 2 { n = v.int } }
        return n
    }

    struct Watch {
        var revision: Int64 = 0
        var created = false
        var canceled = false
        var compactRevision: Int64 = 0
        var cancelReason = ""
        var events: [EtcdEvent] = []
    }

    /// WatchResponse: header = 1, created = 3, canceled = 4, compact_revision = 5,
    /// cancel_reason = 6, events = 11 (mvccpb.Event: type = 1 (PUT 0, DELETE 1), kv = 2).
    static func watch(_ b: ArraySlice<UInt8>) throws -> Watch {
        var w = Watch()
        try ProtoReader.fields(b) { f, v in
            switch f {
            case 1: w.revision = try headerRevision(v.slice)
            case 3: w.created = v.int != 0
            case 4: w.canceled = v.int != 0
            case 5: w.compactRevision = v.int
            case 6: w.cancelReason = String(decoding: v.slice, as: UTF8.self)
            case 11:
                var kind = EtcdEvent.Kind.put
                var kv: EtcdKeyValue?
                try ProtoReader.fields(v.slice) { f, e in
                    if f == 1 { kind = e.int == 1 ? .delete : .put }
                    if f == 2 { kv = try keyValue(e.slice) }
                }
                if let kv { w.events.append(EtcdEvent(kind: kind, kv: kv)) }
            default: break
            }
        }
        return w
    }
}
