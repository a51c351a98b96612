//! Datasets on disk: which layout a directory has, and reading its frames into
//! [`LabelledImage`]s. Every failure names the file and says what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::ColorType;
use serde::{Deserialize, Serialize};

use crate::cityscapes::LABEL_NAMES;
use crate::sample::{CAR_TYPE_NAMES, LabelledImage};

/// A directory's layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Found from the directory's contents (the order of the variants below).
    #[default]
    Auto,
    /// `l2s render`'s export: `labels.json`, `image_2/`, `semantic/`, `frames/`.
    Export,
    /// KITTI's semantic segmentation benchmark: `training/image_2/*.png` with
    /// `training/semantic/*.png` (8-bit Cityscapes label ids), or the two folders at the top.
    Kitti,
    /// Cityscapes: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with
    /// `gtFine/<split>/<city>/*_gtFine_labelIds.png`.
    Cityscapes,
}

/// Where a counting target's per-type car counts come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CountSource {
    /// `counts/<frame>.json`, `{"sedan": n, "suv": n, "van": n, "pickup": n, "bus": n}`
    /// (for `l2s render`'s export: the `counts` of `frames/<frame>.json`).
    #[default]
    Json,
    /// KITTI object labels `label_2/<frame>.txt`: each object whose type is a key of the map
    /// counts as the car type it names (`{"Car": "sedan", "Van": "van"}`); others are skipped.
    KittiLabels(BTreeMap<String, String>),
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("`{}` does not exist\n  hint: --target-data must name a dataset directory", path.display())]
    Missing { path: PathBuf },
    #[error(
        "`{}` is not a dataset layout l2s reads: {found}\n  expected one of:\n    KITTI semantic: training/image_2/*.png + training/semantic/*.png (or image_2/ + semantic/ at the top)\n    Cityscapes: leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine/<split>/<city>/*_gtFine_labelIds.png\n    l2s render's export: labels.json, image_2/, semantic/, frames/",
        path.display()
    )]
    Unrecognised { path: PathBuf, found: String },
    #[error("`{}` holds no PNG images", path.display())]
    Empty { path: PathBuf },
    #[error("image `{}` has no label file `{}`", image.display(), expected.display())]
    NoLabel { image: PathBuf, expected: PathBuf },
    #[error("label file `{}` has no image `{}`", label.display(), expected.display())]
    NoImage { label: PathBuf, expected: PathBuf },
    #[error("`{}` is not a PNG file (images and labels are read as PNG)", path.display())]
    NotPng { path: PathBuf },
    #[error("cannot read `{}`: {cause}", path.display())]
    Read { path: PathBuf, cause: String },
    #[error("`{}`: {what}", path.display())]
    Format { path: PathBuf, what: String },
    #[error(
        "`{}`: pixel ({x}, {y}) has label id {id}, which is not a Cityscapes label id (0 to 33)\n  hint: label files hold 8-bit Cityscapes label ids (*_labelIds.png), not train ids or colours",
        path.display()
    )]
    LabelId { path: PathBuf, id: u8, x: u32, y: u32 },
    #[error("`{}` is {got}, its image `{}` is {expected}", label.display(), image.display())]
    SizeMismatch { label: PathBuf, image: PathBuf, got: String, expected: String },
    #[error("{0}")]
    Split(String),
}

/// A target directory read into memory.
#[derive(Debug, Clone)]
pub struct TargetDir {
    pub root: PathBuf,
    /// The layout found (never `Auto`).
    pub layout: Layout,
    /// Frames sorted by name.
    pub frames: Vec<LabelledImage>,
    /// Horizontal field of view of the first frame's camera, from KITTI's `calib/` (P2).
    pub hfov_deg: Option<f64>,
}

/// What to read besides the images.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub labels: bool,
    pub counts: Option<&'a CountSource>,
}

/// Reads the dataset in `dir` in `layout` (found when `Auto`).
pub fn read_target_dir(dir: &Path, layout: Layout, wanted: Wanted<'_>) -> Result<TargetDir, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing { path: dir.to_path_buf() });
    }
    let layout = match layout {
        Layout::Auto => detect(dir)?,
        other => other,
    };
    let (root, pairs) = match layout {
        Layout::Auto | Layout::Kitti => {
            let root = if dir.join("training").join("image_2").is_dir() {
                dir.join("training")
            } else {
                dir.to_path_buf()
            };
            let pairs = flat_pairs(&root, "image_2", "semantic", wanted.labels)?;
            (root, pairs)
        }
        Layout::Export => (dir.to_path_buf(), flat_pairs(dir, "image_2", "semantic", wanted.labels)?),
        Layout::Cityscapes => (dir.to_path_buf(), cityscapes_pairs(dir)?),
    };
    let mut frames = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        let mut frame = read_image(&pair.image, &pair.name)?;
        if wanted.labels {
            frame.label_ids = Some(read_label_ids(&pair.label, &pair.image, (frame.width, frame.height))?);
        }
        if let Some(source) = wanted.counts {
            frame.counts = Some(read_counts(&root, layout, source, &pair.name)?);
        }
        frames.push(frame);
    }
    let hfov_deg = match (layout, frames.first()) {
        (Layout::Kitti, Some(first)) => {
            calib_hfov(&root.join("calib").join(format!("{}.txt", first.name)), first.width)?
        }
        _ => None,
    };
    Ok(TargetDir { root, layout, frames, hfov_deg })
}

fn detect(dir: &Path) -> Result<Layout, DataError> {
    let has = |p: &str| dir.join(p).exists();
    if has("labels.json") && has("frames") && has("image_2") {
        return Ok(Layout::Export);
    }
    let kitti_labels =
        |root: &str| ["semantic", "label_2", "counts"].iter().any(|l| has(&format!("{root}{l}")));
    if (has("training/image_2") && kitti_labels("training/")) || (has("image_2") && kitti_labels("")) {
        return Ok(Layout::Kitti);
    }
    if has("leftImg8bit") && has("gtFine") {
        return Ok(Layout::Cityscapes);
    }
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| DataError::Read { path: dir.to_path_buf(), cause: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    found.sort();
    let found =
        if found.is_empty() { "it is empty".to_string() } else { format!("it holds {}", found.join(", ")) };
    Err(DataError::Unrecognised { path: dir.to_path_buf(), found })
}

struct Pair {
    name: String,
    image: PathBuf,
    label: PathBuf,
}

/// PNG stems of `dir` (sorted); any other file is refused, hidden files skipped.
fn png_stems(dir: &Path) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::Read { path: dir.to_path_buf(), cause: e.to_string() })?;
    let mut stems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::Read { path: dir.to_path_buf(), cause: e.to_string() })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || entry.path().is_dir() {
            continue;
        }
        match name.strip_suffix(".png") {
            Some(stem) => stems.push(stem.to_string()),
            None => return Err(DataError::NotPng { path: entry.path() }),
        }
    }
    stems.sort();
    Ok(stems)
}

/// `image_dir/<name>.png` with `label_dir/<name>.png`, both ways checked when `labelled`.
fn flat_pairs(root: &Path, image_dir: &str, label_dir: &str, labelled: bool) -> Result<Vec<Pair>, DataError> {
    let (images, labels) = (root.join(image_dir), root.join(label_dir));
    for dir in [&images, &labels].into_iter().take(if labelled { 2 } else { 1 }) {
        if !dir.is_dir() {
            return Err(DataError::Missing { path: dir.clone() });
        }
    }
    let names = png_stems(&images)?;
    if names.is_empty() {
        return Err(DataError::Empty { path: images });
    }
    if !labelled {
        let pair =
            |name: String| Pair { image: images.join(format!("{name}.png")), label: PathBuf::new(), name };
        return Ok(names.into_iter().map(pair).collect());
    }
    for label in png_stems(&labels)? {
        if names.binary_search(&label).is_err() {
            return Err(DataError::NoImage {
                label: labels.join(format!("{label}.png")),
                expected: images.join(format!("{label}.png")),
            });
        }
    }
    names
        .into_iter()
        .map(|name| {
            let (image, label) = (images.join(format!("{name}.png")), labels.join(format!("{name}.png")));
            if !label.is_file() {
                return Err(DataError::NoLabel { image, expected: label });
            }
            Ok(Pair { name, image, label })
        })
        .collect()
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::Read { path: dir.to_path_buf(), cause: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn cityscapes_pairs(dir: &Path) -> Result<Vec<Pair>, DataError> {
    const IMAGE: &str = "_leftImg8bit";
    const LABEL: &str = "_gtFine_labelIds";
    let (images, labels) = (dir.join("leftImg8bit"), dir.join("gtFine"));
    let mut pairs = Vec::new();
    for split in sorted_dirs(&images)? {
        for city in sorted_dirs(&split)? {
            let rel = city.strip_prefix(&images).unwrap_or(&city).to_path_buf();
            for stem in png_stems(&city)? {
                let Some(frame) = stem.strip_suffix(IMAGE) else {
                    return Err(DataError::Format {
                        path: city.join(format!("{stem}.png")),
                        what: format!("a Cityscapes image's name ends in `{IMAGE}.png`"),
                    });
                };
                let image = city.join(format!("{stem}.png"));
                let label = labels.join(&rel).join(format!("{frame}{LABEL}.png"));
                if !label.is_file() {
                    return Err(DataError::NoLabel { image, expected: label });
                }
                let name = format!("{}/{frame}", rel.to_string_lossy());
                pairs.push(Pair { name, image, label });
            }
        }
    }
    // Labels without an image.
    if labels.is_dir() {
        for split in sorted_dirs(&labels)? {
            for city in sorted_dirs(&split)? {
                let rel = city.strip_prefix(&labels).unwrap_or(&city).to_path_buf();
                for stem in png_stems(&city)? {
                    if let Some(frame) = stem.strip_suffix(LABEL) {
                        let expected = images.join(&rel).join(format!("{frame}{IMAGE}.png"));
                        if !expected.is_file() {
                            return Err(DataError::NoImage {
                                label: city.join(format!("{stem}.png")),
                                expected,
                            });
                        }
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return Err(DataError::Empty { path: images });
    }
    Ok(pairs)
}

fn decode(path: &Path) -> Result<image::DynamicImage, DataError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DataError::Read { path: path.to_path_buf(), cause: e.to_string() })?;
    if image::guess_format(&bytes).ok() != Some(image::ImageFormat::Png) {
        return Err(DataError::NotPng { path: path.to_path_buf() });
    }
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| DataError::Read { path: path.to_path_buf(), cause: e.to_string() })
}

fn read_image(path: &Path, name: &str) -> Result<LabelledImage, DataError> {
    let rgb = decode(path)?.to_rgb8();
    Ok(LabelledImage {
        name: name.to_string(),
        width: rgb.width(),
        height: rgb.height(),
        rgb: rgb.into_raw(),
        label_ids: None,
        counts: None,
    })
}

fn read_label_ids(path: &Path, image: &Path, (w, h): (u32, u32)) -> Result<Vec<u8>, DataError> {
    let decoded = decode(path)?;
    if decoded.color() != ColorType::L8 {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            what: format!(
                "is a {:?} image; label files are 8-bit greyscale Cityscapes label ids (not colours or 16-bit)",
                decoded.color()
            ),
        });
    }
    let ids = decoded.to_luma8();
    if ids.dimensions() != (w, h) {
        return Err(DataError::SizeMismatch {
            label: path.to_path_buf(),
            image: image.to_path_buf(),
            got: format!("{}x{}", ids.width(), ids.height()),
            expected: format!("{w}x{h}"),
        });
    }
    if let Some(at) = ids.as_raw().iter().position(|&id| usize::from(id) >= LABEL_NAMES.len()) {
        let at = at as u32;
        return Err(DataError::LabelId {
            path: path.to_path_buf(),
            id: ids.as_raw()[at as usize],
            x: at % w,
            y: at / w,
        });
    }
    Ok(ids.into_raw())
}

fn read_counts(root: &Path, layout: Layout, source: &CountSource, name: &str) -> Result<[u32; 5], DataError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| DataError::Read { path: path.to_path_buf(), cause: e.to_string() })
    };
    match source {
        CountSource::Json => {
            let leaf = name.rsplit('/').next().unwrap_or(name);
            let (path, pointer) = if layout == Layout::Export {
                (root.join("frames").join(format!("{name}.json")), "/counts")
            } else {
                (root.join("counts").join(format!("{leaf}.json")), "")
            };
            let json: serde_json::Value = serde_json::from_str(&read(&path)?)
                .map_err(|e| DataError::Format { path: path.clone(), what: e.to_string() })?;
            let counts = json.pointer(pointer).unwrap_or(&serde_json::Value::Null);
            let mut out = [0; 5];
            for (i, kind) in CAR_TYPE_NAMES.iter().enumerate() {
                out[i] = counts[kind].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| DataError::Format {
                    path: path.clone(),
                    what: format!(
                        "no whole-number count for `{kind}`; expected {{\"sedan\": n, \"suv\": n, \"van\": n, \"pickup\": n, \"bus\": n}}"
                    ),
                })?;
            }
            Ok(out)
        }
        CountSource::KittiLabels(type_map) => {
            let path = root.join("label_2").join(format!("{name}.txt"));
            let mut out = [0; 5];
            for (line_no, line) in read(&path)?.lines().enumerate() {
                let Some(kind) = line.split_whitespace().next() else { continue };
                if line.split_whitespace().count() < 15 {
                    return Err(DataError::Format {
                        path: path.clone(),
                        what: format!("line {} has fewer than KITTI's 15 fields", line_no + 1),
                    });
                }
                if let Some(car) = type_map.get(kind) {
                    let index =
                        CAR_TYPE_NAMES.iter().position(|n| n == car).ok_or_else(|| DataError::Format {
                            path: path.clone(),
                            what: format!(
                                "the type map sends `{kind}` to `{car}`, not one of {}",
                                CAR_TYPE_NAMES.join(", ")
                            ),
                        })?;
                    out[index] += 1;
                }
            }
            Ok(out)
        }
    }
}

/// Horizontal field of view from a KITTI calibration file's `P2` (focal length `fx`).
fn calib_hfov(path: &Path, width: u32) -> Result<Option<f64>, DataError> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let Some(line) = text.lines().find(|l| l.starts_with("P2:")) else { return Ok(None) };
    let fx: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .filter(|fx: &f64| fx.is_finite() && *fx > 0.0)
        .ok_or_else(|| DataError::Format {
            path: path.to_path_buf(),
            what: "P2 has no positive focal length".into(),
        })?;
    Ok(Some((2.0 * (f64::from(width) / 2.0 / fx).atan()).to_degrees()))
}
