// PBX adapters (`adapter_register`): which entity id an adapter publishes for, checked against
// this server's, and the registrations `status` lists.

import Membership
import Totem

extension ServiceHost {
    /// `adapter_register`: a PBX adapter says which entity id it publishes for. It must be this
    /// server's: the adapter's PBX tags its own states with it, and the cluster knows this server
    /// by it. A mismatch is refused and logged once per adapter name and id.
    ///
    /// - Parameters:
    ///   - registration: The adapter's name, entity id, system name and version (labels checked).
    ///   - client: Its connection; registering again replaces the registration.
    /// - Throws: `.entityMismatch`.
    public mutating func registerAdapter(_ registration: AdapterRegistration, client: ClientID,
                                         into effects: inout [Effect]) throws(ServiceHostError) {
        defer { checkInvariants() }
        let own = deviceState.entityID
        guard registration.entityID == own else {
            let mismatch = EntityMismatch(adapter: registration.name, claimed: registration.entityID, own: own, origin: entityIDOrigin)
            if reportedMismatches.insert("\(registration.name) \(registration.entityID)").inserted {
                Self.log(.error, "adapter refused: \(mismatch)", into: &effects)
            }
            throw .entityMismatch(mismatch)
        }
        adapters[client] = registration
        let details = [registration.systemName, registration.version.map { "version \($0)" }].compactMap { $0 }.joined(separator: ", ")
        Self.log(.notice, "adapter \(registration.name)\(details.isEmpty ? "" : " (\(details))") registered for entity id \(own)",
                 into: &effects)
    }
}
