//! A target that is a labelled dataset on disk (the paper's real KITTI images): read, split
//! by the master seed (or listed), framed to the model's input, labels mapped to the model's
//! classes.

use std::path::{Path, PathBuf};

use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate, check_range};
use l2s_data::{
    ClassDef, ClassMap, CountSource, DataError, Framing, LabelledImage, Layout, SplitConfig, Wanted,
};
use l2s_train::{Dataset, Sample};
use serde::{Deserialize, Serialize};

use crate::settings::DataConfig;

/// `target_data: (...)` in a traffic config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDataConfig {
    /// The dataset directory, relative to the config (`--target-data DIR` replaces it).
    pub dir: PathBuf,
    /// `Auto` (default), `Kitti`, `Cityscapes` or `Export`.
    #[serde(default)]
    pub layout: Layout,
    /// Validation, test and oracle images; absent: `data`'s validation and test sizes, and
    /// `data.train_samples` for the oracle.
    #[serde(default)]
    pub split: Option<SplitConfig>,
    /// The model's classes as Cityscapes label ids; ids in no class are ignored (in the loss
    /// and in every IoU). Default: road, sidewalk, building, terrain (with vegetation), sky, car.
    #[serde(default = "ClassMap::default_classes")]
    pub classes: Vec<ClassDef>,
    /// Where counting targets' counts come from: `Json` (`counts/*.json`, default) or
    /// `KittiLabels({"Car": "sedan", ...})` (`label_2/*.txt`).
    #[serde(default)]
    pub counts: CountSource,
    /// Horizontal field of view of the target's camera in degrees; absent: from KITTI's
    /// `calib/` when present, else the renderer's own camera.
    #[serde(default)]
    pub horizontal_fov_deg: Option<f64>,
}

impl TargetDataConfig {
    /// The defaults, for `--target-data DIR` with a config that has no `target_data`.
    pub fn with_dir(dir: PathBuf) -> Self {
        Self {
            dir,
            layout: Layout::Auto,
            split: None,
            classes: ClassMap::default_classes(),
            counts: CountSource::Json,
            horizontal_fov_deg: None,
        }
    }

    pub fn class_map(&self) -> Result<ClassMap, InvalidField> {
        ClassMap::new(self.classes.clone())
    }
}

impl Validate for TargetDataConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        self.class_map()?;
        if let Some(split) = &self.split {
            split.validate().map_err(|e| e.within("split"))?;
        }
        if let Some(fov) = self.horizontal_fov_deg {
            check_range("horizontal_fov_deg", fov, 10.0, 170.0)?;
        }
        Ok(())
    }
}

/// The target dataset, split and framed to the model's input.
#[derive(Debug)]
pub struct DataTarget {
    pub dir: PathBuf,
    pub layout: Layout,
    /// Images in the directory.
    pub frames: usize,
    /// Size of the first image.
    pub source_size: (u32, u32),
    pub validation: Dataset,
    pub test: Dataset,
    /// Trains the oracle (the upper bound when no ψ_real exists).
    pub oracle: Dataset,
    /// Names of the test frames, in the test set's order.
    pub test_names: Vec<String>,
    /// Up to four framed validation images, for the report.
    pub preview: Vec<LabelledImage>,
    /// The renderer's vertical field of view that frames rendered images as the target's
    /// (None: the renderer's own).
    pub vertical_fov_deg: Option<f64>,
    /// Where that field of view came from, for the report.
    pub fov_source: String,
}

/// The sample of a framed target image: counts as given (zero when absent) and, with a
/// class map, the label ids mapped to class indices.
pub fn sample_of(image: &LabelledImage, classes: Option<&ClassMap>) -> Sample {
    let counts = image.counts.unwrap_or_default().map(|c| c as f32);
    let class_map = match (classes, &image.label_ids) {
        (Some(map), Some(ids)) => map.map(ids),
        _ => Vec::new(),
    };
    Sample::from_rgb8(&image.rgb, image.width as usize, image.height as usize, counts, class_map)
}

/// Reads, splits and frames the target directory `dir`: for segmentation with the model's
/// class table `classes` (labels are read and mapped), for counting with None (counts are
/// read).
pub fn load_data_target(
    config: &TargetDataConfig,
    dir: &Path,
    classes: Option<&ClassMap>,
    framing: Framing,
    data: &DataConfig,
    seeds: SeedTree,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<DataTarget, DataError> {
    let wanted = match classes {
        Some(_) => Wanted { labels: true, counts: None },
        None => Wanted { labels: false, counts: Some(&config.counts) },
    };
    let read = l2s_data::read_target_dir(dir, config.layout, wanted)?;
    let names: Vec<String> = read.frames.iter().map(|f| f.name.clone()).collect();
    let split = config.split.clone().unwrap_or(SplitConfig {
        validation: data.validation_samples,
        test: data.test_samples,
        oracle: data.train_samples,
        lists: None,
    });
    let splits = split.splits(&names, seeds, resolve)?;
    if splits.oracle.is_empty() {
        return Err(DataError::Split(format!(
            "`{}` has {} images: none is left for the oracle after {} validation and {} test images\n  hint: lower target_data.split.validation or .test, or list oracle frames",
            dir.display(),
            names.len(),
            splits.validation.len(),
            splits.test.len()
        )));
    }
    let framed = |i: usize| framing.apply(&read.frames[i]);
    let set = |indices: &[usize]| Dataset {
        width: framing.width as usize,
        height: framing.height as usize,
        samples: indices.iter().map(|&i| sample_of(&framed(i), classes)).collect(),
    };
    let source_size = read.frames.first().map_or((framing.width, framing.height), |f| (f.width, f.height));
    let (hfov, fov_source) = match (config.horizontal_fov_deg, read.hfov_deg) {
        (Some(h), _) => (Some(h), format!("{h:.1}° horizontal, from the config")),
        (None, Some(h)) => (Some(h), format!("{h:.1}° horizontal, from calib/ (P2)")),
        (None, None) => (None, "the renderer's own (no calib/ and no target_data.horizontal_fov_deg)".into()),
    };
    Ok(DataTarget {
        dir: dir.to_path_buf(),
        layout: read.layout,
        frames: names.len(),
        source_size,
        validation: set(&splits.validation),
        test: set(&splits.test),
        oracle: set(&splits.oracle),
        test_names: splits.test.iter().map(|&i| names[i].clone()).collect(),
        preview: splits.validation.iter().take(4).map(|&i| framed(i)).collect(),
        vertical_fov_deg: hfov.map(|h| framing.vertical_fov_deg(source_size.0, source_size.1, h)),
        fov_source,
    })
}
