//! Car placement with rapier (through bevy_rapier3d): every car is dropped onto the road
//! as a rigid box of its nominal size and the world is stepped a fixed number of times,
//! so cars rest on the road, never float and never interpenetrate.
//!
//! The step runs outside the Bevy schedule, as a pure function of the scene description:
//! the same description gives bit-identical poses, and the renderer need not wait frames
//! for physics to settle.

use bevy::math::{Quat, Vec3};
use bevy_rapier3d::rapier::prelude::{ColliderBuilder, PhysicsWorld, RigidBodyBuilder, Vector};
use l2s_scene::SceneDescription;

/// How cars are dropped and settled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettleConfig {
    /// Height of each car's underside above the road when dropped, metres.
    pub drop_height: f32,
    /// Fixed number of 1/60 s steps; enough for a car dropped from `drop_height` to rest.
    pub steps: u32,
}

impl Default for SettleConfig {
    fn default() -> Self {
        Self { drop_height: 0.1, steps: 45 }
    }
}

/// Where physics left a car: the centre of its footprint on the road and its rotation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CarPose {
    pub id: u32,
    pub translation: Vec3,
    pub rotation: Quat,
}

/// Drops the scene's cars on the road and returns their settled poses, in scene order.
pub fn settle_cars(scene: &SceneDescription, config: SettleConfig) -> Vec<CarPose> {
    if scene.cars.is_empty() {
        return Vec::new();
    }
    let mut world = PhysicsWorld::new();
    let length = scene.road.length as f32;
    // The ground: a thick slab whose top is the road surface, y = 0.
    world.insert(
        RigidBodyBuilder::fixed().translation(Vector::new(0.0, -1.0, length / 2.0)),
        ColliderBuilder::cuboid(100.0, 1.0, length / 2.0 + 50.0).friction(0.9),
    );
    let handles: Vec<_> = scene
        .cars
        .iter()
        .map(|car| {
            let [l, w, h] = car.size().map(|v| v as f32);
            let centre = Vector::new(car.x as f32, h / 2.0 + config.drop_height, car.z as f32);
            let body = RigidBodyBuilder::dynamic()
                .translation(centre)
                .rotation(Vector::new(0.0, car.yaw as f32, 0.0))
                .linear_damping(0.5)
                .angular_damping(2.0);
            let collider = ColliderBuilder::cuboid(w / 2.0, h / 2.0, l / 2.0).friction(0.9).restitution(0.0);
            world.insert(body, collider).0
        })
        .collect();
    for _ in 0..config.steps {
        world.step();
    }
    scene
        .cars
        .iter()
        .zip(handles)
        .map(|(car, handle)| {
            let body = &world.bodies[handle];
            let t = body.translation();
            let rotation = Quat::from_array(body.rotation().to_array());
            let half_height = car.size()[2] as f32 / 2.0;
            // Body origin is the box centre; the car's origin is the middle of its footprint.
            let translation = Vec3::new(t.x, t.y, t.z) - rotation * Vec3::new(0.0, half_height, 0.0);
            CarPose { id: car.id, translation, rotation }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bevy_rapier3d::rapier::parry::query::intersection_test;
    use bevy_rapier3d::rapier::parry::shape::Cuboid;
    use bevy_rapier3d::rapier::prelude::Pose;
    use l2s_scene::{TrafficParams, sample_scene};

    use super::*;

    fn dense() -> TrafficParams {
        TrafficParams { cars_per_lane_100m: 6.0, road_length: 120.0, ..TrafficParams::default() }
    }

    #[test]
    fn settled_cars_rest_on_the_road_and_do_not_interpenetrate() {
        for seed in 0..6 {
            let scene = sample_scene(&dense(), seed).expect("valid");
            let poses = settle_cars(&scene, SettleConfig::default());
            assert_eq!(poses.len(), scene.cars.len());
            let boxes: Vec<(Pose, Cuboid)> = scene
                .cars
                .iter()
                .zip(&poses)
                .map(|(car, pose)| {
                    let [l, w, h] = car.size().map(|v| v as f32);
                    // Shrunk by 1 cm: resting contact may touch, never overlap.
                    let shape = Cuboid::new(Vector::new(w / 2.0 - 0.01, h / 2.0 - 0.01, l / 2.0 - 0.01));
                    let centre = pose.translation + pose.rotation * Vec3::new(0.0, h / 2.0, 0.0);
                    let pose_r = Pose::from_parts(
                        Vector::new(centre.x, centre.y, centre.z),
                        bevy_rapier3d::rapier::math::Rotation::from_array(pose.rotation.to_array()),
                    );
                    (pose_r, shape)
                })
                .collect();
            for (car, pose) in scene.cars.iter().zip(&poses) {
                assert!(
                    pose.translation.y.abs() < 0.02,
                    "seed {seed}: car {} floats or sinks at y = {}",
                    car.id,
                    pose.translation.y
                );
                let up = pose.rotation * Vec3::Y;
                assert!(up.y > 0.999, "seed {seed}: car {} tipped over", car.id);
                let yaw_moved =
                    (pose.rotation * Vec3::Z).angle_between(Quat::from_rotation_y(car.yaw as f32) * Vec3::Z);
                assert!(yaw_moved < 0.01, "seed {seed}: car {} turned by {yaw_moved} rad", car.id);
            }
            for i in 0..boxes.len() {
                for j in i + 1..boxes.len() {
                    let hit = intersection_test(&boxes[i].0, &boxes[i].1, &boxes[j].0, &boxes[j].1)
                        .expect("supported shapes");
                    assert!(
                        !hit,
                        "seed {seed}: cars {} and {} interpenetrate",
                        scene.cars[i].id, scene.cars[j].id
                    );
                }
            }
        }
    }

    #[test]
    fn settling_is_deterministic() {
        let scene = sample_scene(&dense(), 3).expect("valid");
        assert_eq!(
            settle_cars(&scene, SettleConfig::default()),
            settle_cars(&scene, SettleConfig::default())
        );
    }
}
