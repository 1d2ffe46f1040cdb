/// Which release and commit this binary is, for `--version` and the User-Agent of both API clients; the two lines
/// below are stamped by deploy/build-release.sh (and so by the Dockerfile and the release workflow).
package enum BuildInfo {
    package static let version = "0.2.0-dev"
    package static let commit = "unknown"

    /// `kube-node-dns 0.2.0 (commit 0123456789ab)`.
    package static var versionLine: String { "kube-node-dns \(version) (commit \(commit))" }
    /// What both clients send, so an API server's or Cloudflare's logs name the release.
    package static var userAgent: String { "kube-node-dns/\(version) (commit \(commit))" }
}
