//! Training data in memory: images with their per-type car counts and per-pixel classes,
//! as the renderer hands them over, and their conversion into batches of tensors.

use burn::prelude::*;
use l2s_core::SeedTree;
use rand::Rng;

use std::path::Path;

use crate::metrics::CAR_TYPES;

pub use l2s_data::{CAR_TYPE_NAMES, IGNORE};

/// One labelled image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Channel-major RGB (`[3][height][width]`) in [0, 1].
    pub image: Vec<f32>,
    /// Visible cars of each type (sedan, SUV, van, pickup, bus).
    pub counts: [f32; CAR_TYPES],
    /// Class index per pixel, row-major ([`IGNORE`] where the pixel counts in neither the
    /// loss nor any IoU); empty when the sample has no segmentation labels.
    pub classes: Vec<u8>,
    /// Where the counted cars are: per type, a row-major map (`[5][height][width]`) in
    /// which each counted car's visible pixels share one unit, so each plane sums to that
    /// type's count ([`count_density`]). Empty when the sample has no instance labels;
    /// the counting model then learns from the counts alone.
    pub density: Vec<f32>,
}

impl Sample {
    /// Builds a sample from interleaved 8-bit RGB (the renderer's and PNG's layout).
    pub fn from_rgb8(
        rgb: &[u8],
        width: usize,
        height: usize,
        counts: [f32; CAR_TYPES],
        classes: Vec<u8>,
    ) -> Self {
        let plane = width * height;
        let mut image = vec![0.0; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).take(plane).enumerate() {
            for c in 0..3 {
                image[c * plane + i] = f32::from(px[c]) / 255.0;
            }
        }
        Self { image, counts, classes, density: Vec::new() }
    }

    /// The same sample with a count density map ([`count_density`]).
    pub fn with_density(self, density: Vec<f32>) -> Self {
        Self { density, ..self }
    }
}

/// A count density map (`[5][height][width]`) from an instance map: each counted car
/// (`(instance id, type index)`) spreads one unit evenly over its visible pixels, so the
/// map sums to the counts and tells the model where each counted car is.
pub fn count_density(width: usize, height: usize, instances: &[u16], counted: &[(u16, usize)]) -> Vec<f32> {
    let plane = width * height;
    let mut pixels = std::collections::HashMap::<u16, u32>::with_capacity(counted.len());
    for &id in instances.iter().take(plane) {
        if id != 0 {
            *pixels.entry(id).or_default() += 1;
        }
    }
    let kinds: std::collections::HashMap<u16, usize> =
        counted.iter().copied().filter(|&(_, kind)| kind < CAR_TYPES).collect();
    let mut density = vec![0.0; CAR_TYPES * plane];
    for (at, id) in instances.iter().take(plane).enumerate() {
        if let (Some(&kind), Some(&n)) = (kinds.get(id), pixels.get(id)) {
            density[kind * plane + at] = 1.0 / n as f32;
        }
    }
    density
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("the dataset is empty")]
    Empty,
    #[error("sample {index}: image has {got} values, expected 3 x {width} x {height} = {expected}")]
    ImageSize { index: usize, got: usize, expected: usize, width: usize, height: usize },
    #[error("sample {index}: class map has {got} pixels, expected {expected}")]
    ClassMapSize { index: usize, got: usize, expected: usize },
    #[error("sample {index}: count density map has {got} values, expected 5 x {expected}")]
    DensitySize { index: usize, got: usize, expected: usize },
    #[error("sample {index}: class {class} is not below the model's {classes} classes")]
    ClassOutOfRange { index: usize, class: u8, classes: usize },
    #[error(
        "images of {width}x{height} cannot go through the segmentation U-Net: width and height must be multiples of 4 (it halves them twice)\n  hint: choose render.width and render.height divisible by 4"
    )]
    NotMultipleOfFour { width: usize, height: usize },
    #[error("cannot read `{}`: {cause}\n  hint: point to a directory written by `l2s render`", path.display())]
    Read { path: std::path::PathBuf, cause: String },
    #[error("`{}` is not what `l2s render` writes: {what}", path.display())]
    Format { path: std::path::PathBuf, what: String },
}

/// Samples of one image size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    pub width: usize,
    pub height: usize,
    pub samples: Vec<Sample>,
}

/// [`count_density`] of an exported frame: its 16-bit instance map (`png`, read from
/// `path`) and the counted cars of its JSON record (`frame`, read from `frame_path`).
fn export_density(
    (path, png): (&Path, &[u8]),
    (frame_path, frame): (&Path, &serde_json::Value),
    (width, height): (usize, usize),
) -> Result<Vec<f32>, DataError> {
    let format = |what: String| DataError::Format { path: path.to_path_buf(), what };
    let instances = image::load_from_memory(png).map_err(|e| format(e.to_string()))?.to_luma16();
    if (instances.width() as usize, instances.height() as usize) != (width, height) {
        return Err(format("size differs from the RGB image".into()));
    }
    let mut counted = Vec::new();
    for car in frame["cars"].as_array().map_or(&[][..], Vec::as_slice) {
        if car["counted"].as_bool() != Some(true) {
            continue;
        }
        let id = car["id"].as_u64().and_then(|id| u16::try_from(id).ok());
        let kind = car["kind"].as_str().and_then(|k| CAR_TYPE_NAMES.iter().position(|n| *n == k));
        match (id, kind) {
            (Some(id), Some(kind)) => counted.push((id, kind)),
            _ => {
                return Err(DataError::Format {
                    path: frame_path.to_path_buf(),
                    what: format!("a counted car without a 16-bit id or a known kind: {car}"),
                });
            }
        }
    }
    Ok(count_density(width, height, instances.as_raw(), &counted))
}

impl Dataset {
    /// Checks every image size (and, with `classes`, every class map).
    pub fn check(&self, classes: Option<usize>) -> Result<(), DataError> {
        if self.samples.is_empty() {
            return Err(DataError::Empty);
        }
        let plane = self.width * self.height;
        for (index, s) in self.samples.iter().enumerate() {
            if s.image.len() != 3 * plane {
                return Err(DataError::ImageSize {
                    index,
                    got: s.image.len(),
                    expected: 3 * plane,
                    width: self.width,
                    height: self.height,
                });
            }
            if !s.density.is_empty() && s.density.len() != CAR_TYPES * plane {
                return Err(DataError::DensitySize { index, got: s.density.len(), expected: plane });
            }
            if let Some(classes) = classes {
                if s.classes.len() != plane {
                    return Err(DataError::ClassMapSize { index, got: s.classes.len(), expected: plane });
                }
                if let Some(class) = s.classes.iter().find(|c| **c != IGNORE && usize::from(**c) >= classes) {
                    return Err(DataError::ClassOutOfRange { index, class: *class, classes });
                }
            }
        }
        Ok(())
    }

    /// A synthetic set for tests and benchmarks: `size`x`size` grey images (`size` a
    /// multiple of 8) with up to one 4x4 square per 8x8 cell, coloured by car type; the
    /// counts are the squares of each type, the class map 0 for background and 1 + type.
    pub fn squares(n: usize, size: usize, seed: u64) -> Self {
        const COLOURS: [[u8; 3]; CAR_TYPES] =
            [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]];
        let mut rng = SeedTree::new(seed).rng();
        let cells = size / 8;
        let samples = (0..n)
            .map(|_| {
                let mut rgb = vec![128u8; size * size * 3];
                let mut classes = vec![0u8; size * size];
                let mut counts = [0.0; CAR_TYPES];
                let mut density = vec![0.0; CAR_TYPES * size * size];
                for cell in 0..cells * cells {
                    let kind: usize = rng.random_range(0..CAR_TYPES + 3);
                    if kind >= CAR_TYPES {
                        continue;
                    }
                    counts[kind] += 1.0;
                    let (cx, cy) = ((cell % cells) * 8 + 2, (cell / cells) * 8 + 2);
                    for y in cy..cy + 4 {
                        for x in cx..cx + 4 {
                            let at = y * size + x;
                            rgb[at * 3..at * 3 + 3].copy_from_slice(&COLOURS[kind]);
                            classes[at] = 1 + kind as u8;
                            density[kind * size * size + at] = 1.0 / 16.0;
                        }
                    }
                }
                Sample::from_rgb8(&rgb, size, size, counts, classes).with_density(density)
            })
            .collect();
        Self { width: size, height: size, samples }
    }

    /// Loads a dataset written by `l2s render` (`image_2/`, `semantic/`, `frames/`): counts
    /// from the per-frame JSON, class indices by the default class table
    /// ([`l2s_data::ClassMap::default_classes`]; ids outside it are [`IGNORE`]d).
    pub fn load_export(dir: &Path) -> Result<Self, DataError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| DataError::Read { path: path.to_path_buf(), cause: e.to_string() })
        };
        let json = |path: &Path| -> Result<serde_json::Value, DataError> {
            serde_json::from_slice(&read(path)?)
                .map_err(|e| DataError::Format { path: path.to_path_buf(), what: e.to_string() })
        };
        let classes = l2s_data::ClassMap::new(l2s_data::ClassMap::default_classes())
            .map_err(|e| DataError::Format { path: dir.to_path_buf(), what: e.to_string() })?;
        let frames_dir = dir.join("frames");
        let mut names: Vec<String> = std::fs::read_dir(&frames_dir)
            .map_err(|e| DataError::Read { path: frames_dir.clone(), cause: e.to_string() })?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        let (mut width, mut height) = (0, 0);
        let mut samples = Vec::with_capacity(names.len());
        for name in &names {
            let frame_path = frames_dir.join(format!("{name}.json"));
            let frame = json(&frame_path)?;
            let mut counts = [0.0; CAR_TYPES];
            for (i, kind) in CAR_TYPE_NAMES.iter().enumerate() {
                counts[i] = frame["counts"][kind].as_f64().ok_or_else(|| DataError::Format {
                    path: frame_path.clone(),
                    what: format!("no count for `{kind}`"),
                })? as f32;
            }
            let image_path = dir.join("image_2").join(format!("{name}.png"));
            let rgb = image::load_from_memory(&read(&image_path)?)
                .map_err(|e| DataError::Format { path: image_path.clone(), what: e.to_string() })?
                .to_rgb8();
            let semantic_path = dir.join("semantic").join(format!("{name}.png"));
            let ids = image::load_from_memory(&read(&semantic_path)?)
                .map_err(|e| DataError::Format { path: semantic_path.clone(), what: e.to_string() })?
                .to_luma8();
            if ids.dimensions() != rgb.dimensions() {
                return Err(DataError::Format {
                    path: semantic_path,
                    what: "size differs from the RGB image".into(),
                });
            }
            if let Some(bad) =
                ids.as_raw().iter().find(|&&id| usize::from(id) >= l2s_data::cityscapes::LABEL_NAMES.len())
            {
                return Err(DataError::Format {
                    path: semantic_path,
                    what: format!("label id {bad} is not a Cityscapes label id (0 to 33)"),
                });
            }
            let class_map = classes.map(ids.as_raw());
            let (w, h) = (rgb.width() as usize, rgb.height() as usize);
            if samples.is_empty() {
                (width, height) = (w, h);
            } else if (w, h) != (width, height) {
                return Err(DataError::Format {
                    path: image_path,
                    what: format!("{w}x{h}, the first image is {width}x{height}"),
                });
            }
            let sample = Sample::from_rgb8(rgb.as_raw(), w, h, counts, class_map);
            let instance_path = dir.join("instance").join(format!("{name}.png"));
            samples.push(if instance_path.exists() {
                sample.with_density(export_density(
                    (&instance_path, &read(&instance_path)?),
                    (&frame_path, &frame),
                    (w, h),
                )?)
            } else {
                sample
            });
        }
        let dataset = Self { width, height, samples };
        dataset.check(Some(classes.len()))?;
        Ok(dataset)
    }

    /// Whether some pixel of some sample is [`IGNORE`]d.
    pub fn has_ignored_pixels(&self) -> bool {
        self.samples.iter().any(|s| s.classes.contains(&IGNORE))
    }

    /// Whether every sample has a count density map (the counting model then learns where
    /// the cars are as well as how many there are).
    pub fn has_density(&self) -> bool {
        self.samples.iter().all(|s| !s.density.is_empty())
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `[batch, 3, height, width]`.
    pub fn images(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        // One copy per image into a buffer of the batch's size (a flattening iterator grew
        // the buffer value by value: 4 % of a small network's training step).
        let mut values = Vec::with_capacity(indices.len() * 3 * self.height * self.width);
        for &i in indices {
            values.extend_from_slice(&self.samples[i].image);
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), 3, self.height, self.width]), device)
    }

    /// `[batch, 5]`.
    pub fn counts(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let values: Vec<f32> = indices.iter().flat_map(|i| self.samples[*i].counts).collect();
        Tensor::from_data(TensorData::new(values, [indices.len(), CAR_TYPES]), device)
    }

    /// `[batch, 5, ⌈height / cell⌉, ⌈width / cell⌉]`: the count density summed over
    /// `cell`x`cell` blocks, the resolution of the counting model's density map.
    pub fn densities(&self, indices: &[usize], cell: usize, device: &Device) -> Tensor<4> {
        let (rows, cols) = (self.height.div_ceil(cell), self.width.div_ceil(cell));
        let mut values = vec![0.0; indices.len() * CAR_TYPES * rows * cols];
        for (b, &i) in indices.iter().enumerate() {
            let density = &self.samples[i].density;
            for (plane, pixels) in density.chunks_exact(self.width * self.height).enumerate() {
                let out = (b * CAR_TYPES + plane) * rows * cols;
                for (at, &d) in pixels.iter().enumerate().filter(|(_, d)| **d != 0.0) {
                    let (y, x) = (at / self.width, at % self.width);
                    values[out + (y / cell) * cols + x / cell] += d;
                }
            }
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), CAR_TYPES, rows, cols]), device)
    }

    /// `[batch * height * width]` class indices.
    pub fn classes(&self, indices: &[usize], device: &Device) -> Tensor<1, Int> {
        // Filled per image from exact-size iterators, as `images` is, not grown value by value.
        let mut values = Vec::with_capacity(indices.len() * self.height * self.width);
        for &i in indices {
            values.extend(self.samples[i].classes.iter().map(|c| i64::from(*c)));
        }
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a two-frame dataset in `l2s render`'s layout.
    fn write_export(dir: &Path, semantic_id: u8) {
        for sub in ["image_2", "semantic", "frames"] {
            std::fs::create_dir_all(dir.join(sub)).expect("dir");
        }
        let labels = r#"{"classes": [{"id": 7, "name": "road"}, {"id": 26, "name": "car"}, {"id": 23, "name": "sky"}]}"#;
        std::fs::write(dir.join("labels.json"), labels).expect("labels");
        for (i, count) in [(0, 2.0), (1, 0.0)] {
            let name = format!("{i:06}");
            let rgb = image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8 * 60, y as u8 * 100, 7]));
            rgb.save(dir.join("image_2").join(format!("{name}.png"))).expect("png");
            let ids =
                image::GrayImage::from_fn(4, 2, |x, _| image::Luma([if x < 2 { 7 } else { semantic_id }]));
            ids.save(dir.join("semantic").join(format!("{name}.png"))).expect("png");
            let frame =
                format!(r#"{{"counts": {{"sedan": {count}, "suv": 1, "van": 0, "pickup": 0, "bus": 3}}}}"#);
            std::fs::write(dir.join("frames").join(format!("{name}.json")), frame).expect("frame");
        }
    }

    #[test]
    fn an_exported_dataset_loads_with_counts_and_class_indices() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_export(dir.path(), 26);
        let data = Dataset::load_export(dir.path()).expect("loads");
        assert_eq!((data.width, data.height, data.len()), (4, 2, 2));
        assert_eq!(data.samples[0].counts, [2.0, 1.0, 0.0, 0.0, 3.0]);
        assert_eq!(data.samples[1].counts, [0.0, 1.0, 0.0, 0.0, 3.0]);
        // Road (7) is class 0 of the default table, car (26) class 5.
        assert_eq!(data.samples[0].classes, vec![0, 0, 5, 5, 0, 0, 5, 5]);
        // Channel-major: red of pixel (1, 0) is 60 / 255.
        assert!((data.samples[0].image[1] - 60.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn count_density_spreads_each_counted_car_over_its_pixels_and_pools_to_the_counts() {
        // 4x2 instance map: car 3 (type 1) has 3 pixels, car 5 (type 4) 1, car 9 is not counted.
        let instances = [3, 3, 0, 9, 3, 0, 5, 9];
        let density = count_density(4, 2, &instances, &[(3, 1), (5, 4)]);
        assert_eq!(density.len(), 5 * 8);
        let plane = |t: usize| &density[t * 8..(t + 1) * 8];
        assert_eq!(plane(1), &[1.0 / 3.0, 1.0 / 3.0, 0.0, 0.0, 1.0 / 3.0, 0.0, 0.0, 0.0]);
        assert_eq!(plane(4), &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(plane(0).iter().chain(plane(2)).chain(plane(3)).all(|d| *d == 0.0));

        let sample =
            Sample::from_rgb8(&[0; 24], 4, 2, [0.0, 1.0, 0.0, 0.0, 1.0], Vec::new()).with_density(density);
        let data = Dataset { width: 4, height: 2, samples: vec![sample] };
        assert!(data.has_density());
        let device = Device::flex();
        // 2x2 cells: a 1x2 grid per type; car 3 lies in the left cell, car 5 in the right.
        let pooled: Vec<f32> =
            data.densities(&[0], 2, &device).into_data().try_into_vec_as::<f32>().expect("f32");
        let expected = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert!(pooled.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{pooled:?}");
    }

    #[test]
    fn an_exported_dataset_with_instance_maps_has_count_densities() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_export(dir.path(), 26);
        std::fs::create_dir_all(dir.path().join("instance")).expect("dir");
        for i in 0..2 {
            let name = format!("{i:06}");
            let ids = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(4, 2, |x, _| {
                image::Luma([if x < 2 { 0 } else { 300 }])
            });
            ids.save(dir.path().join("instance").join(format!("{name}.png"))).expect("png");
            let frame = r#"{"counts": {"sedan": 0, "suv": 0, "van": 1, "pickup": 0, "bus": 0},
                "cars": [{"id": 300, "kind": "van", "counted": true}, {"id": 4, "kind": "bus", "counted": false}]}"#;
            std::fs::write(dir.path().join("frames").join(format!("{name}.json")), frame).expect("frame");
        }
        let data = Dataset::load_export(dir.path()).expect("loads");
        assert!(data.has_density());
        let van = &data.samples[0].density[2 * 8..3 * 8];
        assert_eq!(van, &[0.0, 0.0, 0.25, 0.25, 0.0, 0.0, 0.25, 0.25]);
        assert_eq!(data.samples[0].density.iter().sum::<f32>(), 1.0);

        let frame = r#"{"counts": {"sedan": 0, "suv": 0, "van": 1, "pickup": 0, "bus": 0},
            "cars": [{"id": 300, "kind": "tram", "counted": true}]}"#;
        std::fs::write(dir.path().join("frames").join("000001.json"), frame).expect("frame");
        let err = Dataset::load_export(dir.path()).expect_err("unknown kind").to_string();
        assert!(err.contains("frames/000001.json") && err.contains("tram"), "{err}");
    }

    #[test]
    fn a_broken_export_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(Dataset::load_export(dir.path()), Err(DataError::Read { .. })));
        write_export(dir.path(), 99);
        let err = Dataset::load_export(dir.path()).expect_err("id 99 is unknown");
        assert!(err.to_string().contains("99") && err.to_string().contains("semantic/000000.png"), "{err}");
    }
}
