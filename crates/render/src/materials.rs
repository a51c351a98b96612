//! The label material and the assets every scene shares (car meshes, class materials).

use bevy::asset::{load_internal_asset, uuid_handle};
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;
use l2s_scene::CarType;

use crate::geometry;
use crate::labels::SemanticClass;

const LABEL_SHADER: Handle<Shader> = uuid_handle!("8f0d1c52-3b7e-4a19-9d0c-6e2f5a7b4c31");

/// Writes (class id, instance id, view depth) instead of a colour; see `shaders/label.wgsl`.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct LabelMaterial {
    /// x: semantic class id, y: instance id (0 for stuff), z unused, w: 1 to draw
    /// `colour` instead of ids.
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
    pub fn new(class: SemanticClass, instance: u32, output: LabelOutput) -> Self {
        let [r, g, b] = class.colour();
        let linear = Color::srgb_u8(r, g, b).to_linear();
        let (mode, alpha) = match output {
            LabelOutput::Ids => (0.0, 1.0),
            LabelOutput::Colours { opacity_percent } => (1.0, f32::from(opacity_percent) / 100.0),
        };
        Self {
            label: Vec4::new(f32::from(class.id()), instance as f32, 0.0, mode),
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

/// Registers the label shader (embedded in the binary, ready on the first frame) and material.
pub struct LabelMaterialPlugin;

impl Plugin for LabelMaterialPlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(app, LABEL_SHADER, "shaders/label.wgsl", Shader::from_wgsl);
        app.add_plugins(MaterialPlugin::<LabelMaterial>::default());
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
            SemanticClass::ALL.iter().map(|&class| labels.add(LabelMaterial::new(class, 0, output))).collect()
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
