import ArgumentParser
import ControlPlane
import Foundation
import Mip6Daemon
import Mip6Store

/// `mip6 ha` options of an active-active replica (issue 12; README "No single point of failure").
struct HAClusterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Share bindings with the other replicas through etcd: etcd+http://HOST:PORT[,HOST:PORT...]. Without it bindings live in this node's maps only.", valueName: "URL"))
    var store: String?

    @Option(name: .long, help: ArgumentHelp("How to reach etcd: grpc (its own API, over HTTP/2) or gateway (its JSON gateway over HTTP/1.1, about twice etcd's CPU per request). etcd+https:// stores use the gateway.", valueName: "API"))
    var storeAPI: EtcdClient.API = .grpc

    @Option(name: .long, help: "Key prefix of this home network in the store (default /mip6/v1/ and the home prefix).")
    var storePrefix: String?

    @Option(name: .long, help: "This replica's name in the store (default: the host name).")
    var replicaID: String?

    @Option(name: .long, help: "Withdraw the announcement and turn unready when the store's watch is this many milliseconds behind a store that answers.")
    var maxLag: UInt32 = 1000

    @Option(name: .long, help: ArgumentHelp("Announce the home prefix while ready: bird:SOCKET:PROTOCOL runs `enable`/`disable PROTOCOL` on that BIRD control socket.", valueName: "SPEC"))
    var announce: String?

    @Option(name: .long, help: "At a graceful stop, milliseconds between the withdrawal and the exit (about two BFD intervals).")
    var withdrawDelay: UInt32 = 300

    @Flag(name: .long, help: "The home prefix is on no link (RFC 6275 virtual home network, anycast replicas): the --address may be on lo; no DAD, no proxy ND.")
    var virtualHome = false

    func validate() throws {
        if let store { do { _ = try EtcdClient.endpoints(fromStore: store) } catch { throw ValidationError("\(error)") } }
        if storePrefix != nil || replicaID != nil || storeAPI != .grpc, store == nil {
            throw ValidationError("--store-prefix, --replica-id and --store-api need --store")
        }
        if let p = storePrefix, !p.hasPrefix("/") { throw ValidationError("--store-prefix must start with /") }
        if let announce, AnnounceOptions.parse(announce) == nil {
            throw ValidationError("--announce \(announce): expected bird:/path/to/bird.ctl:PROTOCOL")
        }
        if maxLag < 100 { throw ValidationError("--max-lag must be at least 100 ms") }
    }

    /// Fills the daemon's options.
    func apply(to options: inout HomeAgentOptions) throws {
        options.virtualHome = virtualHome
        if virtualHome { options.duplicateAddressDetection = false }
        if let store {
            let prefix = storePrefix ?? "/mip6/v1/" + "\(options.homePrefix)".replacingOccurrences(of: "/", with: "_")
            var s = StoreOptions(endpoints: try EtcdClient.endpoints(fromStore: store), prefix: prefix,
                                 replicaID: replicaID ?? ProcessInfo.processInfo.hostName)
            s.maxLagMilliseconds = maxLag
            s.api = storeAPI
            options.store = s
        }
        if let announce, var a = AnnounceOptions.parse(announce) {
            a.withdrawDelayMilliseconds = withdrawDelay
            options.announce = a
        }
    }
}

extension EtcdClient.API: ExpressibleByArgument {}
