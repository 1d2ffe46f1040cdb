/// Who owns a record: every provider marks the records it writes with this prefix and the owner id (`--owner-id`), in
/// Cloudflare's record comment or RFC 2136's marker TXT, and the id follows one rule everywhere.
package enum OwnerID {
    /// What every owner mark starts with: `kube-node-dns owner=<id>`. Stable across releases.
    package static let markPrefix = "kube-node-dns owner="
    /// Short and plain, so the mark stays well inside Cloudflare's 100-character comment limit on the free plan.
    package static let maxLength = 63

    /// 1 to 63 letters, digits, '-', '_' or '.'.
    package static func isValid(_ owner: String) -> Bool {
        !owner.isEmpty && owner.count <= maxLength
            && owner.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}
