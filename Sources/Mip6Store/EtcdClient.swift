// An etcd v3 client: etcd's gRPC API (EtcdGRPC.swift), or its JSON gateway over HTTP/1.1
// (async-http-client), which costs etcd about twice the CPU per request (README "Shared
// binding store").
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A condition of a transaction on one key.
public enum EtcdCompare: Sendable {
    /// The key was last modified at this revision.
    case modRevision([UInt8], Int64)
    /// The key does not exist (version 0), as Cilium's CreateOnly.
    case absent([UInt8])
}

/// An operation of a transaction.
public enum EtcdOperation: Sendable {
    case put(key: [UInt8], value: [UInt8], lease: Int64)
    case delete(key: [UInt8])
    case get(key: [UInt8])
}

public struct EtcdTxnResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    /// The key-values of each `get` operation of the branch that ran, in order.
    public var ranges: [[EtcdKeyValue]]
}

public final class EtcdClient: Sendable {
    /// How requests reach etcd.
    public enum API: String, Sendable, CaseIterable {
        /// etcd's own gRPC API over HTTP/2 (plain-text endpoints only).
        case grpc
        /// The JSON gateway (/v3/...) over HTTP/1.1.
        case gateway
    }

    /// Base URLs ("http://127.0.0.1:2379"), tried in order; a member that does not answer
    /// sends the request to the next one.
    public let endpoints: [String]
    public var api: API { grpc.isEmpty ? .gateway : .grpc }
    let http: HTTPClient
    /// One HTTP/2 connection per endpoint (empty with the gateway).
    let grpc: [GRPCConnection]
    let timeout: TimeAmount

    /// `timeout`: a request not answered by then goes to the next member. Short on purpose: a
    /// proposal a follower made while its leader died is dropped by raft and would only be
    /// answered by etcd's own request timeout (5 s and more); a new one after the election
    /// (about two election timeouts) goes through.
    ///
    /// `firstChoice`: the member to ask first until one fails (an index, taken modulo the
    /// count). Replicas that spread their first choice spread the gateway's JSON work, which
    /// is most of a member's CPU under load (perf/README.md "Binding Updates through the
    /// shared store"): a follower serves watches itself and passes writes on over gRPC.
    ///
    /// `api`: gRPC needs plain-text endpoints (https ones use the gateway).
    public init(endpoints: [String], api: API = .grpc, timeout: TimeAmount = .milliseconds(1000), firstChoice: Int = 0) {
        self.endpoints = endpoints
        self.timeout = timeout
        let connections = api == .grpc ? endpoints.compactMap(GRPCConnection.init(base:)) : []
        grpc = connections.count == endpoints.count ? connections : []
        http = Self.sharedHTTP
        preferred = Locked(endpoints.isEmpty ? 0 : abs(firstChoice % endpoints.count))
    }

    /// A stable first choice for a name (FNV-1a): every start of a replica asks the same member.
    public static func firstChoice(for name: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(h % 1_000_003)
    }

    /// The member that answered last is asked first: a dead member costs one failed attempt,
    /// not one per request.
    private let preferred: Locked<Int>

    /// The endpoints in the order to try them now.
    func ordered() -> [(Int, String)] {
        let first = preferred.current % max(endpoints.count, 1)
        return (0..<endpoints.count).map { ((first + $0) % endpoints.count, endpoints[(first + $0) % endpoints.count]) }
    }

    func answered(_ index: Int) { preferred.write { $0 = index } }

    /// The member at `index` broke a stream: if it is the first choice, the next one is.
    func failed(_ index: Int) {
        preferred.write { if $0 % max(endpoints.count, 1) == index { $0 = (index + 1) % max(endpoints.count, 1) } }
    }

    /// One HTTP client for the process (it must never be deinitialised unshut): connections
    /// pooled per member; a member that does not accept within 300 ms is skipped (the pool
    /// retries a refused connection until this runs out: a dead member must cost little).
    static let sharedHTTP: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 16
        config.timeout.connect = .milliseconds(300)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// Parses `etcd+http://host:port[,host:port...]` (the --store value).
    public static func endpoints(fromStore url: String) throws -> [String] {
        let scheme: String
        if url.hasPrefix("etcd+http://") { scheme = "http" } else if url.hasPrefix("etcd+https://") { scheme = "https" } else {
            throw EtcdError("--store \(url): expected etcd+http://HOST:PORT[,HOST:PORT...]")
        }
        let rest = url.drop(while: { $0 != "/" }).dropFirst(2)
        let hosts = rest.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/ ")) }
        guard !hosts.isEmpty, hosts.allSatisfy({ !$0.isEmpty && $0.contains(":") }) else {
            throw EtcdError("--store \(url): every member needs HOST:PORT")
        }
        return hosts.map { "\(scheme)://\($0)" }
    }

    // MARK: requests

    /// An answer another member may do better with: no leader, not enough members, a member
    /// stopping (HTTP 503, gRPC UNAVAILABLE), or no answer at all.
    struct TryNextMember: Error { let error: Error }

    /// `attempt` on each member in turn (the one that answered last first) until one answers:
    /// a TryNextMember or a connection error sends the request on, an EtcdError is the answer.
    func onFirstMember<T>(_ attempt: (_ index: Int, _ base: String) async throws -> T) async throws -> T {
        var last: Error = EtcdError("no endpoints")
        for (index, base) in ordered() {
            do {
                let result = try await attempt(index, base)
                answered(index)
                return result
            } catch let e as TryNextMember {
                last = e.error
            } catch let e as EtcdError {
                throw e
            } catch {
                last = error // connection refused, timeout
            }
        }
        throw last
    }

    /// POSTs `body` (JSON) to `path` on the first member that answers.
    func post(_ path: String, _ body: GatewayJSON, deadline: TimeAmount? = nil) async throws -> Data {
        let json = body.bytes
        return try await onFirstMember { _, base in
            var request = HTTPClientRequest(url: base + path)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
            let response = try await http.execute(request, timeout: deadline ?? timeout)
            let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
            guard response.status == .ok else {
                let g = try? JSONDecoder().decode(GatewayError.self, from: data)
                let err = EtcdError("\(path): \(response.status.code) \(g?.message ?? g?.error ?? String(decoding: data.prefix(200), as: UTF8.self))")
                if response.status == .serviceUnavailable { throw TryNextMember(error: err) }
                throw err
            }
            return data
        }
    }

    /// A unary gRPC call on the first member that answers: UNAVAILABLE, a timeout or a broken
    /// connection sends it to the next one.
    func call(_ method: String, _ request: [UInt8], deadline: TimeAmount? = nil) async throws -> ArraySlice<UInt8> {
        try await onFirstMember { index, _ in
            do {
                return try await grpc[index].unary(method, request, timeout: deadline ?? timeout)[...]
            } catch let e as GRPCStatusError where !e.retryable {
                throw EtcdError("\(method): \(e.message) (gRPC status \(e.code))")
            } catch {
                throw TryNextMember(error: error)
            }
        }
    }

    func decode<T: Decodable>(_ t: T.Type, _ data: Data) throws -> T {
        try Self.reading(data) { try JSONDecoder().decode(t, from: $0) }
    }

    /// `reply` as `read` makes it; what it cannot read is an error that shows how it starts.
    static func reading<T, C: Collection<UInt8>>(_ reply: C, _ what: String = "reply", _ read: (C) throws -> T) throws -> T {
        do { return try read(reply) } catch {
            throw EtcdError("unexpected \(what) (\(error)): \(String(decoding: reply.prefix(200), as: UTF8.self))")
        }
    }

    // MARK: kv

    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        if !grpc.isEmpty {
            return try EtcdProto.putRevision(await call("/etcdserverpb.KV/Put", EtcdProto.put(key: Array(key.utf8), value: value, lease: lease)))
        }
        var body: [(String, GatewayJSON)] = [("key", .base64(Array(key.utf8))), ("value", .base64(value))]
        if lease != 0 { body.append(("lease", .int64(lease))) }
        return try decode(PutResponse.self, await post("/v3/kv/put", .object(body))).header?.revision ?? 0
    }

    public func get(_ key: String) async throws -> EtcdKeyValue? {
        if !grpc.isEmpty {
            return try EtcdProto.range(await call("/etcdserverpb.KV/Range", EtcdProto.range(key: Array(key.utf8), end: [], limit: 0, revision: 0))).kvs.first
        }
        return try decode(RangeResponse.self, await post("/v3/kv/range", .object([("key", .base64(Array(key.utf8)))]))).kvs?.first
    }

    /// One page of the keys under `prefix` from `after` (exclusive), at `revision` (0: now).
    public func range(prefix: String, after: [UInt8]? = nil, limit: Int, revision: Int64 = 0)
        async throws -> (kvs: [EtcdKeyValue], more: Bool, revision: Int64) {
        let p = Array(prefix.utf8)
        if !grpc.isEmpty {
            let r = try EtcdProto.range(await call("/etcdserverpb.KV/Range", EtcdProto.range(key: after.map { $0 + [0] } ?? p, end: Wire.prefixEnd(p),
                                                                                            limit: Int64(limit), revision: revision),
                                                   deadline: .seconds(30)))
            return (r.kvs, r.more, r.revision)
        }
        var body: [(String, GatewayJSON)] = [("key", .base64(after.map { $0 + [0] } ?? p)), ("range_end", .base64(Wire.prefixEnd(p))),
                                             ("limit", .int64(Int64(limit)))]
        if revision != 0 { body.append(("revision", .int64(revision))) }
        let reply = try await post("/v3/kv/range", .object(body), deadline: .seconds(30))
        let r = try Self.reading(reply) { try RangeResponse(reply: $0) }
        return (r.kvs ?? [], r.more ?? false, r.header?.revision ?? 0)
    }

    /// Every key under `prefix` at one revision, `pageSize` keys a request (a 100k-binding
    /// prefix is ~10 MB: one reply would be too large for the gateway's defaults).
    public func list(prefix: String, pageSize: Int = 5000) async throws -> (kvs: [EtcdKeyValue], revision: Int64) {
        var all: [EtcdKeyValue] = []
        var page = try await range(prefix: prefix, limit: pageSize)
        let revision = page.revision
        all += page.kvs
        while page.more, let last = page.kvs.last {
            page = try await range(prefix: prefix, after: last.key, limit: pageSize, revision: revision)
            all += page.kvs
        }
        return (all, revision)
    }

    public func delete(_ key: String) async throws -> Int64 {
        if !grpc.isEmpty { return try await deleteRange(Array(key.utf8), end: []) }
        return Int64(try decode(DeleteRangeResponse.self, await post("/v3/kv/deleterange", .object([("key", .base64(Array(key.utf8)))]))).deleted ?? "0") ?? 0
    }

    public func deletePrefix(_ prefix: String) async throws -> Int64 {
        let p = Array(prefix.utf8)
        if !grpc.isEmpty { return try await deleteRange(p, end: Wire.prefixEnd(p)) }
        let body = GatewayJSON.object([("key", .base64(p)), ("range_end", .base64(Wire.prefixEnd(p)))])
        return Int64(try decode(DeleteRangeResponse.self, await post("/v3/kv/deleterange", body)).deleted ?? "0") ?? 0
    }

    private func deleteRange(_ key: [UInt8], end: [UInt8]) async throws -> Int64 {
        try EtcdProto.deleted(await call("/etcdserverpb.KV/DeleteRange", EtcdProto.deleteRange(key: key, end: end)))
    }

    /// One transaction: `success` if every compare holds, else `failure` (etcd's default
    /// --max-txn-ops: at most 128 compares, 128 success and 128 failure operations).
    public func txn(_ compares: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation]) async throws -> EtcdTxnResult {
        if !grpc.isEmpty {
            return try EtcdProto.txnResult(await call("/etcdserverpb.KV/Txn", EtcdProto.txn(compares, success: success, failure: failure)))
        }
        func op(_ o: EtcdOperation) -> GatewayJSON {
            switch o {
            case let .put(key, value, lease):
                var p: [(String, GatewayJSON)] = [("key", .base64(key)), ("value", .base64(value))]
                if lease != 0 { p.append(("lease", .int64(lease))) }
                return .object([("request_put", .object(p))])
            case let .delete(key): return .object([("request_delete_range", .object([("key", .base64(key))]))])
            case let .get(key): return .object([("request_range", .object([("key", .base64(key))]))])
            }
        }
        let cmp: [GatewayJSON] = compares.map {
            switch $0 {
            // proto3 defaults left out (result EQUAL, target VERSION, version 0): the gateway's
            // reflection-based decoding costs per field present.
            case let .modRevision(key, rev):
                return .object([("key", .base64(key)), ("target", .string("MOD")), ("mod_revision", .int64(rev))])
            case let .absent(key):
                return .object([("key", .base64(key))])
            }
        }
        let body = GatewayJSON.object([("compare", .array(cmp)), ("success", .array(success.map(op))), ("failure", .array(failure.map(op)))])
        let r = try decode(TxnResponse.self, await post("/v3/kv/txn", body))
        let succeeded = r.succeeded ?? false
        let ranges = (r.responses ?? []).compactMap { $0.response_range.map { $0.kvs ?? [] } }
        return EtcdTxnResult(succeeded: succeeded, revision: r.header?.revision ?? 0, ranges: ranges)
    }

    /// LeaseGrant with a chosen ID; an existing lease of that ID is reused (every replica
    /// computes the same ID for the same expiry bucket).
    public func grantLease(id: Int64, ttl: Int64) async throws {
        if !grpc.isEmpty {
            // An existing ID is FAILED_PRECONDITION ("lease already exists").
            do { _ = try await call("/etcdserverpb.Lease/LeaseGrant", EtcdProto.leaseGrant(id: id, ttl: ttl)) }
            catch let e as EtcdError where e.description.contains("already exists") {}
            return
        }
        do {
            let r = try decode(LeaseGrantResponse.self, await post("/v3/lease/grant", .object([("ID", .int64(id)), ("TTL", .int64(ttl))])))
            if let e = r.error, !e.isEmpty, !e.contains("already exists") { throw EtcdError("lease grant: \(e)") }
        } catch let e as EtcdError where e.description.contains("already exists") {}
    }
}

/// A value behind an NSLock, shared by the requests of a client and the store's readers
/// (Synchronization.Mutex needs macOS 15; the package says 13).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    var current: Value {
        lock.lock(); defer { lock.unlock() }
        return value
    }

    func write(_ body: (inout Value) -> Void) {
        lock.lock(); defer { lock.unlock() }
        body(&value)
    }
}
