//! Dataset export in standard layouts: KITTI object detection (`image_2/`, `label_2/`),
//! Cityscapes-style label-id masks (`semantic/`), 16-bit instance masks (`instance/`),
//! KITTI-style 16-bit depth (`depth/`, metres × 256, 0 = no depth) and one JSON per frame
//! with counts, boxes and the scene it shows. `labels.json` lists the classes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bevy::math::{Quat, Vec3};
use image::{ImageBuffer, Luma, Rgb};
use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate};
use l2s_scene::{CarType, SceneDescription, TrafficParams, sample_scene};
use serde::{Deserialize, Serialize};

use crate::error::RenderError;
use crate::frame::{Frame, VisibleCar};
use crate::headless::Renderer;
use crate::settings::RenderSettings;
use crate::spawn;

/// What `l2s render` reads: ψ, the master seed and how to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Master seed: scene i uses the seed derived from it for "scene" and index i.
    pub seed: u64,
    pub scene: TrafficParams,
    #[serde(default)]
    pub render: RenderSettings,
}

impl Validate for DatasetConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        self.scene.validate().map_err(|e| e.within("scene"))?;
        self.render.validate().map_err(|e| e.within("render"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "output directory `{}` already exists and is not empty\n  hint: choose a new --out or remove the old one",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("cannot write `{}`: {source}\n  hint: check that the directory is writable and the disk has space", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot encode `{}`: {source}", path.display())]
    Encode { path: PathBuf, source: image::ImageError },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Scene(#[from] l2s_scene::SceneError),
}

/// The per-sample seed of scene `index` under `master`.
pub fn scene_seed(master: u64, index: usize) -> u64 {
    SeedTree::new(master).child("scene").index(index as u64).seed()
}

/// Per-frame annotation written next to the images.
#[derive(Debug, Serialize)]
struct FrameRecord<'a> {
    frame: String,
    seed: u64,
    width: u32,
    height: u32,
    /// Counted cars per type (visible pixels ≥ the threshold).
    counts: std::collections::BTreeMap<&'static str, u32>,
    min_visible_pixels: u32,
    cars: Vec<CarRecord>,
    scene: &'a SceneDescription,
}

#[derive(Debug, Serialize)]
struct CarRecord {
    id: u32,
    kind: &'static str,
    pixels: u32,
    counted: bool,
    /// left, top, right, bottom; inclusive pixel indices.
    bbox: [u32; 4],
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs::write(path, bytes).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

fn save<P, C>(path: &Path, image: &ImageBuffer<P, C>) -> Result<(), ExportError>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    image.save(path).map_err(|source| match source {
        image::ImageError::IoError(source) => ExportError::Write { path: path.to_path_buf(), source },
        source => ExportError::Encode { path: path.to_path_buf(), source },
    })
}

/// KITTI's object type for each car type (KITTI has no bus; it goes to `Truck`).
pub fn kitti_type(kind: CarType) -> &'static str {
    match kind {
        CarType::Sedan | CarType::Suv | CarType::Pickup => "Car",
        CarType::Van => "Van",
        CarType::Bus => "Truck",
    }
}

/// One KITTI label line per visible car: 2-D box from the instance mask, 3-D box from the
/// settled pose in camera coordinates (x right, y down, z forward; location is the bottom
/// centre), truncation from the projected 3-D box, occlusion from visible vs projected area.
pub fn kitti_labels(frame: &Frame) -> String {
    let camera = spawn::camera_transform(&frame.scene);
    let to_camera = camera.to_matrix().inverse();
    let fov = (frame.scene.camera.vertical_fov_deg as f32).to_radians();
    let focal = frame.height as f32 / 2.0 / (fov / 2.0).tan();
    let (cx, cy) = (frame.width as f32 / 2.0, frame.height as f32 / 2.0);
    // Bevy's camera looks down -z with y up; KITTI's looks down +z with y down.
    let kitti = |p: Vec3| -> Vec3 {
        let v = to_camera.transform_point3(p);
        Vec3::new(v.x, -v.y, -v.z)
    };
    let mut out = String::new();
    for car in &frame.cars {
        let Some((desc, pose)) = frame.scene.cars.iter().zip(&frame.poses).find(|(c, _)| c.id == car.id)
        else {
            continue;
        };
        let [l, w, h] = desc.size().map(|v| v as f32);
        let location = kitti(pose.translation);
        let heading = kitti(pose.translation + pose.rotation * Vec3::Z) - location;
        let rotation_y = (-heading.z).atan2(heading.x);
        let alpha = rotation_y - location.x.atan2(location.z);
        let (truncated, projected_area) = projection_stats(
            pose.translation,
            pose.rotation,
            [l, w, h],
            |p| {
                let v = kitti(p);
                (v.z > 0.1).then(|| (cx + focal * v.x / v.z, cy + focal * v.y / v.z))
            },
            frame.width as f32,
            frame.height as f32,
        );
        let occluded = occlusion_level(car, projected_area);
        let [x1, y1, x2, y2] = car.bbox;
        out.push_str(&format!(
            "{} {truncated:.2} {occluded} {alpha:.2} {x1}.00 {y1}.00 {x2}.00 {y2}.00 {h:.2} {w:.2} {l:.2} {:.2} {:.2} {:.2} {rotation_y:.2}\n",
            kitti_type(desc.kind),
            location.x,
            location.y,
            location.z,
        ));
    }
    out
}

/// (fraction of the projected 3-D box outside the image, its area inside the image).
fn projection_stats(
    translation: Vec3,
    rotation: Quat,
    [l, w, h]: [f32; 3],
    project: impl Fn(Vec3) -> Option<(f32, f32)>,
    width: f32,
    height: f32,
) -> (f32, f32) {
    let mut corners = Vec::with_capacity(8);
    for (x, y, z) in [
        (-1., 0., -1.),
        (1., 0., -1.),
        (-1., 0., 1.),
        (1., 0., 1.),
        (-1., 1., -1.),
        (1., 1., -1.),
        (-1., 1., 1.),
        (1., 1., 1.),
    ] {
        let local = Vec3::new(x * w / 2.0, y * h, z * l / 2.0);
        if let Some(p) = project(translation + rotation * local) {
            corners.push(p);
        }
    }
    if corners.len() < 8 {
        return (1.0, 0.0);
    }
    let (mut x0, mut y0, mut x1, mut y1) =
        (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (x, y) in corners {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let full = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let inside = (x1.min(width) - x0.max(0.0)).max(0.0) * (y1.min(height) - y0.max(0.0)).max(0.0);
    if full <= 0.0 { (1.0, 0.0) } else { ((1.0 - inside / full).clamp(0.0, 1.0), inside) }
}

/// KITTI occlusion: 0 fully visible, 1 partly, 2 largely occluded, from the share of the
/// in-image projected box that the visible box covers.
fn occlusion_level(car: &VisibleCar, projected_area: f32) -> u8 {
    let [x1, y1, x2, y2] = car.bbox;
    let visible = ((x2 - x1 + 1) * (y2 - y1 + 1)) as f32;
    let share = if projected_area > 0.0 { visible / projected_area } else { 0.0 };
    if share >= 0.8 {
        0
    } else if share >= 0.4 {
        1
    } else {
        2
    }
}

/// `labels.json`: every class with its Cityscapes id and colour, and the car types.
pub fn labels_json() -> serde_json::Value {
    use l2s_data::cityscapes::{LABEL_NAMES, colour, id};
    let written = [id::ROAD, id::SIDEWALK, id::BUILDING, id::TERRAIN, id::SKY, id::CAR, id::TRUCK, id::BUS];
    let classes: Vec<_> = written
        .iter()
        .map(|&i| serde_json::json!({ "id": i, "name": LABEL_NAMES[usize::from(i)], "colour": colour(i) }))
        .collect();
    let cars: Vec<_> = CarType::ALL
        .iter()
        .map(|k| serde_json::json!({ "name": k.name(), "kitti_type": kitti_type(*k) }))
        .collect();
    serde_json::json!({
        "classes": classes,
        "car_types": cars,
        "semantic": "semantic/*.png: 8-bit Cityscapes label ids by Cityscapes' definitions: lane markings are road 7; sedans, SUVs and vans car 26; pickups truck 27; buses bus 28",
        "instance": "instance/*.png: 16-bit car instance ids, 0 = no car",
        "depth": "depth/*.png: 16-bit, metres x 256 along the view axis, 0 = sky",
    })
}

/// Writes one frame under `out` with the stem `name`.
pub fn write_frame(
    out: &Path,
    name: &str,
    frame: &Frame,
    min_visible_pixels: u32,
) -> Result<(), ExportError> {
    let (w, h) = (frame.width, frame.height);
    // Image and labels as every reader returns them (the sample contract).
    let sample = frame.labelled_image(name.to_string());
    let rgb: ImageBuffer<Rgb<u8>, _> =
        ImageBuffer::from_raw(w, h, sample.rgb).ok_or_else(|| size_error(out))?;
    save(&out.join("image_2").join(format!("{name}.png")), &rgb)?;
    let semantic: ImageBuffer<Luma<u8>, _> =
        ImageBuffer::from_raw(w, h, sample.label_ids.unwrap_or_default()).ok_or_else(|| size_error(out))?;
    save(&out.join("semantic").join(format!("{name}.png")), &semantic)?;
    let instance: ImageBuffer<Luma<u16>, _> =
        ImageBuffer::from_raw(w, h, frame.instances.as_slice()).ok_or_else(|| size_error(out))?;
    save(&out.join("instance").join(format!("{name}.png")), &instance)?;
    let depth: Vec<u16> = frame
        .depth
        .iter()
        .map(|d| if d.is_finite() { (d * 256.0).round().clamp(1.0, 65535.0) as u16 } else { 0 })
        .collect();
    let depth: ImageBuffer<Luma<u16>, _> =
        ImageBuffer::from_raw(w, h, depth).ok_or_else(|| size_error(out))?;
    save(&out.join("depth").join(format!("{name}.png")), &depth)?;
    write(&out.join("label_2").join(format!("{name}.txt")), kitti_labels(frame).as_bytes())?;
    let record = FrameRecord {
        frame: name.to_string(),
        seed: frame.scene.seed,
        width: w,
        height: h,
        counts: CarType::ALL.iter().map(|k| k.name()).zip(frame.counts).collect(),
        min_visible_pixels,
        cars: frame
            .cars
            .iter()
            .map(|c| CarRecord {
                id: c.id,
                kind: c.kind.name(),
                pixels: c.pixels,
                counted: c.counted,
                bbox: c.bbox,
            })
            .collect(),
        scene: &frame.scene,
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|e| ExportError::Write { path: out.to_path_buf(), source: e.into() })?;
    write(&out.join("frames").join(format!("{name}.json")), &json)
}

fn size_error(out: &Path) -> ExportError {
    ExportError::Write {
        path: out.to_path_buf(),
        source: io::Error::other("frame buffers do not match the frame size"),
    }
}

/// Summary of an export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub frames: usize,
    pub cars_counted: u64,
    pub adapter: String,
}

/// Renders `count` scenes from `config` into `out` (created; must be new or empty).
/// `on_frame` is called after each written frame.
pub fn export_dataset(
    config: &DatasetConfig,
    count: usize,
    out: &Path,
    mut on_frame: impl FnMut(usize),
) -> Result<ExportSummary, ExportError> {
    if out.exists() && fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(ExportError::NotEmpty(out.to_path_buf()));
    }
    // The renderer first: without an adapter nothing is written, and a rerun after
    // installing a driver does not find a half-made directory.
    let mut renderer = Renderer::new(config.render.clone())?;
    for dir in ["image_2", "label_2", "semantic", "instance", "depth", "frames"] {
        let path = out.join(dir);
        fs::create_dir_all(&path).map_err(|source| ExportError::Write { path, source })?;
    }
    let labels = serde_json::to_vec_pretty(&labels_json())
        .map_err(|e| ExportError::Write { path: out.join("labels.json"), source: e.into() })?;
    write(&out.join("labels.json"), &labels)?;
    let meta = serde_json::json!({ "config": config, "count": count, "adapter": renderer.adapter() });
    let meta = serde_json::to_vec_pretty(&meta)
        .map_err(|e| ExportError::Write { path: out.join("dataset.json"), source: e.into() })?;
    write(&out.join("dataset.json"), &meta)?;
    let batch = config.render.scenes_per_frame.max(1) as usize;
    let mut cars_counted = 0u64;
    let mut index = 0;
    while index < count {
        let scenes: Vec<SceneDescription> = (index..(index + batch).min(count))
            .map(|i| sample_scene(&config.scene, scene_seed(config.seed, i)))
            .collect::<Result<_, _>>()?;
        for frame in renderer.render(&scenes)? {
            write_frame(out, &format!("{index:06}"), &frame, config.render.min_visible_pixels)?;
            cars_counted += u64::from(frame.counts.iter().sum::<u32>());
            index += 1;
            on_frame(index);
        }
    }
    Ok(ExportSummary { frames: count, cars_counted, adapter: renderer.adapter().name.clone() })
}
