/// RFC 6275 §11.5.1 movement detection, from what the kernel reports about the mobile
/// node's interfaces: which address to register, decided from flags that change the moment
/// the state does (administrative state, carrier, DAD), never from a timer.
public enum CareOfSelection {
    /// One interface as the kernel describes it.
    public struct Interface: Sendable, Equatable {
        public var name: String
        public var isUp: Bool
        public var hasCarrier: Bool
        public var addresses: [Address]

        public init(name: String, isUp: Bool, hasCarrier: Bool, addresses: [Address]) {
            self.name = name
            self.isUp = isUp
            self.hasCarrier = hasCarrier
            self.addresses = addresses
        }
    }

    /// One address with its DAD and lifetime state (RFC 4862 §5.4, RFC 4429).
    public struct Address: Sendable, Equatable {
        public var address: IPv6Address
        public var tentative = false
        public var optimistic = false
        public var dadFailed = false
        public var deprecated = false

        public init(_ address: IPv6Address, tentative: Bool = false, optimistic: Bool = false,
                    dadFailed: Bool = false, deprecated: Bool = false) {
            self.address = address
            self.tentative = tentative
            self.optimistic = optimistic
            self.dadFailed = dadFailed
            self.deprecated = deprecated
        }

        /// Usable as a source now. A tentative address is not (RFC 4862 §5.4: it receives
        /// nothing but DAD, so neither the BA nor tunneled traffic would reach it) unless it
        /// is optimistic (RFC 4429 §3); one that failed DAD never is.
        public var isUsable: Bool {
            address.isUnicastRoutable && !dadFailed && (!tentative || optimistic)
        }
    }

    /// The address to register from: the home address when an interface holds a usable
    /// address in the home prefix, else a usable global address of the first interface (in
    /// `interfaces` order, the user's preference) that is up with carrier; nil when there
    /// is none. On that interface the `current` care-of address is kept while it stays usable
    /// and preferred (a second address appearing must not move the binding), then a
    /// preferred address, then a deprecated one.
    public static func choose(_ interfaces: [Interface], current: IPv6Address?,
                              homeAddress: IPv6Address, homePrefix: IPv6Prefix) -> IPv6Address? {
        for i in interfaces where i.isUp && i.hasCarrier {
            let usable = i.addresses.filter(\.isUsable)
            if usable.isEmpty { continue }
            if usable.contains(where: { homePrefix.contains($0.address) }) { return homeAddress }
            let preferred = usable.filter { !$0.deprecated }
            if let current, preferred.contains(where: { $0.address == current }) { return current }
            return (preferred.first ?? usable.first)?.address
        }
        return nil
    }
}
