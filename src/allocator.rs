//! Process-wide allocator settings, owned by the binaries (`l2s`, the benchmarks) rather
//! than by a library: a library call should not change how the whole process allocates.

/// On the CPU every training step allocates and frees activations and im2col buffers of
/// megabytes. glibc's malloc serves such blocks from fresh mappings above its (dynamic)
/// mmap threshold and gives them back on free, so each step page-faults and zeroes them
/// again; whether it does depended on the heap's history (the same benchmark binary ran at
/// 1,900 or 3,400 images/s depending on its environment variables, with 3x the page
/// faults in the slow case). Fixed thresholds keep freed blocks in the heap for the next
/// step: process-wide, memory stays bounded by the peak of what is live at once.
pub fn keep_freed_blocks_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc's upper limit for the mmap threshold (64-bit): 32 MiB.
            const MMAP_THRESHOLD: libc::c_int = 32 << 20;
            const TRIM_THRESHOLD: libc::c_int = 256 << 20;
            // SAFETY: mallopt only sets glibc's allocator parameters, which it reads under
            // its own lock; no memory is touched.
            #[allow(unsafe_code)]
            let set = unsafe {
                [libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD), libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
            };
            if set != [1, 1] {
                tracing::warn!("glibc refused the allocator thresholds (mallopt returned {set:?}); CPU training may page-fault more");
            }
        });
    }
}

/// Caps glibc's malloc arenas at one per core (its default is eight per core). The renderer
/// runs each call's shares on fresh threads, and each new thread may land in an arena of
/// its own that keeps its freed blocks: over 3,000 scenes at 256x256 with two render
/// workers, resident memory climbed from 552 to 700 MiB before it levelled off; with two
/// arenas it stayed between 540 and 600 MiB.
pub fn one_heap_per_core() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
            // SAFETY: as above: mallopt only sets glibc's allocator parameters.
            #[allow(unsafe_code)]
            let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
            if set != 1 {
                tracing::warn!("glibc refused the arena limit (mallopt returned {set}); long renders may hold more memory");
            }
        });
    }
}
