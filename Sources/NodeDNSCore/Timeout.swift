/// Runs `body`, and throws `timeout()` if it has not finished within `seconds` (the body is then cancelled): the
/// project's one timeout race, so that every caller gets the same cancellation and the same error shape.
package func withTimeout<T: Sendable>(
    seconds: Double, _ timeout: @escaping @Sendable () -> any Error, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64((max(0, seconds) * 1000).rounded(.up))))
            throw timeout()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw timeout() }
        return value
    }
}
