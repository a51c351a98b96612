//! A parameter space seen as what CMA-ES and TPE work on: the continuous dimensions
//! normalised to [0, 1] (in order) and the categorical dimensions as choice indices.

use l2s_core::{Dim, ParamSpace, ParamValue, ParamValues};

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Continuous { low: f64, high: f64 },
    Categorical,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MixedSpace {
    slots: Vec<Slot>,
    choices: Vec<usize>,
}

impl MixedSpace {
    pub(crate) fn new(space: &ParamSpace) -> Self {
        let mut slots = Vec::with_capacity(space.len());
        let mut choices = Vec::new();
        for d in space.dims() {
            match d {
                Dim::Continuous { low, high, .. } => slots.push(Slot::Continuous { low: *low, high: *high }),
                Dim::Categorical { choices: c, .. } => {
                    slots.push(Slot::Categorical);
                    choices.push(c.len());
                }
            }
        }
        Self { slots, choices }
    }

    /// Number of continuous dimensions.
    pub(crate) fn continuous(&self) -> usize {
        self.slots.len() - self.choices.len()
    }

    /// Number of choices of each categorical dimension, in order.
    pub(crate) fn choices(&self) -> &[usize] {
        &self.choices
    }

    /// ψ from normalised continuous values (clamped to [0, 1]) and choice indices.
    pub(crate) fn compose(&self, unit: &[f64], picks: &[usize]) -> ParamValues {
        let (mut u, mut c) = (unit.iter(), picks.iter());
        ParamValues(
            self.slots
                .iter()
                .map(|s| match s {
                    Slot::Continuous { low, high } => {
                        let x = u.next().copied().unwrap_or(0.5).clamp(0.0, 1.0);
                        ParamValue::Continuous(low + x * (high - low))
                    }
                    Slot::Categorical => ParamValue::Categorical(c.next().copied().unwrap_or(0)),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_maps_unit_values_into_the_bounds_in_the_space_order() {
        let space = ParamSpace::new(vec![
            Dim::continuous("a", -2.0, 2.0),
            Dim::categorical("w", ["x", "y", "z"]),
            Dim::continuous("b", 10.0, 20.0),
        ])
        .expect("valid");
        let mixed = MixedSpace::new(&space);
        assert_eq!((mixed.continuous(), mixed.choices()), (2, &[3usize][..]));
        let psi = mixed.compose(&[0.25, 0.5], &[2]);
        assert_eq!(space.describe(&psi)[0].1, "-1.0000");
        assert_eq!(space.describe(&psi)[1].1, "z");
        assert_eq!(space.describe(&psi)[2].1, "15.0000");
    }
}
