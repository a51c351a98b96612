//! Rendered frames as a study's samples: the model's classes, the camera's framing, and
//! the datasets of a ψ.

use std::sync::{Mutex, PoisonError};

use l2s_core::SeedTree;
use l2s_data::ClassMap;
use l2s_meta::BoxError;
use l2s_render::{Frame, Renderer, SemanticClass};
use l2s_scene::{SceneDescription, TrafficParams, sample_scene};
use l2s_train::{Dataset, IGNORE, Sample, count_density};

use crate::settings::DomainShift;

/// The segmentation model's classes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassScheme {
    /// The renderer's own classes ([`SemanticClass::ALL`], lane markings apart): targets
    /// rendered by the simulator itself.
    Renderer,
    /// A table over Cityscapes ids ([`Frame::cityscapes_ids`] for rendered frames; the
    /// files' ids for a dataset on disk); other ids are ignored.
    Table(ClassMap),
}

impl ClassScheme {
    pub fn len(&self) -> usize {
        match self {
            ClassScheme::Renderer => SemanticClass::ALL.len(),
            ClassScheme::Table(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class whose IoU is the reward.
    pub fn car(&self) -> usize {
        match self {
            ClassScheme::Renderer => SemanticClass::Car.index(),
            ClassScheme::Table(map) => map.index_of("car").unwrap_or(0),
        }
    }

    pub fn name(&self, class: usize) -> String {
        match self {
            ClassScheme::Renderer => SemanticClass::ALL.get(class).map_or("?", |c| c.name()).to_string(),
            ClassScheme::Table(map) => {
                map.classes().get(class).map_or_else(|| "?".into(), |c| c.name.clone())
            }
        }
    }

    /// A class's colour in figures (black for ignored pixels).
    pub fn colour(&self, class: u8) -> [u8; 3] {
        match self {
            ClassScheme::Renderer => {
                SemanticClass::ALL.get(usize::from(class)).map_or([0, 0, 0], |c| c.colour())
            }
            ClassScheme::Table(map) if class != IGNORE => {
                l2s_data::cityscapes::colour(map.label_id_of(class))
            }
            ClassScheme::Table(_) => [0, 0, 0],
        }
    }

    /// Class index of every pixel of a rendered frame.
    pub fn indices(&self, frame: &Frame) -> Vec<u8> {
        match self {
            ClassScheme::Renderer => {
                let mut lut = [0u8; 256];
                for (i, class) in SemanticClass::ALL.iter().enumerate() {
                    lut[usize::from(class.id())] = i as u8;
                }
                frame.classes.iter().map(|&id| lut[usize::from(id)]).collect()
            }
            ClassScheme::Table(map) => map.map(&frame.cityscapes_ids()),
        }
    }
}

/// How rendered frames become a study's samples: their classes, and the camera's field of
/// view (a target dataset's, so rendered and target images are framed alike).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleFormat {
    pub classes: ClassScheme,
    /// Replaces the sampled scene's vertical field of view; None keeps it.
    pub vertical_fov_deg: Option<f64>,
}

impl SampleFormat {
    /// The renderer's classes and camera: targets rendered by the simulator itself.
    pub fn renderer() -> Self {
        Self { classes: ClassScheme::Renderer, vertical_fov_deg: None }
    }
}

/// Renders `n` scenes of `params` (seeds from `tree`) and turns them into training samples.
pub fn render_dataset(
    renderer: &Mutex<Renderer>,
    format: &SampleFormat,
    params: &TrafficParams,
    tree: &SeedTree,
    n: usize,
    domain: Option<&DomainShift>,
) -> Result<(Dataset, Vec<Frame>), BoxError> {
    let scenes: Vec<SceneDescription> = (0..n)
        .map(|i| {
            let mut scene = sample_scene(params, tree.child("scene").index(i as u64).seed())?;
            if let Some(fov) = format.vertical_fov_deg {
                scene.camera.vertical_fov_deg = fov;
            }
            Ok::<_, BoxError>(scene)
        })
        .collect::<Result<_, _>>()?;
    let frames = renderer.lock().unwrap_or_else(PoisonError::into_inner).render(&scenes)?;
    let (w, h) = frames.first().map_or((0, 0), |f| (f.width as usize, f.height as usize));
    let samples = frames
        .iter()
        .map(|f| {
            let counts = f.counts.map(|c| c as f32);
            let counted: Vec<(u16, usize)> = f
                .cars
                .iter()
                .filter(|car| car.counted)
                .filter_map(|car| Some((u16::try_from(car.id).ok()?, car.kind.index())))
                .collect();
            let mut sample = Sample::from_rgb8(&f.rgb, w, h, counts, format.classes.indices(f))
                .with_density(count_density(w, h, &f.instances, &counted));
            if let Some(domain) = domain {
                domain.apply(&mut sample.image, f.scene.seed);
            }
            sample
        })
        .collect();
    Ok((Dataset { width: w, height: h, samples }, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn car_type_names_are_the_sample_contracts() {
        let names: Vec<&str> = l2s_scene::CarType::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, l2s_data::CAR_TYPE_NAMES);
    }

    #[test]
    fn a_class_table_colours_by_cityscapes_id_and_names_its_classes() {
        let scheme = ClassScheme::Table(ClassMap::new(ClassMap::default_classes()).expect("valid"));
        assert_eq!((scheme.len(), scheme.car(), scheme.name(3).as_str()), (6, 5, "terrain"));
        assert_eq!(scheme.colour(5), [0, 0, 142]);
        assert_eq!(scheme.colour(IGNORE), [0, 0, 0]);
        assert_eq!((ClassScheme::Renderer.len(), ClassScheme::Renderer.car()), (7, 5));
    }
}
