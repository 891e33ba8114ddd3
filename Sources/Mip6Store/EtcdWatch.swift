// etcd watches over the gateway: one streaming POST per watch, one JSON object per line.
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
        let json = GatewayJSON.object([("create_request", .object([
            ("key", .base64(p)), ("range_end", .base64(Wire.prefixEnd(p))), ("start_revision", .int64(revision)),
        ]))]).bytes
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.streamWatch(json) { line in
                        guard let r = line.result else {
                            if let e = line.error { throw EtcdError("watch: \(e.message ?? e.error ?? "error")") }
                            return
                        }
                        if r.canceled == true {
                            if let c = r.compact_revision, let rev = Int64(c), rev > 0 { throw EtcdWatchCompacted(compactRevision: rev) }
                            throw EtcdError("watch canceled: \(r.cancel_reason ?? "no reason given")")
                        }
                        let events = (r.events ?? []).compactMap { e -> EtcdEvent? in
                            guard let kv = e.kv else { return nil }
                            return EtcdEvent(kind: e.type == "DELETE" ? .delete : .put, kv: kv) // a PUT has no "type"
                        }
                        if r.created == true && events.isEmpty {
                            continuation.yield((r.header?.revision ?? 0, []))
                            return
                        }
                        if !events.isEmpty {
                            continuation.yield((events.map(\.kv.modRevision).max() ?? r.header?.revision ?? 0, events))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The first member that takes the watch; every line of its reply to `line`.
    private func streamWatch(_ json: [UInt8], line: (WatchLine) throws -> Void) async throws {
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
                        try line(Self.reading(one, "watch reply") { try WatchLine(line: $0) })
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
