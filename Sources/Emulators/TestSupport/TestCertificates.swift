import Foundation
import NIOSSL

/// A throwaway certificate authority and a server certificate for 127.0.0.1, made with the openssl CLI, so
/// tests and the standalone emulator can serve HTTPS that a client verifies against a CA of its own.
package struct TestCertificates: Sendable {
    package let directory: String
    package var caPath: String { directory + "/ca.crt" }
    package var certificatePath: String { directory + "/server.crt" }
    package var keyPath: String { directory + "/server.key" }

    /// Makes a fresh CA (named `name`) and a server certificate it signed, valid for `subjectAltNames` (127.0.0.1
    /// and localhost unless given, e.g. "DNS:www.example.test" for a site's certificate).
    package static func make(
        name: String = "kube-node-dns test CA", subjectAltNames: String = "IP:127.0.0.1,DNS:localhost"
    ) throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "knd-tls-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        try "subjectAltName=\(subjectAltNames)\nbasicConstraints=CA:FALSE\n"
            .write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/ca.key", "-out",
                certificates.caPath,
                "-days", "2", "-subj", "/CN=\(name)",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", certificates.keyPath, "-out",
                directory + "/server.csr",
                "-subj", "/CN=127.0.0.1",
            ],
            [
                "x509", "-req", "-in", directory + "/server.csr", "-CA", certificates.caPath, "-CAkey",
                directory + "/ca.key",
                "-CAcreateserial", "-out", certificates.certificatePath, "-days", "2", "-extfile",
                directory + "/san.ext",
            ],
        ]
        for arguments in steps {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl"] + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CommandLineOptions.Invalid(
                    description: "openssl \(arguments[0]) failed (is openssl installed?)")
            }
        }
        return certificates
    }

    /// A server TLS configuration from PEM files.
    package static func serverConfiguration(
        certificatePath: String, keyPath: String
    ) throws
        -> TLSConfiguration
    {
        TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
    }

    package func serverConfiguration() throws -> TLSConfiguration {
        try TestCertificates.serverConfiguration(certificatePath: certificatePath, keyPath: keyPath)
    }
}
