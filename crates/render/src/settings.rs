//! How frames are rendered: size, scenes per Bevy frame, anti-aliasing, shadows, shading,
//! the visibility threshold of counted cars and the physics settling.

use serde::{Deserialize, Serialize};

use crate::materials::Shading;
use crate::physics::SettleConfig;

/// How frames are rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderSettings {
    pub width: u32,
    pub height: u32,
    /// Scenes drawn in one Bevy frame (each with its own cameras); more amortise the
    /// per-frame cost.
    pub scenes_per_frame: u32,
    /// 4x MSAA on the RGB image (labels are never anti-aliased).
    pub antialias: bool,
    /// Sun shadows in the RGB image.
    pub shadows: bool,
    /// Pixels a car must show to be counted.
    pub min_visible_pixels: u32,
    /// Physics steps to settle dropped cars.
    pub settle_steps: u32,
    /// How the RGB image is lit: `Fast` (default) or `Standard` (Bevy's PBR).
    pub shading: Shading,
    /// Bevy apps that render side by side, each on its own thread and graphics device;
    /// 0 (default) picks one per CPU core, at most [`RenderSettings::MAX_AUTO_WORKERS`]. A
    /// frame is the same whichever worker draws it, so this changes speed only (and is left
    /// out of a run's fingerprint).
    #[serde(skip_serializing_if = "is_auto")]
    pub workers: u32,
}

fn is_auto(workers: &u32) -> bool {
    *workers == 0
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            width: 256,
            height: 256,
            scenes_per_frame: 8,
            antialias: false,
            shadows: true,
            min_visible_pixels: 20,
            settle_steps: SettleConfig::default().steps,
            shading: Shading::default(),
            workers: 0,
        }
    }
}

impl l2s_core::config::Validate for RenderSettings {
    fn validate(&self) -> Result<(), l2s_core::InvalidField> {
        use l2s_core::config::{check_count, check_range};
        check_count("width", self.width as usize, 16, 2048)?;
        check_count("height", self.height as usize, 16, 2048)?;
        check_count("scenes_per_frame", self.scenes_per_frame as usize, 1, 15)?;
        check_range("min_visible_pixels", f64::from(self.min_visible_pixels), 1.0, 1e6)?;
        check_count("settle_steps", self.settle_steps as usize, 0, 10_000)?;
        check_count("workers", self.workers as usize, 0, 16)?;
        Ok(())
    }
}

impl RenderSettings {
    /// Workers that `workers: 0` picks at most: each holds its own app, device and
    /// pipelines (about 200 MiB with lavapipe).
    pub const MAX_AUTO_WORKERS: u32 = 4;

    /// The number of render workers these settings ask for.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |cores| cores.get())
                .min(Self::MAX_AUTO_WORKERS as usize),
            n => n as usize,
        }
    }

    /// Side of the sun's shadow map: four texels per pixel of the image's longer side,
    /// between 256 and 1,024 (256x256 images and larger keep 1,024). Every slot's sun draws
    /// its own map each frame, so at 64x64 a 1,024² map was a quarter of the frame time
    /// for detail no pixel shows.
    pub fn shadow_map_size(&self) -> usize {
        (4 * self.width.max(self.height) as usize).next_power_of_two().clamp(256, 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_map_follows_the_image_size_within_its_bounds() {
        let size =
            |width, height| RenderSettings { width, height, ..RenderSettings::default() }.shadow_map_size();
        assert_eq!(
            (size(64, 64), size(128, 128), size(144, 48), size(256, 256), size(640, 192)),
            (256, 512, 1024, 1024, 1024)
        );
        assert_eq!(size(16, 16), 256);
    }
}
