// A numbered membership view: what one REGULAR configuration installed.

import Totem

/// The membership of one REGULAR configuration, numbered locally.
///
/// View numbers count REGULAR configurations seen by *this* process, from 1; they are not
/// agreed between nodes (two nodes that started at different times number the same ring
/// differently). The agreed identity of a view is its `ringID`.
public struct View: Sendable, Equatable, CustomStringConvertible {
    /// 1 for the first REGULAR configuration this process saw, then 2, 3, ...
    public var number: UInt64
    /// The Totem ring that installed the view (agreed by all its members).
    public var ringID: RingID
    /// The members, ascending.
    public var members: [NodeID]

    /// Creates a view.
    public init(number: UInt64, ringID: RingID, members: [NodeID]) {
        self.number = number
        self.ringID = ringID
        self.members = members
    }

    /// `view 3 (ring 1.12): 1,2,3`
    public var description: String {
        "view \(number) (ring \(ringID)): " + members.map(\.description).joined(separator: ",")
    }
}
