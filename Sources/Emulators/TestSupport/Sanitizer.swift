import Foundation

/// The sanitizer the suite runs under, as scripts/test names it in `KUBE_NODE_DNS_SANITIZER`: a test that cannot run
/// under one is skipped there, with the reason in its code.
package enum Sanitizer: String, Sendable {
    case address, thread

    /// The sanitizer of this run, or nil for a plain `swift test`.
    package static let current: Sanitizer? = ProcessInfo.processInfo.environment["KUBE_NODE_DNS_SANITIZER"].flatMap(Sanitizer.init)
}
