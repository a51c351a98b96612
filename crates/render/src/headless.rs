//! Headless rendering as a library call: [`Renderer::render`] turns scene descriptions
//! into [`Frame`]s in memory.
//!
//! The renderer owns a Bevy app that it steps itself (no window, no winit, no pipelined
//! rendering). Each frame draws up to `scenes_per_frame` scenes side by side, each on its
//! own render layers with its own RGB and label cameras and sun. Right after the render
//! graph has run, a render-world system copies every target to a buffer, waits for the
//! copy and hands the bytes over with the generation of each slot's scene and whether
//! every pipeline was ready. That is the readiness gate: a frame is accepted only if all
//! pipelines existed when it was drawn and it shows the scenes that were asked for.

use std::sync::{Arc, Mutex, PoisonError};

use bevy::app::{PluginsState, SubApps, TerminalCtrlCHandlerPlugin};
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{Exposure, Hdr, RenderTarget};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::light::{CascadeShadowConfigBuilder, DirectionalLightShadowMap};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::extract_resource::{ExtractResource, ExtractResourcePlugin};
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CachedPipelineState, CommandEncoderDescriptor, Extent3d, MapMode,
    PipelineCache, PollType, TexelCopyBufferInfo, TexelCopyBufferLayout, TextureFormat, TextureUsages,
};
use bevy::render::renderer::{RenderDevice, RenderQueue, render_system};
use bevy::render::settings::{WgpuSettings, WgpuSettingsPriority};
use bevy::render::texture::GpuImage;
use bevy::render::{Render, RenderApp, RenderPlugin, RenderSystems};
use bevy::shader::ShaderCacheError;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use l2s_scene::SceneDescription;
use serde::{Deserialize, Serialize};

use crate::frame::{self, Frame, LabelError, padded_row};
use crate::labels::SemanticClass;
use crate::materials::{SceneMaterialsPlugin, Shading, SharedAssets};
use crate::physics::{SettleConfig, settle_cars};
use crate::spawn::{self, SceneLayers};

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
        Ok(())
    }
}

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
    #[error("label readback is not exact for scene seed {seed}: {source}")]
    Labels { seed: u64, source: LabelError },
}

/// The graphics adapter the renderer runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    /// "Cpu" for software renderers such as lavapipe.
    pub device_type: String,
}

/// The first adapter wgpu would pick, or [`RenderError::NoAdapter`].
pub fn probe_adapter() -> Result<AdapterSummary, RenderError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = bevy::tasks::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Hardware first, as Bevy's high-performance preference does.
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    adapters
        .iter()
        .map(|a| a.get_info())
        .min_by_key(|info| rank(info.device_type))
        .map(|info| AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
        })
        .ok_or(RenderError::NoAdapter)
}

/// Bevy's render plugin for `adapter`: pipelines compile synchronously (ready on the frame
/// that needs them); on a software adapter (lavapipe) with WebGL2-level limits, which makes
/// Bevy build mesh instance data and light clusters on the CPU instead of in many small
/// compute passes: 31 → 38 labelled frames/s at 256x256 (BENCHMARKS.md).
pub(crate) fn render_plugin(adapter: &AdapterSummary) -> RenderPlugin {
    let settings = if adapter.device_type == "Cpu" {
        WgpuSettings { priority: WgpuSettingsPriority::WebGL2, ..default() }
    } else {
        WgpuSettings::default()
    };
    RenderPlugin { synchronous_pipeline_compilation: true, render_creation: settings.into(), ..default() }
}

/// What the main world asks the render world to copy this frame, one entry per slot.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
struct CaptureRequest {
    slots: Vec<SlotTargets>,
}

#[derive(Clone, Debug)]
struct SlotTargets {
    rgb: AssetId<Image>,
    label: AssetId<Image>,
    generation: u64,
}

/// One frame's copies, handed from the render world to the renderer.
#[derive(Debug, Default)]
struct Captured {
    generations: Vec<u64>,
    ready: bool,
    failure: Option<RenderError>,
    images: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Resource, Clone, Default)]
struct CaptureSink(Arc<Mutex<Vec<Captured>>>);

/// Copies the requested targets right after the render graph ran and waits for them.
fn capture_targets(
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

/// Per-slot cameras, sun and targets; slot `i` uses layers 2i + 1 (RGB) and 2i + 2 (labels).
#[derive(Debug)]
struct Slot {
    rgb_camera: Entity,
    label_camera: Entity,
    sun: Entity,
    rgb: Handle<Image>,
    label: Handle<Image>,
    layers: SceneLayers,
    root: Option<Entity>,
}

/// Renders scene descriptions headless into [`Frame`]s, reusing one Bevy app.
pub struct Renderer {
    /// The app's main and render worlds, stepped by hand (an `App` itself is not `Send`).
    apps: SubApps,
    settings: RenderSettings,
    slots: Vec<Slot>,
    sink: CaptureSink,
    next_generation: u64,
    adapter: AdapterSummary,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").field("settings", &self.settings).field("adapter", &self.adapter).finish()
    }
}

/// Updates a frame may take before it is given up: shaders load in the first few.
const MAX_UPDATES: u32 = 120;

fn target_image(images: &mut Assets<Image>, width: u32, height: u32, format: TextureFormat) -> Handle<Image> {
    let mut image = Image::new_target_texture(width, height, format, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    images.add(image)
}

impl Renderer {
    /// Builds the app on the best adapter (a hardware GPU when there is one).
    pub fn new(settings: RenderSettings) -> Result<Self, RenderError> {
        l2s_core::config::Validate::validate(&settings)?;
        let adapter = probe_adapter()?;
        tracing::info!(adapter = %adapter.name, backend = %adapter.backend, kind = %adapter.device_type, "renderer adapter");
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(render_plugin(&adapter))
                .disable::<WinitPlugin>()
                .disable::<PipelinedRenderingPlugin>()
                .disable::<TerminalCtrlCHandlerPlugin>()
                .disable::<LogPlugin>(),
        );
        app.add_plugins((SceneMaterialsPlugin, ExtractResourcePlugin::<CaptureRequest>::default()));
        app.insert_resource(settings.shading);
        app.insert_resource(DirectionalLightShadowMap { size: 1024 });
        app.init_resource::<CaptureRequest>();
        let sink = CaptureSink::default();
        if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
            render_app.insert_resource(sink.clone());
            render_app
                .add_systems(Render, capture_targets.in_set(RenderSystems::Render).after(render_system));
        }
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        app.init_resource::<SharedAssets>();
        app.init_resource::<spawn::MaterialCache>();
        let apps = std::mem::take(app.sub_apps_mut());
        let mut renderer = Self { apps, settings, slots: Vec::new(), sink, next_generation: 1, adapter };
        for index in 0..renderer.settings.scenes_per_frame {
            let slot = renderer.spawn_slot(index as usize);
            renderer.slots.push(slot);
        }
        Ok(renderer)
    }

    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    fn spawn_slot(&mut self, index: usize) -> Slot {
        let (w, h) = (self.settings.width, self.settings.height);
        let world = self.apps.main.world_mut();
        let (rgb, label) = {
            let mut images = world.resource_mut::<Assets<Image>>();
            (
                target_image(&mut images, w, h, TextureFormat::Rgba8UnormSrgb),
                target_image(&mut images, w, h, TextureFormat::Rgba16Float),
            )
        };
        let layers = SceneLayers {
            rgb: RenderLayers::layer(2 * index + 1),
            label: RenderLayers::layer(2 * index + 2),
        };
        let order = 2 * index as isize;
        let rgb_camera = world
            .spawn((
                Camera3d::default(),
                Camera { order, is_active: false, ..default() },
                RenderTarget::from(rgb.clone()),
                if self.settings.antialias { Msaa::Sample4 } else { Msaa::Off },
                Tonemapping::AcesFitted,
                Exposure { ev100: Exposure::EV100_SUNLIGHT },
                self.settings.shading.shadow_filter(),
                layers.rgb.clone(),
            ))
            .id();
        let sky = SemanticClass::Sky.id();
        let label_camera = world
            .spawn((
                Camera3d::default(),
                Camera {
                    order: order + 1,
                    is_active: false,
                    clear_color: ClearColorConfig::Custom(Color::LinearRgba(LinearRgba::new(
                        f32::from(sky),
                        0.0,
                        0.0,
                        0.0,
                    ))),
                    ..default()
                },
                RenderTarget::from(label.clone()),
                Hdr,
                Msaa::Off,
                Tonemapping::None,
                DebandDither::Disabled,
                layers.label.clone(),
            ))
            .id();
        let sun = world
            .spawn((
                DirectionalLight { shadow_maps_enabled: self.settings.shadows, ..default() },
                CascadeShadowConfigBuilder {
                    num_cascades: 1,
                    minimum_distance: 0.1,
                    maximum_distance: 80.0,
                    first_cascade_far_bound: 80.0,
                    overlap_proportion: 0.2,
                }
                .build(),
                layers.rgb.clone(),
            ))
            .id();
        Slot { rgb_camera, label_camera, sun, rgb, label, layers, root: None }
    }

    /// Renders the scenes in order; each frame holds up to `scenes_per_frame` of them.
    pub fn render(&mut self, scenes: &[SceneDescription]) -> Result<Vec<Frame>, RenderError> {
        let mut frames = Vec::with_capacity(scenes.len());
        let per_frame = self.slots.len();
        for chunk in scenes.chunks(per_frame) {
            frames.extend(self.render_chunk(chunk)?);
        }
        Ok(frames)
    }

    fn render_chunk(&mut self, chunk: &[SceneDescription]) -> Result<Vec<Frame>, RenderError> {
        let settle = SettleConfig { steps: self.settings.settle_steps, ..SettleConfig::default() };
        let poses: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> =
                chunk.iter().map(|scene| s.spawn(move || settle_cars(scene, settle))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut request = CaptureRequest::default();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let world = self.apps.main.world_mut();
            if let Some(root) = slot.root.take() {
                world.despawn(root);
            }
            let Some(scene) = chunk.get(index) else {
                for camera in [slot.rgb_camera, slot.label_camera] {
                    if let Some(mut c) = world.get_mut::<Camera>(camera) {
                        c.is_active = false;
                    }
                }
                continue;
            };
            slot.root = Some(spawn::spawn_scene(world, scene, &poses[index], &slot.layers));
            let view = spawn::camera_transform(scene);
            let projection = spawn::projection(scene);
            for camera in [slot.rgb_camera, slot.label_camera] {
                let mut entity = world.entity_mut(camera);
                entity.insert((view, projection.clone()));
                if let Some(mut c) = entity.get_mut::<Camera>() {
                    c.is_active = true;
                }
            }
            spawn::dress_rgb_camera(&mut world.entity_mut(slot.rgb_camera), scene);
            world.entity_mut(slot.sun).insert(spawn::sun(scene, self.settings.shadows));
            request.slots.push(SlotTargets {
                rgb: slot.rgb.id(),
                label: slot.label.id(),
                generation: self.next_generation,
            });
            self.next_generation += 1;
        }
        let wanted: Vec<u64> = request.slots.iter().map(|s| s.generation).collect();
        self.apps.main.insert_resource(request);
        for _ in 0..MAX_UPDATES {
            self.apps.update();
            let captured = std::mem::take(&mut *self.sink.0.lock().unwrap_or_else(PoisonError::into_inner));
            for capture in captured {
                if let Some(failure) = capture.failure {
                    return Err(failure);
                }
                if capture.ready && capture.generations == wanted {
                    let frames = self.decode(chunk, &poses, capture.images);
                    self.apps.main.insert_resource(CaptureRequest::default());
                    return frames;
                }
            }
        }
        Err(RenderError::NotReady(MAX_UPDATES))
    }

    fn decode(
        &self,
        chunk: &[SceneDescription],
        poses: &[Vec<crate::physics::CarPose>],
        images: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<Frame>, RenderError> {
        let (w, h) = (self.settings.width, self.settings.height);
        chunk
            .iter()
            .zip(poses)
            .zip(images)
            .map(|((scene, poses), (rgb, label))| {
                let wrap = |source| RenderError::Labels { seed: scene.seed, source };
                let rgb = frame::decode_rgb(&rgb, w, h).map_err(wrap)?;
                let maps = frame::decode_labels(&label, w, h, scene).map_err(wrap)?;
                let cars = frame::visible_cars(&maps.instances, w, scene, self.settings.min_visible_pixels);
                let counts = frame::count_by_type(&cars);
                Ok(Frame {
                    width: w,
                    height: h,
                    rgb,
                    classes: maps.classes,
                    instances: maps.instances,
                    depth: maps.depth,
                    cars,
                    counts,
                    scene: scene.clone(),
                    poses: poses.clone(),
                })
            })
            .collect()
    }

    /// Entities alive in the app's main world (for leak checks).
    pub fn entity_count(&self) -> usize {
        self.apps.main.world().entities().count_spawned() as usize
    }

    /// Meshes and materials alive in the app (for leak checks).
    pub fn asset_count(&self) -> usize {
        let world = self.apps.main.world();
        world.resource::<Assets<Mesh>>().len()
            + world.resource::<Assets<StandardMaterial>>().len()
            + world.resource::<Assets<crate::materials::LabelMaterial>>().len()
            + world.resource::<Assets<crate::materials::FastLitMaterial>>().len()
    }
}
