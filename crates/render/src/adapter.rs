//! The graphics adapter the renderer runs on (found before Bevy starts, which panics
//! without one) and Bevy's render plugin set up for it.

use bevy::prelude::default;
use bevy::render::RenderPlugin;
use bevy::render::settings::{WgpuSettings, WgpuSettingsPriority};
use serde::{Deserialize, Serialize};

use crate::error::RenderError;

/// The graphics adapter the renderer runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    /// "Cpu" for software renderers such as lavapipe.
    pub device_type: String,
}

/// The adapter the renderer uses (hardware first, see `l2s_gpu`), or
/// [`RenderError::NoAdapter`].
pub fn probe_adapter() -> Result<AdapterSummary, RenderError> {
    l2s_gpu::best()
        .map(|adapter| AdapterSummary {
            device_type: adapter.device_type_name(),
            name: adapter.name,
            backend: adapter.backend,
        })
        .ok_or(RenderError::NoAdapter)
}

/// Bevy's render plugin for `adapter`: pipelines compile synchronously (ready on the frame
/// that needs them); on a software adapter (lavapipe) with the WebGL2 priority, i.e.
/// WebGPU's default limits instead of the adapter's own: 31 → 38 labelled frames/s at
/// 256x256 (BENCHMARKS.md). Bevy still preprocesses mesh instances in compute passes then
/// (without culling); taking compute away too made frames go missing in Bevy 0.19.1.
pub(crate) fn render_plugin(adapter: &AdapterSummary) -> RenderPlugin {
    let settings = if adapter.device_type == "Cpu" {
        WgpuSettings { priority: WgpuSettingsPriority::WebGL2, ..default() }
    } else {
        WgpuSettings::default()
    };
    RenderPlugin { synchronous_pipeline_compilation: true, render_creation: settings.into(), ..default() }
}
