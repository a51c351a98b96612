//! Bevy plugins that turn a [`l2s_scene::SceneDescription`] into pixels: RGB plus exact
//! ground truth (semantic class ids, instance ids, depth), headless or in a window.
//!
//! Status: this crate holds the label definitions that every consumer of the renderer
//! agrees on; the scene-building, physics-placement and capture plugins are the next step
//! (see ARCHITECTURE.md).

pub mod labels;

pub use labels::SemanticClass;
