//! The interactive scene preview: a window showing one scene of the traffic simulator,
//! an orbit camera, keys that change ψ and draw a new seed, and a segmentation overlay
//! drawn by the same label materials the capture uses (in colour mode).
//!
//! It can also take a screenshot after a number of frames and exit, which is how CI
//! checks it under Xvfb.

use std::path::PathBuf;

use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, Exposure};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{PresentMode, WindowResolution};
use l2s_core::config::Validate;
use l2s_scene::{CarType, TrafficParams, Weather, sample_scene};

use crate::adapter::{probe_adapter, render_plugin};
use crate::error::RenderError;
use crate::labels::SemanticClass;
use crate::materials::{LabelOutput, SceneMaterialsPlugin, Shading, SharedAssets};
use crate::physics::{SettleConfig, settle_cars};
use crate::spawn::{self, MaterialCache, SceneLayers};

/// How to open the preview.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    pub params: TrafficParams,
    pub seed: u64,
    /// Start with the segmentation overlay shown.
    pub overlay: bool,
    /// Save a screenshot of the window after this many frames, then exit.
    pub screenshot: Option<(PathBuf, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(
        "no display to open the preview window on (DISPLAY and WAYLAND_DISPLAY are unset)\n  hint: run it in a desktop session, or headless under Xvfb: `xvfb-run -a l2s preview`"
    )]
    NoDisplay,
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("invalid scene parameters: {0}")]
    Params(#[from] l2s_core::InvalidField),
    #[error("the preview stopped with an error: {0}")]
    Failed(String),
}

const HELP: &str = "drag: orbit   wheel: zoom   arrows: move   R: reset view\n\
1-4: clear/overcast/rain/fog   Q/E: intensity   [ ]: road length   , .: traffic\n\
Z X C V B: only sedans/SUVs/vans/pickups/buses   M: mixed   N: new seed\n\
Tab: segmentation overlay   F12: screenshot   Esc: quit";

#[derive(Resource, Debug)]
struct PreviewState {
    params: TrafficParams,
    seed: u64,
    overlay: bool,
    dirty: bool,
    /// Put the orbit camera back on the scene's own camera at the next rebuild.
    reset_view: bool,
    root: Option<Entity>,
    screenshot: Option<(PathBuf, u32)>,
    frames_since_build: u32,
    shots: u32,
}

/// Orbit around `focus` at `distance`, `yaw` and `pitch` in radians.
#[derive(Component, Debug, Clone, Copy)]
struct Orbit {
    focus: Vec3,
    yaw: f32,
    pitch: f32,
    distance: f32,
}

impl Orbit {
    /// The orbit that reproduces the scene camera's view, focused 20 m ahead.
    fn from_view(view: &Transform) -> Self {
        let forward = view.forward().as_vec3();
        let distance = 20.0;
        let back = -forward;
        Self {
            focus: view.translation + forward * distance,
            yaw: back.x.atan2(back.z),
            pitch: -back.y.asin(),
            distance,
        }
    }

    fn transform(&self) -> Transform {
        let rotation = Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0);
        Transform::from_translation(self.focus + rotation * Vec3::new(0.0, 0.0, self.distance))
            .looking_at(self.focus, Vec3::Y)
    }
}

#[derive(Component)]
struct SceneCamera;

#[derive(Component)]
struct OverlayCamera;

#[derive(Component)]
struct Sun;

#[derive(Component)]
struct HelpText;

const RGB_LAYER: usize = 1;
const LABEL_LAYER: usize = 2;

/// Opens the window and runs until it is closed (or the screenshot is taken).
pub fn run_preview(options: PreviewOptions) -> Result<(), PreviewError> {
    options.params.validate()?;
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(PreviewError::NoDisplay);
    }
    let adapter = probe_adapter()?;
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "l2s preview".into(),
                    resolution: WindowResolution::new(1024, 640),
                    present_mode: PresentMode::AutoVsync,
                    ..default()
                }),
                ..default()
            })
            .set(render_plugin(&adapter))
            .disable::<bevy::log::LogPlugin>(),
    );
    app.add_plugins(SceneMaterialsPlugin);
    app.insert_resource(LabelOutput::Colours { opacity_percent: 55 });
    app.insert_resource(PreviewState {
        params: options.params,
        seed: options.seed,
        overlay: options.overlay,
        dirty: true,
        reset_view: true,
        root: None,
        screenshot: options.screenshot,
        frames_since_build: 0,
        shots: 0,
    });
    app.add_systems(Startup, setup);
    app.add_systems(Update, (keys, orbit, rebuild, help, screenshot).chain());
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(PreviewError::Failed(format!("exit code {code}"))),
    }
}

fn setup(mut commands: Commands) {
    commands.init_resource::<SharedAssets>();
    commands.init_resource::<MaterialCache>();
    commands.spawn((
        Camera3d::default(),
        Camera { order: 0, ..default() },
        Tonemapping::AcesFitted,
        Exposure { ev100: Exposure::EV100_SUNLIGHT },
        Shading::default().shadow_filter(),
        RenderLayers::layer(RGB_LAYER),
        Orbit { focus: Vec3::new(0.0, 0.0, 20.0), yaw: std::f32::consts::PI, pitch: -0.2, distance: 20.0 },
        SceneCamera,
        // The help text stays on this camera when the overlay camera is off.
        IsDefaultUiCamera,
    ));
    let sky = SemanticClass::Sky.colour();
    commands.spawn((
        Camera3d::default(),
        Camera {
            order: 1,
            is_active: false,
            clear_color: ClearColorConfig::Custom(Color::srgba_u8(sky[0], sky[1], sky[2], 140)),
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            ..default()
        },
        Msaa::Off,
        Tonemapping::None,
        DebandDither::Disabled,
        RenderLayers::layer(LABEL_LAYER),
        OverlayCamera,
    ));
    commands.spawn((DirectionalLight::default(), spawn::sun_cascades(), RenderLayers::layer(RGB_LAYER), Sun));
    commands.spawn((
        Text::new(HELP),
        TextFont::from_font_size(13.0),
        TextColor(Color::WHITE),
        Node { position_type: PositionType::Absolute, top: px(8), left: px(8), ..default() },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        HelpText,
    ));
}

/// A key's change to ψ.
type ParamStep = fn(&mut TrafficParams);

/// The scene camera (which orbits) and the overlay camera (which follows it).
type PreviewCameras = Or<(With<SceneCamera>, With<OverlayCamera>)>;

/// ψ with one change applied if it stays within bounds.
fn changed(params: &TrafficParams, change: impl FnOnce(&mut TrafficParams)) -> Option<TrafficParams> {
    let mut next = params.clone();
    change(&mut next);
    next.validate().ok().map(|()| next)
}

fn keys(
    input: Res<ButtonInput<KeyCode>>,
    mut state: ResMut<PreviewState>,
    mut exit: MessageWriter<AppExit>,
    mut commands: Commands,
) {
    let p = state.params.clone();
    let mut next: Option<TrafficParams> = None;
    let weathers = [
        (KeyCode::Digit1, Weather::Clear),
        (KeyCode::Digit2, Weather::Overcast),
        (KeyCode::Digit3, Weather::Rain),
        (KeyCode::Digit4, Weather::Fog),
    ];
    for (key, weather) in weathers {
        if input.just_pressed(key) {
            next = changed(&p, |q| q.weather = weather);
        }
    }
    let only = [KeyCode::KeyZ, KeyCode::KeyX, KeyCode::KeyC, KeyCode::KeyV, KeyCode::KeyB];
    for (i, key) in only.into_iter().enumerate() {
        if input.just_pressed(key) {
            next = changed(&p, |q| {
                q.car_type_weights = [0.01; 5];
                q.car_type_weights[i] = 1.0;
            });
        }
    }
    let steps: [(KeyCode, ParamStep); 7] = [
        (KeyCode::KeyM, |q| q.car_type_weights = [0.5; 5]),
        (KeyCode::KeyQ, |q| q.weather_intensity = (q.weather_intensity - 0.1).max(0.0)),
        (KeyCode::KeyE, |q| q.weather_intensity = (q.weather_intensity + 0.1).min(1.0)),
        (KeyCode::BracketLeft, |q| q.road_length -= 20.0),
        (KeyCode::BracketRight, |q| q.road_length += 20.0),
        (KeyCode::Comma, |q| q.cars_per_lane_100m -= 0.5),
        (KeyCode::Period, |q| q.cars_per_lane_100m += 0.5),
    ];
    for (key, step) in steps {
        if input.just_pressed(key) {
            next = changed(&p, step);
        }
    }
    if let Some(params) = next {
        state.params = params;
        state.dirty = true;
    }
    if input.just_pressed(KeyCode::KeyN) {
        state.seed = state.seed.wrapping_add(1);
        state.dirty = true;
    }
    if input.just_pressed(KeyCode::Tab) {
        state.overlay = !state.overlay;
    }
    if input.just_pressed(KeyCode::KeyR) {
        state.reset_view = true;
        state.dirty = true;
    }
    if input.just_pressed(KeyCode::F12) {
        state.shots += 1;
        let path = PathBuf::from(format!("preview-{:03}.png", state.shots));
        commands.spawn(Screenshot::primary_window()).observe(save_screenshot(path, false));
    }
    if input.just_pressed(KeyCode::Escape) {
        exit.write(AppExit::Success);
    }
}

fn orbit(
    buttons: Res<ButtonInput<MouseButton>>,
    input: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    time: Res<Time>,
    mut cameras: Query<(&mut Transform, Option<&mut Orbit>), PreviewCameras>,
) {
    let mut view = None;
    for (mut transform, orbit) in &mut cameras {
        let Some(mut orbit) = orbit else { continue };
        if buttons.pressed(MouseButton::Left) || buttons.pressed(MouseButton::Right) {
            orbit.yaw -= motion.delta.x * 0.005;
            orbit.pitch = (orbit.pitch - motion.delta.y * 0.005).clamp(-1.5, 0.3);
        }
        orbit.distance = (orbit.distance * (1.0 - scroll.delta.y * 0.1)).clamp(2.0, 400.0);
        let speed = 20.0 * time.delta_secs();
        let forward = Vec3::new(-orbit.yaw.sin(), 0.0, -orbit.yaw.cos());
        let right = Vec3::new(-forward.z, 0.0, forward.x);
        for (key, direction) in [
            (KeyCode::ArrowUp, forward),
            (KeyCode::ArrowDown, -forward),
            (KeyCode::ArrowRight, -right),
            (KeyCode::ArrowLeft, right),
        ] {
            if input.pressed(key) {
                orbit.focus += direction * speed;
            }
        }
        *transform = orbit.transform();
        view = Some(*transform);
    }
    if let Some(view) = view {
        for (mut transform, orbit) in &mut cameras {
            if orbit.is_none() {
                *transform = view;
            }
        }
    }
}

/// Rebuilds the scene after ψ or the seed changed: the same spawn code as the capture.
fn rebuild(world: &mut World) {
    world.resource_scope(|world, mut state: Mut<PreviewState>| {
        state.frames_since_build += 1;
        if let Some(mut camera) =
            world.query_filtered::<&mut Camera, With<OverlayCamera>>().iter_mut(world).next()
        {
            camera.is_active = state.overlay;
        }
        if !state.dirty {
            return;
        }
        state.dirty = false;
        state.frames_since_build = 0;
        if let Some(root) = state.root.take() {
            world.despawn(root);
        }
        let Ok(scene) = sample_scene(&state.params, state.seed) else { return };
        let poses = settle_cars(&scene, SettleConfig::default());
        let layers = SceneLayers {
            rgb: RenderLayers::layer(RGB_LAYER),
            label: Some(RenderLayers::layer(LABEL_LAYER)),
        };
        state.root = Some(spawn::spawn_scene(world, &scene, &poses, &layers));
        let reset_view = std::mem::take(&mut state.reset_view);
        let cameras: Vec<Entity> = world.query_filtered::<Entity, With<SceneCamera>>().iter(world).collect();
        for entity in cameras {
            let mut camera = world.entity_mut(entity);
            camera.insert(spawn::projection(&scene));
            spawn::dress_rgb_camera(&mut camera, &scene);
            if reset_view && let Some(mut orbit) = camera.get_mut::<Orbit>() {
                *orbit = Orbit::from_view(&spawn::camera_transform(&scene));
            }
        }
        let overlay: Vec<Entity> =
            world.query_filtered::<Entity, With<OverlayCamera>>().iter(world).collect();
        for entity in overlay {
            world.entity_mut(entity).insert(spawn::projection(&scene));
        }
        let suns: Vec<Entity> = world.query_filtered::<Entity, With<Sun>>().iter(world).collect();
        for entity in suns {
            world.entity_mut(entity).insert(spawn::sun(&scene, true));
        }
    });
}

fn help(state: Res<PreviewState>, mut text: Query<&mut Text, With<HelpText>>) {
    if !state.is_changed() {
        return;
    }
    let p = &state.params;
    let weights: Vec<String> =
        CarType::ALL.iter().zip(p.car_type_weights).map(|(k, w)| format!("{} {w:.2}", k.name())).collect();
    let status = format!(
        "seed {}   {} {:.1}   road {:.0} m   {:.1} cars/lane/100 m   overlay {}\n{}",
        state.seed,
        p.weather.name(),
        p.weather_intensity,
        p.road_length,
        p.cars_per_lane_100m,
        if state.overlay { "on" } else { "off" },
        weights.join("  "),
    );
    for mut t in &mut text {
        *t = Text::new(format!("{HELP}\n\n{status}"));
    }
}

/// Takes the requested automatic screenshot once the scene has been drawn for a while.
fn screenshot(mut state: ResMut<PreviewState>, mut commands: Commands, mut exit: MessageWriter<AppExit>) {
    let Some((path, after)) = state.screenshot.clone() else { return };
    if state.frames_since_build == after {
        commands.spawn(Screenshot::primary_window()).observe(save_screenshot(path, true));
    }
    if state.frames_since_build > after + 600 {
        tracing::error!("no screenshot arrived 600 frames after it was requested");
        exit.write(AppExit::error());
        state.screenshot = None;
    }
}

fn save_screenshot(
    path: PathBuf,
    then_exit: bool,
) -> impl FnMut(On<ScreenshotCaptured>, MessageWriter<AppExit>) {
    move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
        let saved = captured
            .image
            .clone()
            .try_into_dynamic()
            .map_err(|e| e.to_string())
            .and_then(|image| image.to_rgb8().save(&path).map_err(|e| e.to_string()));
        match saved {
            Ok(()) => tracing::info!(path = %path.display(), "screenshot saved"),
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot save the screenshot: {e}");
                if then_exit {
                    exit.write(AppExit::error());
                }
                return;
            }
        }
        if then_exit {
            exit.write(AppExit::Success);
        }
    }
}
