/// Hands memory the process freed back to the kernel.
///
/// A cold start or a full rebuild at 10k Services frees hundreds of megabytes at once (the initial
/// lists' JSON, the batches' text, libnftables' parse trees). glibc keeps freed heap in its arenas,
/// where it counts against the agent's resident set and a DaemonSet's memory limit until reused;
/// `malloc_trim` returns the free pages. It costs a few milliseconds, so it runs after full syncs only.
enum FreeMemory {
    static func returnToSystem() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }
}

#if os(Linux)
/// glibc's `int malloc_trim(size_t pad)`, from `<malloc.h>`, which the Glibc module does not export.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
