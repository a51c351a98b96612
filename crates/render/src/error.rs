//! What can stop a frame, with what the user can do about it.

use crate::frame::LabelError;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "no graphics adapter found (wgpu saw none): install a Vulkan driver, e.g. `sudo apt-get install -y mesa-vulkan-drivers libvulkan1` for the software renderer lavapipe"
    )]
    NoAdapter,
    #[error("invalid render settings: {0}")]
    Settings(#[from] l2s_core::InvalidField),
    #[error("a render pipeline failed to build: {0}")]
    Pipeline(String),
    #[error("no complete frame after {0} updates: pipelines or GPU copies never became ready")]
    NotReady(u32),
    #[error("the GPU copy of a frame failed: {0}")]
    Readback(String),
    #[error(
        "settling the cars of scene seed {seed} failed (the physics thread panicked: {message}); the frame is not rendered without its cars\n  hint: report this with the scene's ψ and seed"
    )]
    Physics { seed: u64, message: String },
    #[error("label readback is not exact for scene seed {seed}: {source}")]
    Labels { seed: u64, source: LabelError },
    #[error(
        "a render worker's thread panicked: {0}\n  hint: run with `-v` for the renderer's log and report this with the config"
    )]
    Worker(String),
}

/// The message of a panicked thread's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
