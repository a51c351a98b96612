//! Bevy plugins and a headless renderer that turn a [`l2s_scene::SceneDescription`] into
//! pixels: RGB plus exact ground truth (semantic class ids, instance ids, depth), per-type
//! car counts and 2-D boxes.
//!
//! - [`geometry`]: meshes generated in code (five car silhouettes, houses, road).
//! - [`physics`]: cars dropped on the road and settled with rapier.
//! - [`spawn`]: description → entities, each drawn twice (lit RGB, label material) or
//!   once with a labelled material that [`labelled_pass`] draws into RGB and labels at once.
//! - [`settings`]: [`RenderSettings`]; [`error`]: [`RenderError`].
//! - [`adapter`]: the graphics adapter (found before Bevy starts) and the render plugin for it.
//! - [`headless`]: [`Renderer`], the library call that renders scenes into [`Frame`]s,
//!   split over several `worker`s (one Bevy app each); `capture` is a worker's
//!   render-world side (copies and readback of the targets).
//! - [`frame`]: decoding and checking of label readbacks, visible cars, counts, boxes.

pub mod adapter;
mod capture;
pub mod error;
pub mod export;
pub mod frame;
pub mod geometry;
pub mod headless;
pub mod labelled_pass;
pub mod labels;
pub mod materials;
pub mod physics;
pub mod preview;
pub mod settings;
pub mod spawn;
mod worker;

pub use adapter::{AdapterSummary, probe_adapter};
pub use error::RenderError;
pub use export::{DatasetConfig, export_dataset};
pub use frame::{Frame, VisibleCar};
pub use headless::Renderer;
pub use labels::SemanticClass;
pub use materials::Shading;
pub use preview::{PreviewOptions, run_preview};
pub use settings::RenderSettings;
