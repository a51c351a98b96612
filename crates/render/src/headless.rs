//! Headless rendering as a library call: [`Renderer::render`] turns scene descriptions
//! into [`Frame`]s in memory.
//!
//! The renderer splits each call's scenes into contiguous shares, one per worker
//! (`crate::worker`: a Bevy app with its own graphics device), renders the shares side by
//! side on scoped threads and returns the frames in the order of the scenes. Below 256x256
//! a frame's cost is mostly per-scene work that one thread does in order (Bevy's systems,
//! lavapipe's command processing and small draws), so one app cannot use more than about
//! one core however many the machine has; several apps can.

use crate::adapter::{AdapterSummary, probe_adapter};
use crate::error::{RenderError, panic_message};
use crate::frame::Frame;
use crate::settings::RenderSettings;
use crate::worker::Worker;
use l2s_scene::SceneDescription;

/// Renders scene descriptions headless into [`Frame`]s, reusing its workers' Bevy apps.
pub struct Renderer {
    workers: Vec<Worker>,
    settings: RenderSettings,
    adapter: AdapterSummary,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("settings", &self.settings)
            .field("adapter", &self.adapter)
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// `len` items split into `parts` contiguous ranges whose sizes differ by at most one.
fn shares(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    (0..parts).map(|i| i * len / parts..(i + 1) * len / parts).filter(|r| !r.is_empty()).collect()
}

/// What a worker's thread returned, or [`RenderError::Worker`] if it panicked.
fn join_worker<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> Result<T, RenderError> {
    handle.join().map_err(|payload| RenderError::Worker(panic_message(&*payload)))
}

impl Renderer {
    /// Builds the workers on the best adapter (a hardware GPU when there is one), each on
    /// its own thread: their pipelines compile side by side.
    pub fn new(settings: RenderSettings) -> Result<Self, RenderError> {
        l2s_core::config::Validate::validate(&settings)?;
        let adapter = probe_adapter()?;
        let count = settings.worker_count();
        tracing::info!(adapter = %adapter.name, backend = %adapter.backend, kind = %adapter.device_type, workers = count, "renderer adapter");
        let workers = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..count).map(|_| s.spawn(|| Worker::new(settings.clone(), &adapter))).collect();
            handles.into_iter().map(join_worker).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(Self { workers, settings, adapter })
    }

    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Render workers (Bevy apps) this renderer runs side by side.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Renders the scenes; frame `i` shows `scenes[i]`. Each worker draws a contiguous
    /// share of the scenes, `scenes_per_frame` at a time.
    pub fn render(&mut self, scenes: &[SceneDescription]) -> Result<Vec<Frame>, RenderError> {
        let shares = shares(scenes.len(), self.workers.len());
        if let [only] = shares.as_slice() {
            return self.workers[0].render(&scenes[only.clone()]);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .zip(shares)
                .map(|(worker, share)| s.spawn(move || worker.render(&scenes[share])))
                .collect();
            let mut frames = Vec::with_capacity(scenes.len());
            for handle in handles {
                frames.extend(join_worker(handle)??);
            }
            Ok(frames)
        })
    }

    /// Entities alive in the workers' main worlds (for leak checks).
    pub fn entity_count(&self) -> usize {
        self.workers.iter().map(Worker::entity_count).sum()
    }

    /// Meshes and materials alive in the workers' apps (for leak checks).
    pub fn asset_count(&self) -> usize {
        self.workers.iter().map(Worker::asset_count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_cover_every_scene_once_in_order_and_differ_by_at_most_one() {
        for len in 0..40 {
            for parts in 1..6 {
                let ranges = shares(len, parts);
                let flat: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..len).collect::<Vec<_>>(), "{len} in {parts}");
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let (lo, hi) = (sizes.iter().min().copied(), sizes.iter().max().copied());
                assert!(hi.zip(lo).is_none_or(|(hi, lo)| hi - lo <= 1), "{sizes:?}");
                assert!(ranges.len() <= parts);
            }
        }
    }
}
