//! The RGB and label materials and the assets every scene shares (car meshes, class
//! materials).

use bevy::asset::{load_internal_asset, uuid_handle};
use bevy::mesh::MeshVertexBufferLayoutRef;
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, ColorTargetState, ColorWrites, RenderPipelineDescriptor, SpecializedMeshPipelineError,
    TextureFormat,
};
use bevy::shader::ShaderRef;
use l2s_scene::CarType;
use serde::{Deserialize, Serialize};

use crate::geometry;
use crate::labels::SemanticClass;

const LABEL_SHADER: Handle<Shader> = uuid_handle!("8f0d1c52-3b7e-4a19-9d0c-6e2f5a7b4c31");
const FAST_LIT_SHADER: Handle<Shader> = uuid_handle!("3c9e27a4-5f1b-4d86-b0a2-71e4c8d95f06");

/// How the RGB image is lit. Labels are the same either way.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Shading {
    /// [`FastLitMaterial`] and hardware 2x2 shadow filtering: about 1.7x the labelled
    /// frames/s of `Standard` at 256x256 on lavapipe (BENCHMARKS.md).
    #[default]
    Fast,
    /// Bevy's physically based [`StandardMaterial`] (Burley diffuse, GGX specular) with
    /// its default Gaussian shadow filtering.
    Standard,
}

impl Shading {
    /// The shadow filter the RGB camera uses with this shading.
    pub fn shadow_filter(self) -> bevy::light::ShadowFilteringMethod {
        match self {
            Shading::Fast => bevy::light::ShadowFilteringMethod::Hardware2x2,
            Shading::Standard => bevy::light::ShadowFilteringMethod::Gaussian,
        }
    }
}

/// The RGB pass's surfaces under [`Shading::Fast`]: Lambert diffuse and a normalised
/// Blinn-Phong highlight under the sun, with its shadow, ambient light, distance fog and
/// tonemapping; see `shaders/fast_lit.wgsl`. A labelled one ([`FastLitMaterial::labelled`])
/// also writes the surface's labels to a second colour attachment
/// ([`crate::labelled_pass`]).
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
#[bind_group_data(FastLitKey)]
pub struct FastLitMaterial {
    /// Linear RGBA, multiplied by the mesh's vertex colours.
    #[uniform(0)]
    pub base_colour: Vec4,
    /// x: highlight strength, y: Blinn-Phong exponent, z: perceptual roughness, w:
    /// reflectance at normal incidence (for the ambient specular term).
    #[uniform(0)]
    pub specular: Vec4,
    /// x: semantic class id, y: instance id (0 for stuff); read only when `labels`.
    #[uniform(0)]
    pub label: Vec4,
    /// Writes `label` (and the depth) to the second colour attachment.
    pub labels: bool,
}

/// Pipeline key of a [`FastLitMaterial`]: whether it writes labels too.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FastLitKey {
    labels: bool,
}

impl From<&FastLitMaterial> for FastLitKey {
    fn from(material: &FastLitMaterial) -> Self {
        Self { labels: material.labels }
    }
}

/// Format of the label images: class, instance and depth exact in f16 (see
/// `shaders/label.wgsl`).
pub const LABEL_FORMAT: TextureFormat = TextureFormat::Rgba16Float;

impl FastLitMaterial {
    /// The match of a StandardMaterial with this base colour, perceptual roughness and
    /// metallic: diffuse albedo base · (1 − metallic); Blinn-Phong exponent 2/α² − 2 for
    /// α = roughness², and the normalised lobe's peak (n + 8)/(8π) times the reflectance
    /// at normal incidence (4 % for dielectrics, the base colour's mean for metals).
    pub fn new(base: Color, perceptual_roughness: f32, metallic: f32) -> Self {
        let linear = base.to_linear();
        let perceptual_roughness = perceptual_roughness.clamp(0.089, 1.0);
        let alpha = perceptual_roughness.powi(2);
        let exponent = (2.0 / (alpha * alpha) - 2.0).clamp(1.0, 2048.0);
        let mean = (linear.red + linear.green + linear.blue) / 3.0;
        let metallic = metallic.clamp(0.0, 1.0);
        let f0 = 0.04 + (mean - 0.04) * metallic;
        let peak = f0 * (exponent + 8.0) / (8.0 * std::f32::consts::PI);
        let diffuse = 1.0 - metallic;
        Self {
            base_colour: Vec4::new(
                linear.red * diffuse,
                linear.green * diffuse,
                linear.blue * diffuse,
                linear.alpha,
            ),
            specular: Vec4::new(peak, exponent, perceptual_roughness, f0),
            label: Vec4::ZERO,
            labels: false,
        }
    }

    /// The same surface that also writes `class` and `instance` (0 for stuff) to the label
    /// attachment.
    pub fn labelled(self, class: SemanticClass, instance: u32) -> Self {
        Self { label: Vec4::new(f32::from(class.id()), instance as f32, 0.0, 0.0), labels: true, ..self }
    }
}

/// The [`bevy::mesh::MeshTag`] that tints an instance drawn with a [`FastLitMaterial`]: linear
/// RGB in 10 bits per channel, never 0 (0 means no tint).
pub fn tint_tag(linear_rgb: [f32; 3]) -> u32 {
    let [r, g, b] = linear_rgb.map(|c| (c.clamp(0.0, 1.0) * 1023.0).round() as u32);
    (r << 20 | g << 10 | b).max(1)
}

impl Material for FastLitMaterial {
    fn fragment_shader() -> ShaderRef {
        FAST_LIT_SHADER.into()
    }

    /// A labelled material's colour pipelines get the label attachment (unblended) and the
    /// `LABELS` shader def. Shadow and prepass pipelines (no colour target) are left alone.
    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        _layout: &MeshVertexBufferLayoutRef,
        key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        if let Some(fragment) = descriptor.fragment.as_mut()
            && key.bind_group_data.labels
            && fragment.targets.len() == 1
        {
            fragment.shader_defs.push("LABELS".into());
            fragment.targets.push(Some(ColorTargetState {
                format: LABEL_FORMAT,
                blend: None,
                write_mask: ColorWrites::ALL,
            }));
        }
        Ok(())
    }
}

/// Writes (class id, instance id, view depth) instead of a colour; see `shaders/label.wgsl`.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct LabelMaterial {
    /// x: semantic class id, y and z unused, w: 1 to draw `colour` instead of ids. The
    /// instance id is the entity's [`bevy::mesh::MeshTag`] (none, i.e. 0, for stuff), so
    /// one material serves every car and the label pass batches them.
    #[uniform(0)]
    pub label: Vec4,
    /// Linear RGBA of the class, for display.
    #[uniform(1)]
    pub colour: Vec4,
}

/// What label materials write: exact ids (capture) or class colours (preview overlay).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelOutput {
    #[default]
    Ids,
    /// Class colours at this opacity (percent).
    Colours { opacity_percent: u8 },
}

impl LabelMaterial {
    pub fn new(class: SemanticClass, output: LabelOutput) -> Self {
        let [r, g, b] = class.colour();
        let linear = Color::srgb_u8(r, g, b).to_linear();
        let (mode, alpha) = match output {
            LabelOutput::Ids => (0.0, 1.0),
            LabelOutput::Colours { opacity_percent } => (1.0, f32::from(opacity_percent) / 100.0),
        };
        Self {
            label: Vec4::new(f32::from(class.id()), 0.0, 0.0, mode),
            colour: Vec4::new(linear.red, linear.green, linear.blue, alpha),
        }
    }
}

impl Material for LabelMaterial {
    fn fragment_shader() -> ShaderRef {
        LABEL_SHADER.into()
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }
}

/// Registers the label and fast-lit shaders (embedded in the binary, ready on the first
/// frame) and materials.
pub struct SceneMaterialsPlugin;

impl Plugin for SceneMaterialsPlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(app, LABEL_SHADER, "shaders/label.wgsl", Shader::from_wgsl);
        load_internal_asset!(app, FAST_LIT_SHADER, "shaders/fast_lit.wgsl", Shader::from_wgsl);
        app.add_plugins((
            MaterialPlugin::<LabelMaterial>::default(),
            MaterialPlugin::<FastLitMaterial>::default(),
        ));
    }
}

/// Meshes and materials that do not change from scene to scene, made once per app.
#[derive(Resource, Debug, Clone)]
pub struct SharedAssets {
    /// One mesh per car type, in [`CarType::ALL`] order.
    pub car_meshes: [Handle<Mesh>; 5],
    /// Label materials of the classes without instances, in [`SemanticClass::ALL`] order.
    pub class_labels: Vec<Handle<LabelMaterial>>,
    pub rain: Handle<StandardMaterial>,
}

impl SharedAssets {
    pub fn car_mesh(&self, kind: CarType) -> Handle<Mesh> {
        self.car_meshes[kind.index()].clone()
    }

    pub fn class_label(&self, class: SemanticClass) -> Handle<LabelMaterial> {
        self.class_labels[class.index()].clone()
    }
}

impl FromWorld for SharedAssets {
    fn from_world(world: &mut World) -> Self {
        let car_meshes = {
            let mut meshes = world.resource_mut::<Assets<Mesh>>();
            CarType::ALL.map(|kind| meshes.add(geometry::car(kind).into_mesh()))
        };
        let output = world.get_resource::<LabelOutput>().copied().unwrap_or_default();
        let class_labels = {
            let mut labels = world.resource_mut::<Assets<LabelMaterial>>();
            SemanticClass::ALL.iter().map(|&class| labels.add(LabelMaterial::new(class, output))).collect()
        };
        let rain = world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
            base_color: Color::srgba(0.75, 0.78, 0.82, 0.35),
            alpha_mode: AlphaMode::Blend,
            unlit: true,
            ..default()
        });
        Self { car_meshes, class_labels, rain }
    }
}
