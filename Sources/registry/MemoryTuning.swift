#if canImport(Glibc)
    import Glibc
#endif

/// Process-wide allocator settings for a process that moves gigabytes through megabyte-sized buffers.
///
/// Chunks are 256 KiB–4 MiB and blob segments 1 MiB. With glibc's defaults each such buffer is either its own
/// `mmap` (returned to the kernel on free, so the next one page-faults and zero-fills again) or lands in a heap that
/// is trimmed back as soon as it is freed. Measured on the benchmark machine, a 1 GiB pull went from 4.3 s to 2.8 s
/// with large buffers served from a heap that is not trimmed. Memory stays bounded by the transfer's working set
/// (concurrency × the largest chunk), which the peak-RSS figures in docs/benchmarks.md include.
enum MemoryTuning {
    static func apply() {
        #if canImport(Glibc)
            // `mallopt` lives in <malloc.h>, which the Glibc module does not export; look it up instead.
            typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
            let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
            let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
            let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
            // Buffers below 64 MiB come from the heap, and up to 256 MiB of free heap is kept for reuse.
            _ = mallopt(mmapThreshold, 64 << 20)
            _ = mallopt(trimThreshold, 256 << 20)
        #endif
    }
}
