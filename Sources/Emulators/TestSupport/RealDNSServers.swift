import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// A real authoritative DNS server (Debian's BIND 9, Knot DNS or PowerDNS) run in the foreground on a loopback
/// port, with a throwaway zone and TSIG key in a temporary directory: what the RFC 2136 tests, the demo, the
/// benchmark and the soak talk to. No control channel on the network, no system service; stopped by its pid.
package final class RealDNSServer: Sendable {
    package enum Kind: String, Sendable, CaseIterable, CustomStringConvertible {
        case bind, knot, powerdns
        package var description: String {
            switch self {
            case .bind: "BIND 9"
            case .knot: "Knot DNS"
            case .powerdns: "PowerDNS"
            }
        }
        /// The daemon this kind runs; the server is skipped (with a message) when it is missing.
        var daemon: String {
            switch self {
            case .bind: "/usr/sbin/named"
            case .knot: "/usr/sbin/knotd"
            case .powerdns: "/usr/sbin/pdns_server"
            }
        }
        package var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: daemon) }

        /// The installed servers, or those named in `RFC2136_TEST_SERVERS` (e.g. `bind,knot`) to run fewer.
        package static var forTests: [Kind] {
            let chosen = ProcessInfo.processInfo.environment["RFC2136_TEST_SERVERS"].map {
                Set($0.split(separator: ",").map(String.init))
            }
            return allCases.filter { $0.isInstalled && (chosen?.contains($0.rawValue) ?? true) }
        }
    }

    package let kind: Kind
    package let zone: String
    package let keyName: String
    package let secret: String
    package let algorithm: String
    package let directory: String
    package let port: Int
    /// BIND's update-policy statements (default: the key may change anything in the zone).
    let bindUpdatePolicy: String
    private let process = NIOLockedValueBox<ManagedProcess?>(nil)

    /// What `apt-get install` gives the tests all three servers and the tools they check with.
    package static let debianPackages = "bind9 bind9-utils bind9-dnsutils knot pdns-server pdns-backend-sqlite3 sqlite3"

    /// Writes the zone and configuration, starts the server and waits until it answers for the zone.
    package init(
        kind: Kind, zone: String = "example.test", keyName: String = "kube-node-dns", algorithm: String = "hmac-sha256",
        bindUpdatePolicy: String? = nil
    ) async throws {
        self.bindUpdatePolicy = bindUpdatePolicy ?? "grant \(keyName) zonesub ANY;"
        self.kind = kind
        self.zone = zone
        self.keyName = keyName
        self.algorithm = algorithm
        var random = SystemRandomNumberGenerator()
        secret = Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }).base64EncodedString()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dns-\(kind.rawValue)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try freeLoopbackPort()
        try writeConfiguration()
        try await start()
    }

    private var zoneFile: String {
        """
        $ORIGIN \(zone).
        $TTL 300
        @ IN SOA ns1.\(zone). hostmaster.\(zone). 1 3600 600 86400 60
        @ IN NS ns1.\(zone).
        ns1 IN A 127.0.0.1

        """
    }

    private func writeConfiguration() throws {
        let zonePath = "\(directory)/\(zone).zone"
        try zoneFile.write(toFile: zonePath, atomically: true, encoding: .utf8)
        switch kind {
        case .bind:
            try """
            key "\(keyName)" { algorithm \(algorithm); secret "\(secret)"; };
            options {
                directory "\(directory)"; pid-file "\(directory)/named.pid"; session-keyfile none;
                listen-on port \(port) { 127.0.0.1; }; listen-on-v6 { none; };
                recursion no; dnssec-validation no; notify no;
            };
            controls { };
            zone "\(zone)" { type primary; file "\(zonePath)"; update-policy { \(bindUpdatePolicy) }; };

            """.write(toFile: "\(directory)/named.conf", atomically: true, encoding: .utf8)
        case .knot:
            try FileManager.default.createDirectory(atPath: "\(directory)/db", withIntermediateDirectories: true)
            try """
            server:
                listen: 127.0.0.1@\(port)
                rundir: \(directory)
                pidfile: \(directory)/knot.pid
            control:
                listen: \(directory)/knot.sock
            key:
              - id: \(keyName)
                algorithm: \(algorithm)
                secret: \(secret)
            acl:
              - id: update
                key: \(keyName)
                action: update
            database:
                storage: \(directory)/db
            template:
              - id: default
                storage: \(directory)
                zonefile-sync: -1
                journal-content: changes
            zone:
              - domain: \(zone)
                file: \(zone).zone
                acl: update
            log:
              - target: stderr
                any: warning

            """.write(toFile: "\(directory)/knot.conf", atomically: true, encoding: .utf8)
        case .powerdns:
            try """
            launch=gsqlite3
            gsqlite3-database=\(directory)/pdns.sqlite3
            local-address=127.0.0.1
            local-port=\(port)
            socket-dir=\(directory)
            dnsupdate=yes
            allow-dnsupdate-from=127.0.0.0/8
            daemon=no
            guardian=no
            disable-syslog=yes
            loglevel=3
            webserver=no
            api=no
            cache-ttl=0
            negquery-cache-ttl=0
            query-cache-ttl=0
            zone-cache-refresh-interval=0

            """.write(toFile: "\(directory)/pdns.conf", atomically: true, encoding: .utf8)
            let schema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"
            try run("/usr/bin/sqlite3", ["\(directory)/pdns.sqlite3", ".read \(schema)"])
            let util = ["--config-dir=\(directory)"]
            try run("/usr/bin/pdnsutil", util + ["load-zone", zone, zonePath])
            try run("/usr/bin/pdnsutil", util + ["import-tsig-key", keyName, algorithm, secret])
            try run("/usr/bin/pdnsutil", util + ["set-meta", zone, "TSIG-ALLOW-DNSUPDATE", keyName])
        }
    }

    /// Starts the daemon in the foreground and waits until the zone's SOA answers.
    package func start() async throws {
        let running: ManagedProcess
        switch kind {
        case .bind: running = try ManagedProcess(kind.daemon, ["-g", "-c", "\(directory)/named.conf"])
        case .knot: running = try ManagedProcess(kind.daemon, ["-c", "\(directory)/knot.conf"])
        case .powerdns: running = try ManagedProcess(kind.daemon, ["--config-dir=\(directory)"])
        }
        process.withLockedValue { $0 = running }
        // The harness's one patience knob, at least 20 s: a busy machine, or a sanitizer's, starts a daemon slowly.
        let deadline = ContinuousClock.now + .seconds(max(20, EmulatorHarness.patience))
        while ContinuousClock.now < deadline {
            guard running.isRunning else { break }
            // dig blocks its thread for up to a second while the daemon starts: NIO's blocking pool, not one of the
            // test process's few cooperative threads, which every other test running meanwhile needs.
            if try await NIOThreadPool.singleton.runIfActive({ [self] in !dig(zone, "SOA").isEmpty }) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServerFailed(
            description: "\(kind) did not start on port \(port): \(running.lines.suffix(10).joined(separator: " | "))")
    }

    /// Stops the daemon (SIGTERM to its pid) and waits for it to exit; the zone's data stays for a restart.
    package func stop() async {
        guard let running = process.withLockedValue({ $0 }) else { return }
        // pdns_server started from a Swift process keeps the signal mask it inherits (every signal blocked) and
        // never sees SIGTERM; its sqlite3 data is committed with each update, so SIGKILL loses nothing.
        running.signal(kind == .powerdns ? SIGKILL : SIGTERM)
        _ = await running.waitForExit()
        process.withLockedValue { $0 = nil }
    }

    /// Ends the daemon at once (SIGKILL), without waiting: for teardown in a `defer`, where nothing can be awaited.
    package func kill() { process.withLockedValue { $0?.signal(SIGKILL) } }

    /// A server a test forgot to stop (or a test that failed early) does not outlive the test process.
    deinit { process.withLockedValue { $0?.signal(SIGKILL) } }

    package var log: [String] { process.withLockedValue { $0?.lines ?? [] } }

    /// The answer section as a resolver sees it: `name TTL IN TYPE value` lines, sorted.
    package func dig(_ name: String, _ type: String) -> [String] {
        let output =
            (try? capture(
                "/usr/bin/dig",
                ["-p", "\(port)", "@127.0.0.1", name, type, "+noall", "+answer", "+time=1", "+tries=1", "+norecurse"])) ?? ""
        return output.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
            .filter { !$0.isEmpty && !$0.hasPrefix(";") }.sorted()
    }

    /// The zone's SOA serial as the server answers it; each applied UPDATE adds one (the zone starts at 1).
    package var soaSerial: Int? {
        let fields = dig(zone, "SOA").first?.split(separator: " ") ?? []
        return fields.count > 6 ? Int(fields[6]) : nil
    }

    /// The values of the RRset, as `dig +short` prints them.
    package func values(_ name: String, _ type: String) -> Set<String> {
        Set(dig(name, type).compactMap { $0.split(separator: " ").last.map(String.init) })
    }

    /// Runs `nsupdate` with this server's key (or `secret`, to try a wrong one); returns its status and output.
    @discardableResult
    package func nsupdate(_ commands: [String], secret: String? = nil) throws -> (status: Int32, output: String) {
        let script = (["server 127.0.0.1 \(port)", "zone \(zone)"] + commands + ["send", ""]).joined(separator: "\n")
        let path = "\(directory)/nsupdate-\(UUID().uuidString).txt"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return try execute("/usr/bin/nsupdate", ["-y", "\(algorithm):\(keyName):\(secret ?? self.secret)", path])
    }

    private func run(_ executable: String, _ arguments: [String]) throws {
        _ = try capture(executable, arguments, check: true)
    }

    private func capture(_ executable: String, _ arguments: [String], check: Bool = false) throws -> String {
        let (status, text) = try execute(executable, arguments)
        if check && status != 0 {
            throw ServerFailed(description: "\(executable) \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// Runs a tool to its end; its status and its output (stdout and stderr together).
    private func execute(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    package struct ServerFailed: Error, CustomStringConvertible {
        package let description: String
    }
}

/// A loopback port that nothing listens on (TCP and UDP), from the kernel.
package func freeLoopbackPort() throws -> Int {
    for _ in 0..<20 {
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(tcp) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { continue }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(tcp, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        // The same number must be free for UDP too.
        let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(udp) }
        let udpBound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if udpBound == 0 { return port }
    }
    throw RealDNSServer.ServerFailed(description: "no free loopback port")
}
