// etcd watches: a gRPC stream (Watch/Watch), or over the gateway one streaming POST per watch,
// one JSON object per line.
import AsyncHTTPClient
import Foundation
import NIOCore

/// One change the watch reported.
public struct EtcdEvent: Sendable {
    public enum Kind: Sendable { case put, delete }
    public var kind: Kind
    public var kv: EtcdKeyValue
}

/// The watch cannot go on from where it was: re-list (Cilium's pattern).
public struct EtcdWatchCompacted: Error, CustomStringConvertible {
    public let compactRevision: Int64
    public var description: String { "watch revision compacted (now \(compactRevision)): re-list" }
}

extension EtcdClient {
    /// Changes under `prefix` from `revision` on, a batch of events per etcd response (all of
    /// one revision or more). The stream ends when the member closes it (re-watch from the
    /// last revision + 1) and throws EtcdWatchCompacted when that revision is gone.
    public func watch(prefix: String, from revision: Int64) -> AsyncThrowingStream<(revision: Int64, events: [EtcdEvent]), Error> {
        let p = Array(prefix.utf8)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let deliver = { (r: EtcdProto.Watch) throws in
                        if r.canceled {
                            if r.compactRevision > 0 { throw EtcdWatchCompacted(compactRevision: r.compactRevision) }
                            throw EtcdError("watch canceled: \(r.cancelReason.isEmpty ? "no reason given" : r.cancelReason)")
                        }
                        if r.created && r.events.isEmpty {
                            continuation.yield((r.revision, []))
                        } else if !r.events.isEmpty {
                            continuation.yield((r.events.map(\.kv.modRevision).max() ?? r.revision, r.events))
                        }
                    }
                    if grpc.isEmpty {
                        try await gatewayWatch(p, from: revision, deliver)
                    } else {
                        try await grpcWatch(p, from: revision, deliver)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The first member that takes the watch (its first reply: created), over gRPC.
    private func grpcWatch(_ prefix: [UInt8], from revision: Int64, _ deliver: (EtcdProto.Watch) throws -> Void) async throws {
        let request = EtcdProto.watchCreate(key: prefix, end: Wire.prefixEnd(prefix), from: revision)
        var last: Error = EtcdError("no endpoints")
        for (index, _) in ordered() {
            var taken = false
            do {
                for try await message in grpc[index].stream("/etcdserverpb.Watch/Watch", request) {
                    let reply = try EtcdProto.watch(message[...])
                    if !taken {
                        taken = true
                        answered(index)
                    }
                    try deliver(reply)
                }
                // Given up by its reader (it lagged): the next watch asks another member first.
                if Task.isCancelled && taken { failed(index) }
                return
            } catch let e as EtcdWatchCompacted {
                throw e
            } catch {
                if taken {
                    // The stream broke (the member died?): the next watch asks another first.
                    failed(index)
                    throw error
                }
                last = error
            }
        }
        throw last
    }

    /// The same over the gateway: one streaming POST, one JSON object per line.
    private func gatewayWatch(_ prefix: [UInt8], from revision: Int64, _ deliver: (EtcdProto.Watch) throws -> Void) async throws {
        let json = GatewayJSON.object([("create_request", .object([
            ("key", .base64(prefix)), ("range_end", .base64(Wire.prefixEnd(prefix))), ("start_revision", .int64(revision)),
        ]))]).bytes
        var last: Error = EtcdError("no endpoints")
        for (index, base) in ordered() {
            var request = HTTPClientRequest(url: base + "/v3/watch")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, deadline: .distantFuture)
            } catch {
                last = error
                continue
            }
            guard response.status == .ok else {
                last = EtcdError("watch: \(response.status.code)")
                continue
            }
            answered(index)
            var pending: [UInt8] = []
            do {
                for try await chunk in response.body {
                    pending += chunk.readableBytesView
                    while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let one = pending[..<nl]
                        defer { pending.removeSubrange(...nl) }
                        if one.isEmpty { continue }
                        let line = try Self.reading(one, "watch reply") { try WatchLine(line: $0) }
                        guard let r = line.result else {
                            if let e = line.error { throw EtcdError("watch: \(e.message ?? e.error ?? "error")") }
                            continue
                        }
                        try deliver(EtcdProto.Watch(
                            revision: r.header?.revision ?? 0, created: r.created ?? false, canceled: r.canceled ?? false,
                            compactRevision: r.compact_revision.flatMap { Int64($0) } ?? 0, cancelReason: r.cancel_reason ?? "",
                            events: (r.events ?? []).compactMap { e in
                                e.kv.map { EtcdEvent(kind: e.type == "DELETE" ? .delete : .put, kv: $0) } // a PUT has no "type"
                            }))
                    }
                }
            } catch let e as EtcdWatchCompacted {
                throw e
            } catch {
                // The connection broke (the member died?): the next watch asks another first.
                failed(index)
                throw error
            }
            return
        }
        throw last
    }
}
