//! One render worker: a Bevy app that turns scene descriptions into [`Frame`]s in memory.
//! [`crate::Renderer`] runs several of them side by side.
//!
//! The worker owns a Bevy app that it steps itself (no window, no winit, no pipelined
//! rendering, every system on the stepping thread). Each frame draws up to
//! `scenes_per_frame` scenes side by side, each on its own render layers with its own RGB
//! camera, label image and sun; the RGB camera's pass writes the labels too
//! ([`crate::labelled_pass`]), or, where it cannot, a label camera of the slot draws them.
//! Right after the render graph has run, a render-world system
//! copies every target to a buffer, waits for the copy and hands the bytes over with the
//! generation of each slot's scene and whether every pipeline was ready. That is the
//! readiness gate: a frame is accepted only if all pipelines existed when it was drawn and
//! it shows the scenes that were asked for.

use std::sync::PoisonError;

use bevy::app::{PluginsState, SubApps, TerminalCtrlCHandlerPlugin};
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{Exposure, Hdr, RenderTarget};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::light::cluster::{ClusterConfig, GlobalClusterSettings};
use bevy::light::{Cascades, DirectionalLightShadowMap, SimulationLightSystems};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::batching::gpu_preprocessing::GpuPreprocessingSupport;
use bevy::render::camera::CameraRenderGraph;
use bevy::render::extract_resource::ExtractResourcePlugin;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::renderer::render_system;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use l2s_scene::SceneDescription;

use crate::adapter::{AdapterSummary, render_plugin};
use crate::capture::{CaptureRequest, CaptureSink, SlotTargets, capture_targets};
use crate::error::{RenderError, panic_message};
use crate::frame::{self, Frame};
use crate::labelled_pass::{LabelTarget, LabelledCore3d, LabelledPassPlugin};
use crate::labels::SemanticClass;
use crate::materials::{LABEL_FORMAT, SceneMaterialsPlugin, Shading, SharedAssets};
use crate::physics::{CarPose, SettleConfig, settle_cars};
use crate::settings::RenderSettings;
use crate::spawn::{self, SceneLayers};

/// Per-slot cameras, sun and targets; slot `i` uses layers 2i + 1 (RGB) and 2i + 2 (labels,
/// when it has a label camera: see [`Worker::labels_in_rgb_pass`]).
#[derive(Debug)]
struct Slot {
    rgb_camera: Entity,
    label_camera: Option<Entity>,
    sun: Entity,
    rgb: Handle<Image>,
    label: Handle<Image>,
    layers: SceneLayers,
    root: Option<Entity>,
}

/// Renders scene descriptions headless into [`Frame`]s, reusing one Bevy app.
pub(crate) struct Worker {
    /// The app's main and render worlds, stepped by hand (an `App` itself is not `Send`).
    apps: SubApps,
    settings: RenderSettings,
    slots: Vec<Slot>,
    sink: CaptureSink,
    next_generation: u64,
}

/// Every scene's settled cars, one thread per scene. A thread that panics fails the
/// frame: its scene would otherwise render without its cars.
fn settle_scenes(
    chunk: &[SceneDescription],
    settle: impl Fn(&SceneDescription) -> Vec<CarPose> + Sync,
) -> Result<Vec<Vec<CarPose>>, RenderError> {
    std::thread::scope(|s| {
        let settle = &settle;
        let handles: Vec<_> =
            chunk.iter().map(|scene| (scene.seed, s.spawn(move || settle(scene)))).collect();
        handles
            .into_iter()
            .map(|(seed, handle)| {
                handle
                    .join()
                    .map_err(|payload| RenderError::Physics { seed, message: panic_message(&*payload) })
            })
            .collect()
    })
}

/// Drops each sun's shadow cascades for the cameras of other slots. Bevy builds a cascade of
/// every sun for every active camera (8 suns × 8 or 16 cameras a frame) and tests every shadow
/// caster against each, but draws only those whose render layers meet the camera's: the
/// sun's own RGB camera. The shadows drawn are the same.
fn keep_own_cascades(
    cameras: Query<&RenderLayers, With<Camera>>,
    mut suns: Query<(&RenderLayers, &mut Cascades), With<DirectionalLight>>,
) {
    for (layers, mut cascades) in &mut suns {
        cascades.cascades.retain(|view, _| cameras.get(*view).is_ok_and(|camera| camera.intersects(layers)));
    }
}

/// Makes every schedule of `world` run its systems one after the other on the thread that
/// steps the app. The renderer already runs one worker per core; Bevy's multi-threaded
/// executor only added hand-offs to its task pool, which the workers share (BENCHMARKS.md,
/// "Renderer"). The frames are the same to the byte either way.
fn run_systems_on_this_thread(world: &mut World) {
    if let Some(mut schedules) = world.get_resource_mut::<Schedules>() {
        for (_, schedule) in schedules.iter_mut() {
            schedule.set_executor(bevy::ecs::schedule::SingleThreadedExecutor::new());
        }
    }
}

/// Turns off Bevy's GPU light clustering, which it enables wherever compute shaders exist
/// (lavapipe too). The scenes have only the sun, which is never clustered, yet GPU
/// clustering created, zeroed and uploaded new buffers for every view of every frame (a
/// 256 KiB index list among them), and Bevy's `Core3d` schedule (label cameras) ran its
/// compute and raster passes. Clustered on the CPU, each view has one empty cluster
/// (`ClusterConfig::Single`); the frames are the same to the byte.
fn cluster_lights_on_the_cpu(world: &mut World) {
    if let Some(mut clusters) = world.get_resource_mut::<GlobalClusterSettings>() {
        clusters.gpu_clustering = None;
    }
}

/// Updates a frame may take before it is given up: shaders load in the first few.
const MAX_UPDATES: u32 = 120;

fn target_image(images: &mut Assets<Image>, width: u32, height: u32, format: TextureFormat) -> Handle<Image> {
    let mut image = Image::new_target_texture(width, height, format, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    images.add(image)
}

impl Worker {
    /// Builds the app on `adapter`, with validated `settings`.
    pub(crate) fn new(settings: RenderSettings, adapter: &AdapterSummary) -> Self {
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(render_plugin(adapter))
                .disable::<WinitPlugin>()
                .disable::<PipelinedRenderingPlugin>()
                .disable::<TerminalCtrlCHandlerPlugin>()
                .disable::<LogPlugin>(),
        );
        app.add_plugins((
            SceneMaterialsPlugin,
            LabelledPassPlugin,
            ExtractResourcePlugin::<CaptureRequest>::default(),
        ));
        app.add_systems(
            PostUpdate,
            keep_own_cascades
                .after(SimulationLightSystems::UpdateDirectionalLightCascades)
                .before(SimulationLightSystems::UpdateLightFrusta),
        );
        app.insert_resource(settings.shading);
        app.insert_resource(DirectionalLightShadowMap { size: settings.shadow_map_size() });
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
        cluster_lights_on_the_cpu(app.world_mut());
        run_systems_on_this_thread(app.world_mut());
        if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
            run_systems_on_this_thread(render_app.world_mut());
        }
        app.init_resource::<SharedAssets>();
        app.init_resource::<spawn::MaterialCache>();
        let labels_in_rgb_pass = Self::labels_in_rgb_pass(&app, &settings);
        tracing::debug!(labels_in_rgb_pass, "render worker");
        let apps = std::mem::take(app.sub_apps_mut());
        let mut worker = Self { apps, settings, slots: Vec::new(), sink, next_generation: 1 };
        for index in 0..worker.settings.scenes_per_frame {
            let slot = worker.spawn_slot(index as usize, labels_in_rgb_pass);
            worker.slots.push(slot);
        }
        worker
    }

    /// Whether the RGB cameras write the labels in their opaque pass
    /// ([`crate::labelled_pass`]) instead of a label camera drawing them: with `Fast`
    /// shading (the only material that writes labels), without MSAA (labels are never
    /// multisampled) and on devices that do not cull meshes on the GPU. Lavapipe does not;
    /// a GPU that does takes Bevy's indirect-drawing path, which the labelled schedule
    /// includes but which has not run on one yet (no GPU was at hand), so such a GPU keeps
    /// the label camera until it is checked.
    fn labels_in_rgb_pass(app: &App, settings: &RenderSettings) -> bool {
        let culls_on_gpu = app.get_sub_app(RenderApp).is_none_or(|render| {
            render
                .world()
                .get_resource::<GpuPreprocessingSupport>()
                .is_none_or(GpuPreprocessingSupport::is_culling_supported)
        });
        settings.shading == Shading::Fast && !settings.antialias && !culls_on_gpu
    }

    /// A slot's cameras, sun and targets. The cameras use one light cluster
    /// (`ClusterConfig::Single`): the scenes have only the sun, which is not clustered, so
    /// Bevy's default grid of 3,456 clusters a view only cost time to build and upload, for
    /// every view of every frame. The images are the same to the byte.
    fn spawn_slot(&mut self, index: usize, labels_in_rgb_pass: bool) -> Slot {
        let (w, h) = (self.settings.width, self.settings.height);
        let world = self.apps.main.world_mut();
        let (rgb, label) = {
            let mut images = world.resource_mut::<Assets<Image>>();
            (
                target_image(&mut images, w, h, TextureFormat::Rgba8UnormSrgb),
                target_image(&mut images, w, h, LABEL_FORMAT),
            )
        };
        let layers = SceneLayers {
            rgb: RenderLayers::layer(2 * index + 1),
            label: (!labels_in_rgb_pass).then(|| RenderLayers::layer(2 * index + 2)),
        };
        let order = 2 * index as isize;
        let sky = SemanticClass::Sky.id();
        let label_clear = LinearRgba::new(f32::from(sky), 0.0, 0.0, 0.0);
        let mut rgb_camera = world.spawn((
            Camera3d::default(),
            Camera { order, is_active: false, ..default() },
            RenderTarget::from(rgb.clone()),
            if self.settings.antialias { Msaa::Sample4 } else { Msaa::Off },
            Tonemapping::AcesFitted,
            Exposure { ev100: Exposure::EV100_SUNLIGHT },
            self.settings.shading.shadow_filter(),
            ClusterConfig::Single,
            layers.rgb.clone(),
        ));
        if labels_in_rgb_pass {
            rgb_camera.insert((
                CameraRenderGraph::new(LabelledCore3d),
                LabelTarget { image: label.clone(), clear: label_clear },
            ));
        }
        let rgb_camera = rgb_camera.id();
        let label_camera = layers.label.clone().map(|label_layer| {
            world
                .spawn((
                    Camera3d::default(),
                    Camera {
                        order: order + 1,
                        is_active: false,
                        clear_color: ClearColorConfig::Custom(Color::LinearRgba(label_clear)),
                        ..default()
                    },
                    RenderTarget::from(label.clone()),
                    Hdr,
                    Msaa::Off,
                    Tonemapping::None,
                    DebandDither::Disabled,
                    ClusterConfig::Single,
                    label_layer,
                ))
                .id()
        });
        let sun = world
            .spawn((
                DirectionalLight { shadow_maps_enabled: self.settings.shadows, ..default() },
                spawn::sun_cascades(),
                layers.rgb.clone(),
            ))
            .id();
        Slot { rgb_camera, label_camera, sun, rgb, label, layers, root: None }
    }

    /// Renders the scenes in order; each frame holds up to `scenes_per_frame` of them.
    ///
    /// The next frame's cars settle while the current frame is drawn: settling is a pure
    /// function of each scene, so the frames are the same as settling first.
    pub(crate) fn render(&mut self, scenes: &[SceneDescription]) -> Result<Vec<Frame>, RenderError> {
        let mut frames = Vec::with_capacity(scenes.len());
        let chunks: Vec<&[SceneDescription]> = scenes.chunks(self.slots.len()).collect();
        let settle = SettleConfig { steps: self.settings.settle_steps, ..SettleConfig::default() };
        let settle_chunk =
            move |chunk: &[SceneDescription]| settle_scenes(chunk, |scene| settle_cars(scene, settle));
        std::thread::scope(|s| {
            let mut next = chunks.first().map(|&chunk| s.spawn(move || settle_chunk(chunk)));
            for (i, &chunk) in chunks.iter().enumerate() {
                let Some(settling) = next.take() else { break };
                let poses = settling.join().unwrap_or_else(|payload| {
                    let seed = chunk.first().map_or(0, |scene| scene.seed);
                    Err(RenderError::Physics { seed, message: panic_message(&*payload) })
                })?;
                next = chunks.get(i + 1).map(|&chunk| s.spawn(move || settle_chunk(chunk)));
                frames.extend(self.render_chunk(chunk, &poses)?);
            }
            Ok(frames)
        })
    }

    fn render_chunk(
        &mut self,
        chunk: &[SceneDescription],
        poses: &[Vec<CarPose>],
    ) -> Result<Vec<Frame>, RenderError> {
        let mut request = CaptureRequest::default();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let world = self.apps.main.world_mut();
            if let Some(root) = slot.root.take() {
                world.despawn(root);
            }
            let Some(scene) = chunk.get(index) else {
                for camera in std::iter::once(slot.rgb_camera).chain(slot.label_camera) {
                    if let Some(mut c) = world.get_mut::<Camera>(camera) {
                        c.is_active = false;
                    }
                }
                continue;
            };
            slot.root = Some(spawn::spawn_scene(world, scene, &poses[index], &slot.layers));
            let view = spawn::camera_transform(scene);
            let projection = spawn::projection(scene);
            for camera in std::iter::once(slot.rgb_camera).chain(slot.label_camera) {
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
                    let frames = self.decode(chunk, poses, capture.images);
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
    pub(crate) fn entity_count(&self) -> usize {
        self.apps.main.world().entities().count_spawned() as usize
    }

    /// Meshes and materials alive in the app (for leak checks).
    pub(crate) fn asset_count(&self) -> usize {
        let world = self.apps.main.world();
        world.resource::<Assets<Mesh>>().len()
            + world.resource::<Assets<StandardMaterial>>().len()
            + world.resource::<Assets<crate::materials::LabelMaterial>>().len()
            + world.resource::<Assets<crate::materials::FastLitMaterial>>().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_scene::{TrafficParams, sample_scene};

    /// Falling back to the label camera changes no pixel, only the speed, so no frame test
    /// would notice it: this one does.
    #[test]
    fn lavapipe_draws_labels_in_the_rgb_pass_unless_shading_or_msaa_forbid_it() {
        let adapter = crate::adapter::probe_adapter().expect("an adapter (lavapipe in CI)");
        let label_cameras = |settings: RenderSettings| {
            let worker = Worker::new(
                RenderSettings { width: 32, height: 32, scenes_per_frame: 2, ..settings },
                &adapter,
            );
            worker.slots.iter().filter(|slot| slot.label_camera.is_some()).count()
        };
        if adapter.device_type == "Cpu" {
            assert_eq!(label_cameras(RenderSettings::default()), 0, "Fast shading, no MSAA: {adapter:?}");
        }
        assert_eq!(label_cameras(RenderSettings { antialias: true, ..RenderSettings::default() }), 2);
        assert_eq!(
            label_cameras(RenderSettings { shading: Shading::Standard, ..RenderSettings::default() }),
            2
        );
    }

    /// GPU clustering changes no pixel either (the scenes have no clustered light).
    #[test]
    fn lights_are_clustered_on_the_cpu() {
        let adapter = crate::adapter::probe_adapter().expect("an adapter (lavapipe in CI)");
        let mut worker = Worker::new(
            RenderSettings { width: 32, height: 32, scenes_per_frame: 1, ..RenderSettings::default() },
            &adapter,
        );
        let scene = sample_scene(&TrafficParams::default(), 5).expect("a scene");
        worker.render(&[scene]).expect("a frame");
        let render_world =
            worker.apps.sub_apps.get(&bevy::app::AppLabel::intern(&RenderApp)).expect("a render app").world();
        let clusters = render_world.resource::<GlobalClusterSettings>();
        assert!(clusters.gpu_clustering.is_none(), "{clusters:?}");
    }

    #[test]
    fn a_panicking_settling_thread_fails_the_frame_and_names_its_scene() {
        let scenes: Vec<SceneDescription> =
            (0..3).map(|seed| sample_scene(&TrafficParams::default(), seed).expect("a scene")).collect();
        let broken = scenes[1].seed;
        let err = settle_scenes(&scenes, |scene| {
            assert_ne!(scene.seed, broken, "rapier gave up");
            Vec::new()
        })
        .expect_err("a settling thread panicked");
        let text = err.to_string();
        assert!(text.contains(&format!("scene seed {broken}")) && text.contains("rapier gave up"), "{text}");

        let poses =
            settle_scenes(&scenes, |scene| settle_cars(scene, SettleConfig::default())).expect("settles");
        let cars: Vec<usize> = scenes.iter().map(|s| s.cars.len()).collect();
        assert_eq!(poses.iter().map(Vec::len).collect::<Vec<_>>(), cars, "one pose per car, scene by scene");
    }
}
