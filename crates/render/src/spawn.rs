//! Scene description → Bevy entities. With a label layer, every visible thing is spawned
//! twice, on two render layers: once with a lit material for the RGB camera and once with
//! a [`crate::materials::LabelMaterial`] for the label camera, sharing one mesh, so the two
//! images align pixel for pixel. Without one, it is spawned once with a labelled
//! [`FastLitMaterial`], and the RGB camera's pass writes the labels too
//! ([`crate::labelled_pass`]).
//!
//! Static parts (terrain, road, sidewalks, markings, houses) are merged into one mesh per
//! semantic class; each car is its own entity so it gets its own instance id.

use bevy::camera::visibility::RenderLayers;
use std::collections::HashMap;

use bevy::light::{CascadeShadowConfig, CascadeShadowConfigBuilder, NotShadowCaster};
use bevy::mesh::MeshTag;
use bevy::prelude::*;
use l2s_core::SeedTree;
use l2s_scene::{House, RoofKind, SceneDescription, Weather, WeatherState};
use rand::Rng;

use crate::geometry::Geometry;
use crate::labels::SemanticClass;
use crate::materials::{FastLitMaterial, Shading, SharedAssets, tint_tag};
use crate::physics::CarPose;

/// Road and terrain extend this far behind the camera, metres.
const BEHIND: f32 = 30.0;
/// Half the side of the terrain square, metres.
const TERRAIN_HALF: f32 = 600.0;

/// The merged static geometry of one scene, one entry per semantic class, plus rain.
#[derive(Debug, Clone, Default)]
pub struct SceneGeometry {
    pub terrain: Geometry,
    pub road: Geometry,
    pub sidewalks: Geometry,
    pub markings: Geometry,
    pub buildings: Geometry,
    /// Rain streaks: drawn in the RGB image only, never labelled.
    pub rain: Geometry,
}

fn rgba(c: [f32; 3]) -> [f32; 4] {
    [c[0], c[1], c[2], 1.0]
}

/// Builds the static geometry of `scene`; rain positions come from the scene's seed.
pub fn scene_geometry(scene: &SceneDescription) -> SceneGeometry {
    let road = &scene.road;
    let length = road.length as f32;
    let half = road.half_width() as f32;
    let sidewalk = road.sidewalk_width as f32;
    let wet = scene.weather.wetness as f32;
    let mut g = SceneGeometry::default();
    let z_mid = (length - BEHIND) / 2.0;
    let z_half = (length + BEHIND) / 2.0;
    let grass = [0.22 - 0.08 * wet, 0.36 - 0.1 * wet, 0.12 - 0.04 * wet];
    // Terrain around the road, not under it: no hidden pixels to shade.
    let edge = half + sidewalk;
    let strip = (TERRAIN_HALF - edge) / 2.0;
    for side in [-1.0f32, 1.0] {
        let centre = [side * (edge + strip), -0.03, (TERRAIN_HALF - BEHIND) / 2.0];
        g.terrain.quad(centre, [0.0, 0.0, (TERRAIN_HALF + BEHIND) / 2.0], [strip, 0.0, 0.0], rgba(grass));
    }
    let beyond = (TERRAIN_HALF - length) / 2.0;
    g.terrain.quad([0.0, -0.03, length + beyond], [0.0, 0.0, beyond], [edge, 0.0, 0.0], rgba(grass));
    let asphalt = 0.3 - 0.17 * wet;
    g.road.quad([0.0, 0.0, z_mid], [0.0, 0.0, z_half], [half, 0.0, 0.0], rgba([asphalt; 3]));
    for side in [-1.0f32, 1.0] {
        let inner = side * half;
        let outer = side * (half + sidewalk);
        let (x0, x1) = if side < 0.0 { (outer, inner) } else { (inner, outer) };
        let grey = 0.55 - 0.2 * wet;
        g.sidewalks.cuboid(
            [x0, -0.05, -BEHIND],
            [x1, 0.15, length],
            [grey * 0.8, grey * 0.8, grey * 0.8, 1.0],
            rgba([grey; 3]),
        );
    }
    for m in &road.markings {
        let (z0, z1) = (m.z_start as f32, m.z_end as f32);
        let z0 = if m.z_start <= 0.0 { -BEHIND } else { z0 };
        g.markings.quad(
            [m.x as f32, 0.01, (z0 + z1) / 2.0],
            [0.0, 0.0, (z1 - z0) / 2.0],
            [m.width as f32 / 2.0, 0.0, 0.0],
            rgba([0.85 - 0.2 * wet; 3]),
        );
    }
    for house in &scene.houses {
        add_house(&mut g.buildings, house);
    }
    add_rain(&mut g.rain, scene);
    g
}

fn add_house(g: &mut Geometry, house: &House) {
    let (x, z) = (house.x as f32, house.z as f32);
    let (w, d, h) = (house.width as f32, house.depth as f32, house.height as f32);
    let (x0, x1, z0, z1) = (x - d / 2.0, x + d / 2.0, z - w / 2.0, z + w / 2.0);
    let wall = rgba(house.wall_colour);
    let roof = rgba(house.roof_colour);
    g.cuboid([x0, -0.05, z0], [x1, h, z1], wall, wall);
    // Windows and a door on the wall that faces the road, a hair in front of it.
    let facing_road = if x > 0.0 { -1.0 } else { 1.0 };
    let face_x = if x > 0.0 { x0 } else { x1 } + facing_road * 0.02;
    let right = [0.0, 0.0, -facing_road];
    let glass = [0.12, 0.15, 0.2, 1.0];
    let storeys = (h / 3.0).floor().max(1.0) as i32;
    let columns = ((w - 1.0) / 2.5).floor().max(1.0) as i32;
    for storey in 0..storeys {
        for column in 0..columns {
            let cz = z0 + (column as f32 + 0.5) * w / columns as f32;
            if storey == 0 && column == columns / 2 {
                g.quad([face_x, 1.05, cz], right.map(|v| v * 0.5), [0.0, 1.05, 0.0], [0.25, 0.15, 0.1, 1.0]);
                continue;
            }
            let cy = storey as f32 * 3.0 + 1.6;
            if cy + 0.6 < h {
                g.quad([face_x, cy, cz], right.map(|v| v * 0.55), [0.0, 0.6, 0.0], glass);
            }
        }
    }
    match house.roof {
        RoofKind::Flat => g.cuboid([x0 - 0.2, h, z0 - 0.2], [x1 + 0.2, h + 0.35, z1 + 0.2], roof, roof),
        RoofKind::Gabled => {
            let (x0, x1, z0, z1) = (x0 - 0.3, x1 + 0.3, z0 - 0.3, z1 + 0.3);
            let (xm, top) = (x, h + 0.35 * d);
            g.polygon(&[[x0, h, z0], [x0, h, z1], [xm, top, z1], [xm, top, z0]], roof);
            g.polygon(&[[x1, h, z1], [x1, h, z0], [xm, top, z0], [xm, top, z1]], roof);
            g.polygon(&[[x1, h, z0], [x0, h, z0], [xm, top, z0]], wall);
            g.polygon(&[[x0, h, z1], [x1, h, z1], [xm, top, z1]], wall);
        }
    }
}

fn add_rain(g: &mut Geometry, scene: &SceneDescription) {
    let weather = &scene.weather;
    if weather.rain_density <= 0.0 {
        return;
    }
    let mut rng = SeedTree::new(scene.seed).child("rain").rng();
    let count = (weather.rain_density * 4.0) as usize;
    let camera_x = scene.camera.x as f32;
    for _ in 0..count {
        let x = camera_x + rng.random_range(-9.0..9.0);
        let y = rng.random_range(0.0..7.0);
        let z = rng.random_range(1.5..30.0);
        let slant: f32 = rng.random_range(-0.05..0.05);
        g.quad([x, y, z], [-0.012, 0.0, 0.0], [slant, 0.3, 0.0], [1.0; 4]);
    }
}

/// The render layers of one scene: its RGB entities and its label entities; no label
/// layer when the RGB pass writes the labels (then the shading must be `Fast`).
#[derive(Debug, Clone)]
pub struct SceneLayers {
    pub rgb: RenderLayers,
    pub label: Option<RenderLayers>,
}

/// Marks the root entity of a spawned scene; despawning it frees the whole scene.
#[derive(Component, Debug, Clone, Copy)]
pub struct SceneRoot {
    pub seed: u64,
}

/// What a labelled surface writes to the label attachment: its class and instance id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SurfaceLabel {
    class: SemanticClass,
    instance: u32,
}

/// Materials reused from scene to scene: fast-lit surfaces by roughness and metallic in
/// steps of 1/256 and, when labelled, by class and instance (bounded by the few values the
/// scenes use and the most cars a scene has).
#[derive(Resource, Debug, Default)]
pub struct MaterialCache {
    fast_lit: HashMap<([u16; 2], Option<SurfaceLabel>), Handle<FastLitMaterial>>,
}

impl MaterialCache {
    /// The shared white [`FastLitMaterial`] with this roughness and metallic (in 1/256
    /// steps), labelled if `label` is given.
    fn fast_lit(
        &mut self,
        world: &mut World,
        roughness: f32,
        metallic: f32,
        label: Option<SurfaceLabel>,
    ) -> Handle<FastLitMaterial> {
        let key = [roughness, metallic].map(|v| (v.clamp(0.0, 1.0) * 256.0).round() as u16);
        self.fast_lit
            .entry((key, label))
            .or_insert_with(|| {
                let [r, m] = key.map(|k| f32::from(k) / 256.0);
                let material = FastLitMaterial::new(Color::WHITE, r, m);
                let material = match label {
                    Some(label) => material.labelled(label.class, label.instance),
                    None => material,
                };
                world.resource_mut::<Assets<FastLitMaterial>>().add(material)
            })
            .clone()
    }
}

/// Gives an RGB entity its lit material in the app's [`Shading`]: base colour (times the
/// vertex colours), perceptual roughness, metallic. `Standard` makes one per entity, freed
/// with the scene. `Fast` shares them (see [`MaterialCache::fast_lit`]) and tints a car
/// through its mesh tag, so the RGB pass creates no material per scene and batches its cars
/// (unless they are labelled: then each car id has its material). A `label` always takes
/// the `Fast` material: only it writes labels.
fn insert_lit(
    entity: &mut EntityWorldMut,
    base: [f32; 3],
    roughness: f32,
    metallic: f32,
    label: Option<SurfaceLabel>,
) {
    let shading = entity.world().get_resource::<Shading>().copied().unwrap_or_default();
    match (shading, label) {
        (Shading::Fast, _) | (Shading::Standard, Some(_)) => {
            let handle = entity.world_scope(|world| {
                world.resource_scope(|world, mut cache: Mut<MaterialCache>| {
                    cache.fast_lit(world, roughness, metallic, label)
                })
            });
            entity.insert((MeshMaterial3d(handle), MeshTag(tint_tag(base))));
        }
        (Shading::Standard, None) => {
            let material = StandardMaterial {
                base_color: Color::linear_rgb(base[0], base[1], base[2]),
                perceptual_roughness: roughness,
                metallic,
                ..default()
            };
            let handle = entity.resource_mut::<Assets<StandardMaterial>>().add(material);
            entity.insert(MeshMaterial3d(handle));
        }
    }
}

/// Spawns `scene` with the car poses from physics; returns the root entity.
pub fn spawn_scene(
    world: &mut World,
    scene: &SceneDescription,
    poses: &[CarPose],
    layers: &SceneLayers,
) -> Entity {
    let shared = world.resource::<SharedAssets>().clone();
    let geometry = scene_geometry(scene);
    let wet = scene.weather.wetness as f32;
    let root = world.spawn((SceneRoot { seed: scene.seed }, Transform::IDENTITY, Visibility::Visible)).id();
    let statics = [
        (geometry.terrain, SemanticClass::Terrain, 0.95),
        (geometry.road, SemanticClass::Road, 0.85 - 0.6 * wet),
        (geometry.sidewalks, SemanticClass::Sidewalk, 0.9 - 0.4 * wet),
        (geometry.markings, SemanticClass::LaneMarking, 0.7 - 0.4 * wet),
        (geometry.buildings, SemanticClass::Building, 0.85),
    ];
    for (part, class, roughness) in statics {
        if part.is_empty() {
            continue;
        }
        let mesh = world.resource_mut::<Assets<Mesh>>().add(part.into_mesh());
        let caster = class == SemanticClass::Building;
        let mut rgb = world.spawn((Mesh3d(mesh.clone()), layers.rgb.clone(), ChildOf(root)));
        let label = layers.label.is_none().then_some(SurfaceLabel { class, instance: 0 });
        insert_lit(&mut rgb, [1.0; 3], roughness, 0.0, label);
        if !caster {
            rgb.insert(NotShadowCaster);
        }
        if let Some(label_layer) = &layers.label {
            world.spawn((
                Mesh3d(mesh),
                MeshMaterial3d(shared.class_label(class)),
                NotShadowCaster,
                label_layer.clone(),
                ChildOf(root),
            ));
        }
    }
    if !geometry.rain.is_empty() {
        let mesh = world.resource_mut::<Assets<Mesh>>().add(geometry.rain.into_mesh());
        world.spawn((
            Mesh3d(mesh),
            MeshMaterial3d(shared.rain.clone()),
            NotShadowCaster,
            layers.rgb.clone(),
            ChildOf(root),
        ));
    }
    for (car, pose) in scene.cars.iter().zip(poses) {
        let transform = Transform::from_translation(pose.translation).with_rotation(pose.rotation);
        let mesh = shared.car_mesh(car.kind);
        let mut rgb = world.spawn((Mesh3d(mesh.clone()), transform, layers.rgb.clone(), ChildOf(root)));
        let label =
            layers.label.is_none().then_some(SurfaceLabel { class: SemanticClass::Car, instance: car.id });
        insert_lit(&mut rgb, car.colour, 0.35, 0.2, label);
        // One label material for every car, the instance id in the mesh tag: the label pass
        // draws each car type's cars as one instanced draw, as the RGB pass does.
        if let Some(label_layer) = &layers.label {
            world.spawn((
                Mesh3d(mesh),
                MeshMaterial3d(shared.class_label(SemanticClass::Car)),
                MeshTag(car.id),
                NotShadowCaster,
                transform,
                label_layer.clone(),
                ChildOf(root),
            ));
        }
    }
    root
}

/// Where the scene's camera stands and looks: along +z, pitched down, slightly yawed.
pub fn camera_transform(scene: &SceneDescription) -> Transform {
    let c = &scene.camera;
    let (pitch, yaw) = ((c.pitch_deg as f32).to_radians(), (c.yaw_deg as f32).to_radians());
    let direction = Vec3::new(yaw.sin() * pitch.cos(), -pitch.sin(), yaw.cos() * pitch.cos());
    Transform::from_xyz(c.x as f32, c.height as f32, 0.0).looking_to(direction, Vec3::Y)
}

pub fn projection(scene: &SceneDescription) -> Projection {
    Projection::Perspective(PerspectiveProjection {
        fov: (scene.camera.vertical_fov_deg as f32).to_radians(),
        near: 0.1,
        far: 2000.0,
        ..default()
    })
}

/// The sun's shadow cascades, for the renderer and the preview alike: one, to 80 m.
/// fast_lit.wgsl's `sun_shadow` reads no other (at these image sizes a second cascade would
/// show nothing).
pub fn sun_cascades() -> CascadeShadowConfig {
    CascadeShadowConfigBuilder {
        num_cascades: 1,
        minimum_distance: 0.1,
        maximum_distance: 80.0,
        first_cascade_far_bound: 80.0,
        overlap_proportion: 0.2,
    }
    .build()
}

/// The sun: a directional light shining from the scene's elevation and azimuth.
pub fn sun(scene: &SceneDescription, shadows: bool) -> (DirectionalLight, Transform) {
    let light = &scene.light;
    let (e, a) = ((light.sun_elevation_deg as f32).to_radians(), (light.sun_azimuth_deg as f32).to_radians());
    let towards_sun = Vec3::new(e.cos() * a.sin(), e.sin(), e.cos() * a.cos());
    let warm = (1.0 - (light.sun_elevation_deg as f32 / 25.0)).clamp(0.0, 1.0);
    let sun = DirectionalLight {
        illuminance: light.sun_illuminance as f32,
        color: Color::linear_rgb(1.0, 1.0 - 0.25 * warm, 1.0 - 0.5 * warm),
        shadow_maps_enabled: shadows,
        ..default()
    };
    (sun, Transform::IDENTITY.looking_to(-towards_sun, Vec3::Y))
}

/// Gives an RGB camera the scene's sky colour, ambient light and fog (and drops the last
/// scene's fog in clear weather); its view and projection are the caller's.
pub fn dress_rgb_camera(camera: &mut EntityWorldMut, scene: &SceneDescription) {
    camera.insert(ambient(scene));
    if let Some(mut c) = camera.get_mut::<Camera>() {
        c.clear_color = ClearColorConfig::Custom(sky_colour(&scene.weather));
    }
    match fog(&scene.weather) {
        Some(fog) => camera.insert(fog),
        None => camera.remove::<DistanceFog>(),
    };
}

/// Diffuse sky light for the RGB camera.
fn ambient(scene: &SceneDescription) -> AmbientLight {
    AmbientLight {
        color: Color::linear_rgb(0.8, 0.87, 1.0),
        brightness: 30_000.0 * scene.light.ambient as f32,
        ..default()
    }
}

/// Sky colour seen by the RGB camera; fog and rain fade towards it.
pub fn sky_colour(weather: &WeatherState) -> Color {
    let i = weather.intensity as f32;
    match weather.kind {
        Weather::Clear => Color::srgb(0.45, 0.65, 0.92),
        Weather::Overcast => Color::srgb(0.62 - 0.12 * i, 0.65 - 0.12 * i, 0.7 - 0.12 * i),
        Weather::Rain => Color::srgb(0.45 - 0.1 * i, 0.48 - 0.1 * i, 0.52 - 0.1 * i),
        Weather::Fog => Color::srgb(0.74, 0.76, 0.78),
    }
}

/// Distance fog with the weather's visibility; none in clear weather. No sun in-scattering
/// (`directional_light_color` stays none): `Fast` shading leaves it out (fast_lit.wgsl).
fn fog(weather: &WeatherState) -> Option<DistanceFog> {
    weather.visibility.is_finite().then(|| DistanceFog {
        color: sky_colour(weather),
        falloff: FogFalloff::from_visibility(weather.visibility as f32),
        ..default()
    })
}

#[cfg(test)]
mod tests {
    use l2s_scene::{TrafficParams, sample_scene};

    use super::*;

    #[test]
    fn static_geometry_covers_the_road_and_follows_psi() {
        let short = TrafficParams { road_length: 40.0, ..TrafficParams::default() };
        let long = TrafficParams { road_length: 200.0, ..TrafficParams::default() };
        let a = scene_geometry(&sample_scene(&short, 1).expect("valid"));
        let b = scene_geometry(&sample_scene(&long, 1).expect("valid"));
        assert!((a.road.bounds().1[2] - 40.0).abs() < 1e-3);
        assert!((b.road.bounds().1[2] - 200.0).abs() < 1e-3);
        assert!(b.markings.indices.len() > 3 * a.markings.indices.len());
        assert!(a.rain.is_empty());
        let rain =
            TrafficParams { weather: Weather::Rain, weather_intensity: 1.0, ..TrafficParams::default() };
        let scene = sample_scene(&rain, 1).expect("valid");
        assert_eq!(scene_geometry(&scene).rain.indices, scene_geometry(&scene).rain.indices);
        assert!(!scene_geometry(&scene).rain.is_empty());
    }
}
