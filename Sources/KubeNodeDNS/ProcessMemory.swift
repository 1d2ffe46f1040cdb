#if canImport(Glibc)
    import Glibc
#endif

/// glibc's allocator keeps what a large list decode freed, in one arena per thread that ever allocated; at 1,000
/// real-shaped nodes that was 11 MiB of dirty, unused heap. These hand it back to the kernel.
package enum ProcessMemory {
    /// One malloc arena for the process. The controller has one event-loop thread and a small concurrency pool, so
    /// contention is negligible, and freed memory is not stranded in per-thread arenas. Call it first in `main`.
    package static func useOneArena() {
        // glibc's M_ARENA_MAX; <malloc.h> is not in Swift's Glibc module, so the functions are looked up by name.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let mallopt = glibcFunction("mallopt", as: Mallopt.self) { _ = mallopt(-8, 1) }
    }

    /// Returns freed heap pages to the kernel (`malloc_trim`). The reconciler calls it after each reconcile that read
    /// the provider in full: the first one, which follows the first node list, and each resync.
    package static func releaseFreed() {
        typealias MallocTrim = @convention(c) (Int) -> Int32
        if let trim = glibcFunction("malloc_trim", as: MallocTrim.self) { _ = trim(0) }
    }

    private static func glibcFunction<F>(_ name: String, as type: F.Type) -> F? {
        #if canImport(Glibc)
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
            return unsafeBitCast(symbol, to: type)
        #else
            return nil
        #endif
    }
}
