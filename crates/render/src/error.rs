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
}
