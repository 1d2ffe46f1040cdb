import AsyncHTTPClient
import Emulators
import Foundation
import Logging
import Testing
import WWWExample

func fetch(_ url: String) async throws -> (status: UInt, contentType: String, body: String) {
    let response = try await HTTPClient.shared.execute(
        HTTPClientRequest(url: url), timeout: .seconds(5))
    let body = String(buffer: try await response.body.collect(upTo: 1 << 16))
    return (response.status.code, response.headers.first(name: "Content-Type") ?? "", body)
}

/// The time in a page, parsed back; nil when the page does not have the promised shape.
func timeInPage(_ page: String) -> Date? {
    let prefix = WWWExample.greeting + " The time is "
    guard page.hasPrefix(prefix), page.hasSuffix("\n") else { return nil }
    return try? Date(String(page.dropFirst(prefix.count).dropLast()), strategy: .iso8601)
}

@Suite struct WWWExampleTests {
    @Test func pageSaysHelloAndTheCurrentTimeAsRFC3339() async throws {
        try await EmulatorHarness.serving({ ready in
            try await WWWExample.application(
                host: "127.0.0.1", port: 0, logger: EmulatorHarness.quietLogger, onServerRunning: ready
            ).run()
        }) { port in
            let before = Date()
            let page = try await fetch("http://127.0.0.1:\(port)/")
            #expect(page.status == 200 && page.contentType.hasPrefix("text/plain"))
            let time = try #require(timeInPage(page.body), "\(page.body)")
            #expect(abs(time.timeIntervalSince(before)) < 2)
            let health = try await fetch("http://127.0.0.1:\(port)/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
            #expect(try await fetch("http://127.0.0.1:\(port)/nope").status == 404)
        }
    }

    @Test(arguments: [
        ([:], 8080), (["PORT": "9090"], 9090), (["PORT": ""], 8080),
    ])
    func portComesFromTheEnvironment(environment: [String: String], expected: Int) throws {
        #expect(try WWWExample.port(from: environment).get() == expected)
    }

    @Test(arguments: ["http", "70000", "-1", "80 "])
    func badPortSaysWhatIsWrong(value: String) {
        guard case .failure(let error) = WWWExample.port(from: ["PORT": value]) else {
            Issue.record("PORT=\(value) was accepted")
            return
        }
        #expect(error.description == "PORT=\(value) is not a port number (0-65535)")
    }

    @Test func theBinaryServesOnPortAndExitsCleanlyOnSIGTERM() async throws {
        let binary = ManagedProcess.productsDirectory + "/swift-www-example"
        let server = try ManagedProcess(binary, [], environment: ["PORT": "0"])
        // Hummingbird logs the address it bound; port 0 means the kernel chose one.
        var port: Int?
        #expect(
            await EmulatorHarness.eventually {
                port =
                    server.lines.lazy.compactMap { line in
                        line.range(of: "0.0.0.0:").map { Int(line[$0.upperBound...].prefix { $0.isNumber }) }
                            ?? nil
                    }.first
                return port != nil
            })
        let page = try await fetch("http://127.0.0.1:\(try #require(port))/")
        #expect(timeInPage(page.body) != nil)
        server.signal(SIGTERM)
        #expect(await server.waitForExit() == 0)

        let bad = try ManagedProcess(binary, [], environment: ["PORT": "eighty"])
        #expect(await bad.waitForExit() == 2)
        #expect(bad.lines == ["swift-www-example: PORT=eighty is not a port number (0-65535)"])
    }
}
