//! Procedural geometry, generated in code: boxes, extruded side profiles, wheels and the
//! five car silhouettes. Pure data (positions, normals, vertex colours, indices) so it can
//! be tested without a GPU; [`Geometry::into_mesh`] hands it to Bevy.
//!
//! Convention for cars: origin at the centre of the footprint on the ground, +z forward,
//! +y up, +x to the car's left. Faces have flat normals (one vertex per face corner) so
//! lighting shows the silhouette's edges.

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, Mesh, PrimitiveTopology};
use l2s_scene::CarType;

/// Vertex colours multiply the material's base colour: body parts are white so the car's
/// paint shows, glass and tyres are dark whatever the paint.
pub const PAINT: [f32; 4] = [1.0, 1.0, 1.0, 1.0];
pub const GLASS: [f32; 4] = [0.08, 0.09, 0.11, 1.0];
pub const TYRE: [f32; 4] = [0.025, 0.025, 0.025, 1.0];
pub const LAMP: [f32; 4] = [1.4, 1.3, 1.0, 1.0];

/// Triangle soup with flat normals and per-vertex colours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geometry {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub colours: Vec<[f32; 4]>,
    pub indices: Vec<u32>,
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn normalise(v: [f32; 3]) -> [f32; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if n > 0.0 { [v[0] / n, v[1] / n, v[2] / n] } else { [0.0, 1.0, 0.0] }
}

impl Geometry {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// A planar convex polygon, corners counter-clockwise seen from outside.
    pub fn polygon(&mut self, corners: &[[f32; 3]], colour: [f32; 4]) {
        if corners.len() < 3 {
            return;
        }
        let normal = normalise(cross(sub(corners[1], corners[0]), sub(corners[2], corners[0])));
        let base = u32::try_from(self.positions.len()).unwrap_or(u32::MAX);
        for &c in corners {
            self.positions.push(c);
            self.normals.push(normal);
            self.colours.push(colour);
        }
        for i in 1..corners.len() as u32 - 1 {
            self.indices.extend([base, base + i, base + i + 1]);
        }
    }

    /// A rectangle around `centre`, spanning ±`right` and ±`up`; it faces `right` × `up`.
    pub fn quad(&mut self, centre: [f32; 3], right: [f32; 3], up: [f32; 3], colour: [f32; 4]) {
        let corner =
            |sr: f32, su: f32| -> [f32; 3] { [0, 1, 2].map(|k| centre[k] + sr * right[k] + su * up[k]) };
        self.polygon(&[corner(-1.0, -1.0), corner(1.0, -1.0), corner(1.0, 1.0), corner(-1.0, 1.0)], colour);
    }

    /// An axis-aligned box between `min` and `max`, one colour per face group.
    pub fn cuboid(&mut self, min: [f32; 3], max: [f32; 3], sides: [f32; 4], top: [f32; 4]) {
        let [x0, y0, z0] = min;
        let [x1, y1, z1] = max;
        self.polygon(&[[x0, y1, z0], [x0, y1, z1], [x1, y1, z1], [x1, y1, z0]], top);
        self.polygon(&[[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]], sides);
        self.polygon(&[[x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], sides);
        self.polygon(&[[x1, y0, z0], [x0, y0, z0], [x0, y1, z0], [x1, y1, z0]], sides);
        self.polygon(&[[x1, y0, z1], [x1, y0, z0], [x1, y1, z0], [x1, y1, z1]], sides);
        self.polygon(&[[x0, y0, z0], [x0, y0, z1], [x0, y1, z1], [x0, y1, z0]], sides);
    }

    /// A convex side profile extruded symmetrically to `width` along x. The profile's points
    /// are (z, y), counter-clockwise in the (z, y) plane: forward along the bottom, up the
    /// front, back over the top. `edge_colour(i)` colours the face from point i to i + 1
    /// (roof, windscreen, ...); the two flat sides get `side`.
    pub fn extrude(
        &mut self,
        profile: &[[f32; 2]],
        width: f32,
        side: [f32; 4],
        edge_colour: impl Fn(usize) -> [f32; 4],
    ) {
        let h = width / 2.0;
        let right: Vec<[f32; 3]> = profile.iter().rev().map(|&[z, y]| [h, y, z]).collect();
        let left: Vec<[f32; 3]> = profile.iter().map(|&[z, y]| [-h, y, z]).collect();
        self.polygon(&right, side);
        self.polygon(&left, side);
        for i in 0..profile.len() {
            let [za, ya] = profile[i];
            let [zb, yb] = profile[(i + 1) % profile.len()];
            self.polygon(&[[h, yb, zb], [-h, yb, zb], [-h, ya, za], [h, ya, za]], edge_colour(i));
        }
    }

    /// A wheel: a cylinder along x centred at `centre`.
    pub fn wheel(&mut self, centre: [f32; 3], radius: f32, width: f32) {
        const SEGMENTS: usize = 12;
        let ring: Vec<[f32; 2]> = (0..SEGMENTS)
            .map(|i| {
                let a = i as f32 / SEGMENTS as f32 * std::f32::consts::TAU;
                [radius * a.cos(), radius * a.sin()]
            })
            .collect();
        let mut tyre = Geometry::default();
        tyre.extrude(&ring, width, TYRE, |_| TYRE);
        self.append(&tyre, centre);
    }

    /// Appends `other`, moved by `offset`.
    pub fn append(&mut self, other: &Geometry, offset: [f32; 3]) {
        let base = u32::try_from(self.positions.len()).unwrap_or(u32::MAX);
        self.positions
            .extend(other.positions.iter().map(|p| [p[0] + offset[0], p[1] + offset[1], p[2] + offset[2]]));
        self.normals.extend_from_slice(&other.normals);
        self.colours.extend_from_slice(&other.colours);
        self.indices.extend(other.indices.iter().map(|i| i + base));
    }

    /// Axis-aligned bounds (min, max); zero for an empty geometry.
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        if self.positions.is_empty() {
            return ([0.0; 3], [0.0; 3]);
        }
        let mut min = [f32::INFINITY; 3];
        let mut max = [f32::NEG_INFINITY; 3];
        for p in &self.positions {
            for k in 0..3 {
                min[k] = min[k].min(p[k]);
                max[k] = max[k].max(p[k]);
            }
        }
        (min, max)
    }

    /// The Bevy mesh; its CPU copy is dropped once uploaded.
    pub fn into_mesh(self) -> Mesh {
        Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, self.positions)
            .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, self.normals)
            .with_inserted_attribute(Mesh::ATTRIBUTE_COLOR, self.colours)
            .with_inserted_indices(Indices::U32(self.indices))
    }
}

/// Radius of the wheels and distance of the axles from the car's ends, metres.
fn wheel_layout(kind: CarType) -> (f32, f32) {
    match kind {
        CarType::Sedan => (0.32, 0.85),
        CarType::Suv => (0.38, 0.85),
        CarType::Van => (0.36, 0.8),
        CarType::Pickup => (0.4, 0.9),
        CarType::Bus => (0.5, 2.2),
    }
}

/// The car of `kind` at the size [`CarType::size`] gives, footprint centred on the origin.
///
/// Silhouettes: sedan three boxes (bonnet, low cabin, boot); SUV two boxes, tall and
/// square; van one box with a short sloped nose; pickup a cab and an open bed; bus a
/// long box with a band of windows.
pub fn car(kind: CarType) -> Geometry {
    let [length, width, height] = kind.size().map(|v| v as f32);
    let (radius, axle_inset) = wheel_layout(kind);
    let (l, w, h) = (length / 2.0, width, height);
    let clearance = radius * 0.55;
    let mut g = Geometry::default();
    match kind {
        CarType::Sedan => {
            let belt = 0.55 * h;
            g.extrude(
                &[[-l, clearance], [l, clearance], [l, belt - 0.1], [l - 0.9, belt], [-l + 0.1, belt]],
                w,
                PAINT,
                |_| PAINT,
            );
            // Cabin: rear window, roof, windscreen.
            g.extrude(
                &[[-l + 1.1, belt], [l - 1.5, belt], [l - 2.4, h], [-l + 1.9, h]],
                w - 0.12,
                GLASS,
                glass_band_roof(2),
            );
        }
        CarType::Suv => {
            let belt = 0.5 * h;
            g.extrude(
                &[[-l, clearance], [l, clearance], [l, belt - 0.08], [l - 1.0, belt], [-l, belt]],
                w,
                PAINT,
                |_| PAINT,
            );
            g.extrude(
                &[[-l + 0.05, belt], [l - 1.25, belt], [l - 1.9, h], [-l + 0.15, h]],
                w - 0.1,
                GLASS,
                glass_band_roof(2),
            );
        }
        CarType::Van => {
            let belt = 0.45 * h;
            g.extrude(
                &[[-l, clearance], [l, clearance], [l, belt], [l - 0.3, belt + 0.1], [-l, belt + 0.1]],
                w,
                PAINT,
                |_| PAINT,
            );
            g.extrude(&[[-l, belt + 0.1], [l - 0.3, belt + 0.1], [l - 1.1, h], [-l, h]], w, PAINT, |i| {
                if i == 1 { GLASS } else { PAINT }
            });
        }
        CarType::Pickup => {
            let belt = 0.55 * h;
            g.extrude(
                &[[-l, clearance], [l, clearance], [l, belt - 0.05], [l - 1.3, belt], [-l, belt]],
                w,
                PAINT,
                |_| PAINT,
            );
            // Cab only over the front half; the bed behind stays open with low side walls.
            g.extrude(
                &[[-0.35, belt], [l - 1.6, belt], [l - 2.2, h], [-0.3, h]],
                w - 0.1,
                GLASS,
                glass_band_roof(2),
            );
            let rail = belt + 0.35;
            g.cuboid([-w / 2.0, belt, -l], [-w / 2.0 + 0.08, rail, -0.4], PAINT, PAINT);
            g.cuboid([w / 2.0 - 0.08, belt, -l], [w / 2.0, rail, -0.4], PAINT, PAINT);
            g.cuboid([-w / 2.0, belt, -l], [w / 2.0, rail, -l + 0.08], PAINT, PAINT);
        }
        CarType::Bus => {
            let sill = 0.55 * h;
            let top = 0.88 * h;
            g.cuboid([-w / 2.0, clearance, -l], [w / 2.0, sill, l], PAINT, PAINT);
            g.extrude(&[[-l, sill], [l, sill], [l, top], [-l, top]], w, GLASS, |_| GLASS);
            g.cuboid([-w / 2.0, top, -l], [w / 2.0, h, l], PAINT, PAINT);
        }
    }
    // Lamps on the front face, slightly proud of it.
    let lamp_y = clearance + 0.25;
    for side in [-1.0, 1.0] {
        let x = side * (w / 2.0 - 0.3);
        g.polygon(
            &[
                [x + 0.15, lamp_y, l + 0.01],
                [x - 0.15, lamp_y, l + 0.01],
                [x - 0.15, lamp_y + 0.12, l + 0.01],
                [x + 0.15, lamp_y + 0.12, l + 0.01],
            ],
            LAMP,
        );
    }
    for z in [l - axle_inset, -l + axle_inset] {
        for side in [-1.0, 1.0] {
            g.wheel([side * (w / 2.0 - 0.13), radius, z], radius, 0.26);
        }
    }
    g
}

/// Cabin colouring: the face after profile point `roof` is the roof (paint), the rest glass.
fn glass_band_roof(roof: usize) -> impl Fn(usize) -> [f32; 4] {
    move |i| if i == roof { PAINT } else { GLASS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_car_fits_its_nominal_size_and_touches_the_ground() {
        for kind in CarType::ALL {
            let g = car(kind);
            let [length, width, height] = kind.size().map(|v| v as f32);
            let (min, max) = g.bounds();
            assert!(min[1].abs() < 1e-4, "{kind:?} wheels must touch y = 0, lowest point {}", min[1]);
            assert!((max[1] - height).abs() < 1e-3, "{kind:?} height {} vs {height}", max[1]);
            assert!(max[0] - min[0] <= width + 1e-3, "{kind:?} too wide");
            assert!(max[2] - min[2] <= length + 0.03, "{kind:?} too long");
            assert!(max[2] - min[2] >= length - 0.01, "{kind:?} too short");
            assert_eq!(g.positions.len(), g.normals.len());
            assert_eq!(g.positions.len(), g.colours.len());
            assert!(g.indices.iter().all(|&i| (i as usize) < g.positions.len()));
        }
    }

    /// Highest point of the car over 0.5 m bins along z: the side-view silhouette.
    fn top_profile(kind: CarType) -> Vec<f32> {
        let g = car(kind);
        (0..24)
            .map(|bin| {
                let z = -6.0 + 0.5 * bin as f32 + 0.25;
                g.indices
                    .chunks(3)
                    .filter(|tri| {
                        let zs = tri.iter().map(|&i| g.positions[i as usize][2]);
                        let (lo, hi) =
                            zs.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
                        lo <= z && z <= hi
                    })
                    .flat_map(|tri| tri.iter().map(|&i| g.positions[i as usize][1]))
                    .fold(0.0, f32::max)
            })
            .collect()
    }

    #[test]
    fn silhouettes_differ() {
        let profiles: Vec<Vec<f32>> = CarType::ALL.iter().map(|&k| top_profile(k)).collect();
        for a in 0..profiles.len() {
            for b in a + 1..profiles.len() {
                let differ =
                    profiles[a].iter().zip(&profiles[b]).filter(|(x, y)| (*x - *y).abs() > 0.15).count();
                assert!(
                    differ >= 3,
                    "{:?} and {:?} look alike ({differ} bins differ)",
                    CarType::ALL[a],
                    CarType::ALL[b]
                );
            }
        }
    }

    #[test]
    fn normals_point_out_of_boxes_extrusions_and_wheels() {
        let mut g = Geometry::default();
        g.cuboid([-1.0; 3], [1.0; 3], PAINT, PAINT);
        g.extrude(&[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-0.5, 1.0]], 2.0, PAINT, |_| PAINT);
        g.wheel([0.0; 3], 1.0, 0.5);
        for (p, n) in g.positions.iter().zip(&g.normals) {
            let dot = p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
            assert!(dot > 0.0, "inward normal {n:?} at {p:?}");
        }
    }
}
