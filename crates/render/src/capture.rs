//! The render-world side of a frame: right after the render graph ran, every requested
//! target is copied to a buffer and read back, with the generation of each slot's scene
//! and whether every pipeline was ready (the renderer's readiness gate).

use std::sync::{Arc, Mutex, PoisonError};

use bevy::prelude::*;
use bevy::render::extract_resource::ExtractResource;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CachedPipelineState, CommandEncoderDescriptor, Extent3d, MapMode,
    PipelineCache, PollType, TexelCopyBufferInfo, TexelCopyBufferLayout,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::shader::ShaderCacheError;

use crate::error::RenderError;
use crate::frame::padded_row;

/// What the main world asks the render world to copy this frame, one entry per slot.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
pub(crate) struct CaptureRequest {
    pub(crate) slots: Vec<SlotTargets>,
}

#[derive(Clone, Debug)]
pub(crate) struct SlotTargets {
    pub(crate) rgb: AssetId<Image>,
    pub(crate) label: AssetId<Image>,
    pub(crate) generation: u64,
}

/// One frame's copies, handed from the render world to the renderer.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) generations: Vec<u64>,
    pub(crate) ready: bool,
    pub(crate) failure: Option<RenderError>,
    pub(crate) images: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Resource, Clone, Default)]
pub(crate) struct CaptureSink(pub(crate) Arc<Mutex<Vec<Captured>>>);

/// Copies the requested targets right after the render graph ran and waits for them.
pub(crate) fn capture_targets(
    request: Option<Res<CaptureRequest>>,
    images: Res<RenderAssets<GpuImage>>,
    pipelines: Res<PipelineCache>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    sink: Res<CaptureSink>,
    mut buffers: Local<Vec<Buffer>>,
) {
    let Some(request) = request else { return };
    if request.slots.is_empty() {
        return;
    }
    let mut out = Captured { generations: request.slots.iter().map(|s| s.generation).collect(), ..default() };
    let mut ready = true;
    for pipeline in pipelines.pipelines() {
        match &pipeline.state {
            CachedPipelineState::Ok(_) => {}
            // Shaders still loading: retried by the cache, so only not ready yet.
            CachedPipelineState::Err(
                ShaderCacheError::ShaderNotLoaded(_) | ShaderCacheError::ShaderImportNotYetAvailable,
            )
            | CachedPipelineState::Queued
            | CachedPipelineState::Creating(_) => ready = false,
            CachedPipelineState::Err(e) => out.failure = Some(RenderError::Pipeline(e.to_string())),
        }
    }
    let targets: Vec<&GpuImage> =
        request.slots.iter().flat_map(|s| [s.rgb, s.label]).filter_map(|id| images.get(id)).collect();
    if targets.len() != request.slots.len() * 2 {
        return;
    }
    // Each target's copy: padded bytes per row (wgpu wants multiples of 256) and extent.
    let copies: Vec<(u32, Extent3d)> = targets
        .iter()
        .map(|t| {
            let size = t.texture_descriptor.size;
            let bytes = t.texture_descriptor.format.block_copy_size(None).unwrap_or(4);
            let extent = Extent3d { width: size.width, height: size.height, depth_or_array_layers: 1 };
            (padded_row(size.width, bytes) as u32, extent)
        })
        .collect();
    let sizes: Vec<u64> =
        copies.iter().map(|(row, extent)| u64::from(*row) * u64::from(extent.height)).collect();
    if buffers.len() != targets.len() || buffers.iter().zip(&sizes).any(|(b, s)| b.size() != *s) {
        *buffers = sizes
            .iter()
            .map(|&size| {
                device.create_buffer(&BufferDescriptor {
                    label: Some("l2s capture"),
                    size,
                    usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
    }
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor { label: Some("l2s capture") });
    for ((target, buffer), (row, extent)) in targets.iter().zip(buffers.iter()).zip(&copies) {
        encoder.copy_texture_to_buffer(
            target.texture.as_image_copy(),
            TexelCopyBufferInfo {
                buffer,
                layout: TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(*row), rows_per_image: None },
            },
            *extent,
        );
    }
    queue.submit([encoder.finish()]);
    let failed = Arc::new(Mutex::new(None::<String>));
    for buffer in buffers.iter() {
        let failed = failed.clone();
        buffer.slice(..).map_async(MapMode::Read, move |result| {
            if let Err(e) = result {
                *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            }
        });
    }
    if let Err(e) = device.poll(PollType::wait_indefinitely()) {
        out.failure = Some(RenderError::Readback(e.to_string()));
    }
    if let Some(e) = failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
        out.failure = Some(RenderError::Readback(e));
    }
    if out.failure.is_none() {
        let bytes: Vec<Vec<u8>> = buffers.iter().map(|b| b.slice(..).get_mapped_range().to_vec()).collect();
        for buffer in buffers.iter() {
            buffer.unmap();
        }
        // Targets were copied slot by slot, RGB then labels.
        let mut bytes = bytes.into_iter();
        while let (Some(rgb), Some(label)) = (bytes.next(), bytes.next()) {
            out.images.push((rgb, label));
        }
    }
    out.ready = ready;
    sink.0.lock().unwrap_or_else(PoisonError::into_inner).push(out);
}
