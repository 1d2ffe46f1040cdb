import CloudflareDNS
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func readFile(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

private func statFile(_ path: String, _ info: inout stat) -> Int32 { stat(path, &info) }

/// A secret mounted from a file: read at start, then read again whenever the file's identity changes (the kubelet
/// updates a mounted Secret by swapping a symlink), so a rotated secret is used without a restart.
package final class WatchedSecretFile: Sendable {
    /// What tells two versions of the file apart without reading it: device, inode, size and modification time.
    struct Identity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    private struct State {
        var value: String
        var identity: Identity?
        var lastProblem: String?
    }

    package let path: String
    private let label: String
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let onChange: @Sendable (String) -> Void

    /// Reads the file now; a missing, unreadable or empty file is a configuration error that names `label`.
    package init(
        path: String, label: String, logger: Logger, onChange: @escaping @Sendable (String) -> Void = { _ in }
    )
        throws(ConfigurationError)
    {
        self.path = path
        self.label = label
        self.logger = logger
        self.onChange = onChange
        let identity = WatchedSecretFile.identity(of: path)
        state = NIOLockedValueBox(State(value: try WatchedSecretFile.read(path, flag: label), identity: identity))
    }

    /// The current secret; the file is looked at again (one stat) on every call.
    package var value: String {
        _ = reloadIfChanged()
        return state.withLockedValue { $0.value }
    }

    /// Re-reads the file when its identity changed; true when the secret itself changed. A file that cannot be
    /// read during a rotation keeps the old secret, and the problem is logged once.
    @discardableResult
    package func reloadIfChanged() -> Bool {
        let identity = WatchedSecretFile.identity(of: path)
        guard state.withLockedValue({ $0.identity != identity }) else { return false }
        let fresh: String
        do {
            fresh = try WatchedSecretFile.read(path, flag: label)
        } catch {
            let report = state.withLockedValue { state -> Bool in
                defer { state.lastProblem = error.description }
                return state.lastProblem != error.description
            }
            if report { logger.warning("cannot re-read a secret file; keeping the secret read before", metadata: ["error": "\(error)"]) }
            return false
        }
        let changed = state.withLockedValue { state -> Bool in
            state.identity = identity
            state.lastProblem = nil
            guard state.value != fresh else { return false }
            state.value = fresh
            return true
        }
        if changed { onChange(fresh) }
        return changed
    }

    static func identity(of path: String) -> Identity? {
        var info = stat()
        guard statFile(path, &info) == 0 else { return nil }
        return Identity(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
    }

    /// The file's text without surrounding whitespace; what to fix when it cannot be used.
    static func read(_ path: String, flag: String) throws(ConfigurationError) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = errno == ENOENT ? "no such file" : errno == EACCES ? "permission denied" : String(cString: strerror(errno))
            throw ConfigurationError("cannot read \(path) given by \(flag): \(reason)")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { readFile(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ConfigurationError("cannot read \(path) given by \(flag): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        let trimmed = bytes.drop { whitespace.contains($0) }.reversed().drop { whitespace.contains($0) }.reversed()
        guard !trimmed.isEmpty else { throw ConfigurationError("\(path) given by \(flag) is empty") }
        return String(decoding: Array(trimmed), as: UTF8.self)
    }
}

/// Cloudflare credentials whose token or Global API Key may come from a watched file; a change is logged as
/// "Cloudflare token reloaded" (never the token) and used by the next request.
final class RotatingCloudflareCredentials: CloudflareCredentialSource {
    private let fixed: CloudflareCredentials
    private let tokenFile: WatchedSecretFile?
    private let keyFile: WatchedSecretFile?

    init(fixed: CloudflareCredentials, tokenFile: WatchedSecretFile?, keyFile: WatchedSecretFile?) {
        self.fixed = fixed
        self.tokenFile = tokenFile
        self.keyFile = keyFile
    }

    func current() -> CloudflareCredentials {
        switch fixed {
        case .token(let token): .token(tokenFile?.value ?? token)
        case .globalKey(let email, let key): .globalKey(email: email, key: keyFile?.value ?? key)
        }
    }

    func refreshAfterAuthFailure() -> Bool {
        let token = tokenFile?.reloadIfChanged() ?? false
        let key = keyFile?.reloadIfChanged() ?? false
        return token || key
    }
}

/// Secrets learnt while running (a rotated token), scrubbed from every log line and error like the ones given at start.
package final class SecretRegistry: Sendable {
    package static let shared = SecretRegistry()
    private let secrets = NIOLockedValueBox<[String]>([])

    package func add(_ secret: String) {
        guard secret.count >= 4 else { return }
        secrets.withLockedValue { if !$0.contains(secret) { $0.append(secret) } }
    }

    package var all: [String] { secrets.withLockedValue { $0 } }
}
