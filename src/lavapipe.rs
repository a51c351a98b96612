//! Process-wide settings of Mesa's software Vulkan driver (lavapipe), owned by the binaries
//! (`l2s`, the render benchmark) rather than by a library: they are environment variables,
//! which only a process that has not started other threads yet may set.

/// Makes lavapipe rasterise on the thread that submits the draws (`LP_NUM_THREADS=0`)
/// unless the environment already says otherwise. Drivers other than lavapipe ignore it.
///
/// Why: the experiments render 64x64 and 128x128 images, one or four of lavapipe's 64x64
/// bins, so its rasteriser threads mostly wait for the thread that submits, and each
/// hand-off costs kernel wake-ups. One render worker gave 143 frames/s at 64x64 this way
/// against 93 with two rasteriser threads, and used one core instead of 1.3; the renderer
/// runs one worker per core instead (BENCHMARKS.md, "Renderer").
///
/// # Safety
///
/// No other thread may exist yet: setting an environment variable races with any
/// concurrent read of the environment (`getenv`), which Mesa and glibc do freely.
#[allow(unsafe_code)]
pub unsafe fn rasterise_on_the_submitting_thread() {
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that this is the only thread.
        unsafe { std::env::set_var("LP_NUM_THREADS", "0") };
    }
}
