/// An Event the controller records on a Node: why it joined, left or is held, or what happened to its records.
package struct NodeEvent: Sendable, Equatable {
    /// The Event's `reason`, one per kind of decision; its type (Normal or Warning) follows from it.
    package enum Reason: String, Sendable, CaseIterable {
        case joined = "DNSNodeJoined"
        case held = "DNSNodeHeld"
        case left = "DNSNodeLeft"
        case excluded = "DNSNodeExcluded"
        case nameBlocked = "DNSNameBlocked"
        case conflict = "DNSRecordConflict"
        case recordAdded = "DNSRecordAdded"
        case recordRemoved = "DNSRecordRemoved"
        case hostnameRefused = "DNSHostnameRefused"

        /// Kubernetes' Event type: a Warning when visitors may be affected or a user should act.
        package var type: String {
            switch self {
            case .held, .left, .nameBlocked, .conflict, .hostnameRefused: "Warning"
            case .joined, .excluded, .recordAdded, .recordRemoved: "Normal"
            }
        }
    }

    package var node: String
    package var reason: Reason
    package var message: String

    package init(_ node: String, _ reason: Reason, _ message: String) {
        self.node = node
        self.reason = reason
        self.message = message
    }
}
