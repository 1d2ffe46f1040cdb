/// Time as timers, retries and rate limits see it: monotonic seconds and sleeps, so a step of the wall clock
/// cannot stall them, and tests can inject a clock they advance by hand.
package protocol TimeSource: Sendable {
    /// Seconds on a monotonic scale with an arbitrary origin.
    func now() -> Double
    /// Sleeps for `seconds` of this source's time; throws when the task is cancelled.
    func sleep(seconds: Double) async throws
}

/// The process's monotonic clock.
package struct SystemTimeSource: TimeSource {
    private static let origin = ContinuousClock.now

    package init() {}

    package func now() -> Double {
        SystemTimeSource.origin.duration(to: .now).inSeconds
    }

    package func sleep(seconds: Double) async throws {
        try await Task.sleep(for: .seconds(max(0, seconds)))
    }
}

extension Duration {
    /// The duration in seconds, as the controller's clocks and gauges count them.
    package var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
