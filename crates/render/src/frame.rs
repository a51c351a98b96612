//! One rendered sample in memory: RGB, exact label maps and what is derived from them
//! (visible cars, per-type counts, 2-D boxes). Pure data; decoding checks exactness.

use half::f16;
use l2s_scene::{CarType, SceneDescription};
use serde::{Deserialize, Serialize};

use crate::labels::SemanticClass;
use crate::physics::CarPose;

/// A car with at least one visible pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisibleCar {
    pub id: u32,
    pub kind: CarType,
    /// Visible pixels of this car in the instance map.
    pub pixels: u32,
    /// Tight box around the visible pixels: left, top, right, bottom, inclusive pixel indices.
    pub bbox: [u32; 4],
    /// Whether it reaches the visibility threshold and so is counted.
    pub counted: bool,
}

/// A labelled frame: every map is row-major, `width` × `height`.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// 8-bit sRGB, 3 bytes a pixel.
    pub rgb: Vec<u8>,
    /// Cityscapes class ids ([`SemanticClass::id`]).
    pub classes: Vec<u8>,
    /// Car instance ids (the scene's `Car::id`), 0 where there is no car.
    pub instances: Vec<u16>,
    /// Distance along the camera's view axis, metres; infinite for sky.
    pub depth: Vec<f32>,
    /// Cars with visible pixels, by id.
    pub cars: Vec<VisibleCar>,
    /// Counted cars of each type, in [`CarType::ALL`] order.
    pub counts: [u32; 5],
    /// The scene that was drawn, and where physics put its cars.
    pub scene: SceneDescription,
    pub poses: Vec<CarPose>,
}

impl Frame {
    /// Cityscapes label ids by Cityscapes' own definitions: lane markings are road (7), and a
    /// car pixel is car 26 (sedan, SUV, van), truck 27 (pickup) or bus 28 by its car's type.
    pub fn cityscapes_ids(&self) -> Vec<u8> {
        use l2s_data::cityscapes::id;
        let kinds: std::collections::HashMap<u16, u8> = self
            .cars
            .iter()
            .filter_map(|car| {
                let label = match car.kind {
                    CarType::Sedan | CarType::Suv | CarType::Van => id::CAR,
                    CarType::Pickup => id::TRUCK,
                    CarType::Bus => id::BUS,
                };
                Some((u16::try_from(car.id).ok()?, label))
            })
            .collect();
        self.classes
            .iter()
            .zip(&self.instances)
            .map(|(&class, instance)| match SemanticClass::from_id(class) {
                Some(SemanticClass::LaneMarking) => id::ROAD,
                Some(SemanticClass::Car) => kinds.get(instance).copied().unwrap_or(id::CAR),
                _ => class,
            })
            .collect()
    }

    /// The frame as the sample contract every reader shares: RGB, Cityscapes ids
    /// ([`Frame::cityscapes_ids`]) and the counted cars per type.
    pub fn labelled_image(&self, name: String) -> l2s_data::LabelledImage {
        l2s_data::LabelledImage {
            name,
            width: self.width,
            height: self.height,
            rgb: self.rgb.clone(),
            label_ids: Some(self.cityscapes_ids()),
            counts: Some(self.counts),
        }
    }

    /// RGB next to the class map in Cityscapes colours, for figures and reports.
    pub fn side_by_side(&self) -> image::RgbImage {
        let (w, h) = (self.width, self.height);
        image::RgbImage::from_fn(2 * w, h, |x, y| {
            let i = (y * w + x % w) as usize;
            if x < w {
                image::Rgb([self.rgb[3 * i], self.rgb[3 * i + 1], self.rgb[3 * i + 2]])
            } else {
                image::Rgb(SemanticClass::from_id(self.classes[i]).map_or([0, 0, 0], SemanticClass::colour))
            }
        })
    }
}

/// Why a label readback is not an exact label map.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelError {
    #[error("label pixel ({x}, {y}) holds class value {value}, which is not a class id")]
    Class { x: u32, y: u32, value: f32 },
    #[error("label pixel ({x}, {y}) holds instance value {value}, which is not a car of the scene")]
    Instance { x: u32, y: u32, value: f32 },
    #[error("label pixel ({x}, {y}) is a car of class {class} but a car must have class {car}", car = SemanticClass::Car.id())]
    Mismatch { x: u32, y: u32, class: u8 },
    #[error("readback holds {got} bytes, a {width}x{height} image needs {need}")]
    Size { got: usize, need: usize, width: u32, height: u32 },
    /// Every scene shows the ground below the horizon, so a label image of sky only means
    /// that the draws went missing (a renderer or driver fault), not an empty view.
    #[error(
        "every label pixel is sky: nothing was drawn (a renderer or graphics driver fault; \
         the scene always shows the ground)"
    )]
    NothingDrawn,
}

/// Bytes per row of a texture copy, padded as wgpu requires.
pub fn padded_row(width: u32, bytes_per_pixel: u32) -> usize {
    let row = (width * bytes_per_pixel) as usize;
    row.div_ceil(256) * 256
}

/// Drops the row padding and the alpha channel of an Rgba8 readback.
pub fn decode_rgb(data: &[u8], width: u32, height: u32) -> Result<Vec<u8>, LabelError> {
    let stride = padded_row(width, 4);
    let need = stride * height as usize;
    if data.len() < need {
        return Err(LabelError::Size { got: data.len(), need, width, height });
    }
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for row in data.chunks(stride).take(height as usize) {
        for px in row[..(width * 4) as usize].chunks_exact(4) {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    Ok(rgb)
}

/// The label maps of one frame.
pub struct LabelMaps {
    pub classes: Vec<u8>,
    pub instances: Vec<u16>,
    pub depth: Vec<f32>,
}

/// Decodes an Rgba16Float label readback (class, instance, depth, coverage) and checks
/// that every pixel holds a valid class id and, for cars, an instance of `scene`, and that
/// not every pixel is sky.
pub fn decode_labels(
    data: &[u8],
    width: u32,
    height: u32,
    scene: &SceneDescription,
) -> Result<LabelMaps, LabelError> {
    let stride = padded_row(width, 8);
    let need = stride * height as usize;
    if data.len() < need {
        return Err(LabelError::Size { got: data.len(), need, width, height });
    }
    let n = (width * height) as usize;
    let mut maps = LabelMaps {
        classes: Vec::with_capacity(n),
        instances: Vec::with_capacity(n),
        depth: Vec::with_capacity(n),
    };
    let max_id = scene.cars.iter().map(|c| c.id).max().unwrap_or(0);
    let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    for (y, row) in data.chunks(stride).take(height as usize).enumerate() {
        for (x, px) in row[..(width * 8) as usize].chunks_exact(8).enumerate() {
            let (x, y) = (x as u32, y as u32);
            let (class, instance, depth, coverage) =
                (half(&px[0..2]), half(&px[2..4]), half(&px[4..6]), half(&px[6..8]));
            let class_id = class as u8;
            if f32::from(class_id) != class || SemanticClass::from_id(class_id).is_none() {
                return Err(LabelError::Class { x, y, value: class });
            }
            let instance_id = instance as u16;
            if f32::from(instance_id) != instance || u32::from(instance_id) > max_id {
                return Err(LabelError::Instance { x, y, value: instance });
            }
            if (instance_id > 0) != (class_id == SemanticClass::Car.id()) {
                return Err(LabelError::Mismatch { x, y, class: class_id });
            }
            maps.classes.push(class_id);
            maps.instances.push(instance_id);
            maps.depth.push(if coverage > 0.0 { depth } else { f32::INFINITY });
        }
    }
    if maps.classes.iter().all(|&class| class == SemanticClass::Sky.id()) {
        return Err(LabelError::NothingDrawn);
    }
    Ok(maps)
}

/// Visible cars with their pixel counts and boxes, from the instance map.
pub fn visible_cars(
    instances: &[u16],
    width: u32,
    scene: &SceneDescription,
    min_pixels: u32,
) -> Vec<VisibleCar> {
    let mut cars: Vec<VisibleCar> = Vec::new();
    let mut slot = vec![usize::MAX; scene.cars.iter().map(|c| c.id as usize + 1).max().unwrap_or(1)];
    for (i, &id) in instances.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let (x, y) = ((i as u32) % width, (i as u32) / width);
        let index = slot[id as usize];
        if index == usize::MAX {
            let kind = scene.cars.iter().find(|c| c.id == u32::from(id)).map_or(CarType::Sedan, |c| c.kind);
            slot[id as usize] = cars.len();
            cars.push(VisibleCar { id: u32::from(id), kind, pixels: 1, bbox: [x, y, x, y], counted: false });
        } else {
            let car = &mut cars[index];
            car.pixels += 1;
            car.bbox = [car.bbox[0].min(x), car.bbox[1].min(y), car.bbox[2].max(x), car.bbox[3].max(y)];
        }
    }
    for car in &mut cars {
        car.counted = car.pixels >= min_pixels;
    }
    cars.sort_by_key(|c| c.id);
    cars
}

/// Counted cars per type, in [`CarType::ALL`] order.
pub fn count_by_type(cars: &[VisibleCar]) -> [u32; 5] {
    let mut counts = [0; 5];
    for car in cars.iter().filter(|c| c.counted) {
        counts[car.kind.index()] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use l2s_scene::{TrafficParams, sample_scene};

    use super::*;

    fn encode(values: &[[f32; 4]], width: u32) -> Vec<u8> {
        let stride = padded_row(width, 8);
        let mut data = Vec::new();
        for row in values.chunks(width as usize) {
            let mut bytes: Vec<u8> =
                row.iter().flatten().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
            bytes.resize(stride, 0);
            data.extend(bytes);
        }
        data
    }

    #[test]
    fn labels_decode_and_cars_are_counted_from_the_instance_map() {
        let p = TrafficParams { cars_per_lane_100m: 5.0, ..TrafficParams::default() };
        let scene = sample_scene(&p, 4).expect("valid");
        assert!(scene.cars.len() >= 2);
        let (a, b) = (&scene.cars[0], &scene.cars[1]);
        let sky = [23.0, 0.0, 0.0, 0.0];
        let road = [7.0, 0.0, 12.5, 1.0];
        let car = |id: u32| [26.0, id as f32, 8.0, 1.0];
        // 4x3: car a covers three pixels, car b one.
        let pixels =
            [sky, sky, car(a.id), car(a.id), road, car(b.id), car(a.id), road, road, road, road, road];
        let maps = decode_labels(&encode(&pixels, 4), 4, 3, &scene).expect("exact");
        assert_eq!(maps.classes, vec![23, 23, 26, 26, 7, 26, 26, 7, 7, 7, 7, 7]);
        assert!(maps.depth[0].is_infinite());
        assert_eq!(maps.depth[4], 12.5);
        let cars = visible_cars(&maps.instances, 4, &scene, 2);
        assert_eq!(cars.len(), 2);
        assert_eq!(
            cars.iter().find(|c| c.id == a.id).map(|c| (c.pixels, c.bbox, c.counted)),
            Some((3, [2, 0, 3, 1], true))
        );
        assert_eq!(
            cars.iter().find(|c| c.id == b.id).map(|c| (c.pixels, c.bbox, c.counted)),
            Some((1, [1, 1, 1, 1], false))
        );
        let counts = count_by_type(&cars);
        assert_eq!(counts.iter().sum::<u32>(), 1);
        assert_eq!(counts[a.kind.index()], 1);
    }

    #[test]
    fn cityscapes_ids_follow_cityscapes_definitions() {
        let scene = sample_scene(&TrafficParams::default(), 1).expect("valid");
        let car = |id: u32, kind: CarType| VisibleCar { id, kind, pixels: 1, bbox: [0; 4], counted: true };
        let frame = Frame {
            width: 6,
            height: 1,
            rgb: vec![0; 18],
            // Lane marking, road, sedan, pickup, bus, van.
            classes: vec![34, 7, 26, 26, 26, 26],
            instances: vec![0, 0, 1, 2, 3, 4],
            depth: vec![1.0; 6],
            cars: vec![
                car(1, CarType::Sedan),
                car(2, CarType::Pickup),
                car(3, CarType::Bus),
                car(4, CarType::Van),
            ],
            counts: [1, 0, 1, 1, 1],
            scene,
            poses: Vec::new(),
        };
        assert_eq!(frame.cityscapes_ids(), vec![7, 7, 26, 27, 28, 26]);
        let sample = frame.labelled_image("000000".into());
        assert_eq!(sample.label_ids, Some(vec![7, 7, 26, 27, 28, 26]));
        assert_eq!((sample.width, sample.height, sample.counts), (6, 1, Some([1, 0, 1, 1, 1])));
    }

    #[test]
    fn inexact_labels_are_refused() {
        let scene = sample_scene(&TrafficParams::default(), 1).expect("valid");
        let blended = [[15.0, 0.0, 3.0, 1.0]; 4];
        assert!(matches!(decode_labels(&encode(&blended, 2), 2, 2, &scene), Err(LabelError::Class { .. })));
        let fractional = [[7.5, 0.0, 3.0, 1.0]; 4];
        assert!(matches!(
            decode_labels(&encode(&fractional, 2), 2, 2, &scene),
            Err(LabelError::Class { .. })
        ));
        let stray_instance = [[7.0, 1.0, 3.0, 1.0]; 4];
        assert!(matches!(
            decode_labels(&encode(&stray_instance, 2), 2, 2, &scene),
            Err(LabelError::Mismatch { .. } | LabelError::Instance { .. })
        ));
        assert!(matches!(decode_labels(&[0; 16], 2, 2, &scene), Err(LabelError::Size { .. })));
        let sky = [f32::from(SemanticClass::Sky.id()), 0.0, 0.0, 0.0];
        assert!(matches!(decode_labels(&encode(&[sky; 4], 2), 2, 2, &scene), Err(LabelError::NothingDrawn)));
    }
}
