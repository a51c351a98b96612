//! The dimensions of ψ a traffic study learns, inside the simulator's full space.

use l2s_core::config::InvalidField;
use l2s_core::{ParamSpace, ParamValues};
use l2s_meta::BoxError;
use l2s_scene::TrafficParams;

/// The dimensions of ψ the policy learns; the others stay at `base`.
#[derive(Debug, Clone)]
pub struct LearnedSpace {
    space: ParamSpace,
    /// Index in the full traffic space of each learned dimension.
    full_index: Vec<usize>,
    base: ParamValues,
}

impl LearnedSpace {
    /// Learns the dimensions named in `learn` (names of [`TrafficParams::space`]).
    pub fn new(learn: &[String], base: &TrafficParams) -> Result<Self, InvalidField> {
        let full = TrafficParams::space();
        let mut dims = Vec::new();
        let mut full_index = Vec::new();
        for name in learn {
            let Some(i) = full.position(name) else {
                let names: Vec<&str> = full.dims().iter().map(|d| d.name()).collect();
                return Err(InvalidField::new(
                    "learn",
                    format!("has `{name}`, which is not a dimension of ψ; choose from {}", names.join(", ")),
                ));
            };
            if full_index.contains(&i) {
                return Err(InvalidField::new("learn", format!("names `{name}` twice")));
            }
            full_index.push(i);
            dims.push(full.dims()[i].clone());
        }
        let space = ParamSpace::new(dims).map_err(|e| InvalidField::new("learn", e.to_string()))?;
        Ok(Self { space, full_index, base: base.to_values() })
    }

    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// The full ψ for learned values `psi`.
    pub fn params(&self, psi: &ParamValues) -> Result<TrafficParams, BoxError> {
        self.space.check(psi)?;
        let mut full = self.base.clone();
        for (j, &i) in self.full_index.iter().enumerate() {
            full.0[i] = psi.0[j];
        }
        Ok(TrafficParams::from_values(&full)?)
    }

    /// The full ψ with every dimension at `base`.
    pub fn base(&self) -> Result<TrafficParams, BoxError> {
        Ok(TrafficParams::from_values(&self.base)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learned_space_keeps_the_other_dimensions_at_base_and_refuses_bad_names() {
        let base = TrafficParams::default();
        let learned = LearnedSpace::new(&["camera_height".to_string()], &base).expect("valid");
        assert_eq!(learned.space().dims().len(), 1);
        let params =
            learned.params(&ParamValues(vec![l2s_core::ParamValue::Continuous(2.5)])).expect("in bounds");
        assert_eq!(params.camera_height, 2.5);
        assert_eq!(params.road_length, base.road_length);
        let outside = learned.params(&ParamValues(vec![l2s_core::ParamValue::Continuous(9.0)]));
        assert!(outside.expect_err("out of bounds").to_string().contains("camera_height"));
        let err = LearnedSpace::new(&["wheels".to_string()], &base).expect_err("unknown");
        assert!(err.to_string().contains("`wheels`"), "{err}");
        let twice = LearnedSpace::new(&["camera_height".to_string(), "camera_height".to_string()], &base);
        assert!(twice.expect_err("twice").to_string().contains("twice"));
    }
}
