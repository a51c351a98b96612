//! Two-class Gaussian mixtures in the plane: the target domain (read from a RON file) and
//! what the toy simulator generates for a given ψ.

use l2s_core::config::{InvalidField, Validate, check_range};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// One isotropic Gaussian component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub mean: (f64, f64),
    pub std: f64,
    /// Relative weight within its class.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

fn half() -> f64 {
    0.5
}

/// A mixture per class: `classes[0]` generates label `false`, `classes[1]` label `true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mixture {
    pub classes: Vec<Vec<Component>>,
    /// Fraction of points in class 1.
    #[serde(default = "half")]
    pub class_balance: f64,
}

impl Validate for Mixture {
    fn validate(&self) -> Result<(), InvalidField> {
        if self.classes.len() != 2 {
            return Err(InvalidField::new(
                "classes",
                format!("has {} entries, but the toy task has exactly 2 classes", self.classes.len()),
            ));
        }
        for (c, comps) in self.classes.iter().enumerate() {
            if comps.is_empty() {
                return Err(InvalidField::new(format!("classes[{c}]"), "needs at least one component"));
            }
            for (j, comp) in comps.iter().enumerate() {
                let at = |f: &str| format!("classes[{c}][{j}].{f}");
                check_range(&at("mean.0"), comp.mean.0, -1e3, 1e3)?;
                check_range(&at("mean.1"), comp.mean.1, -1e3, 1e3)?;
                check_range(&at("std"), comp.std, 1e-6, 1e3)?;
                check_range(&at("weight"), comp.weight, 1e-9, 1e9)?;
            }
        }
        check_range("class_balance", self.class_balance, 0.05, 0.95)
    }
}

/// Labelled points in the plane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub points: Vec<[f64; 2]>,
    pub labels: Vec<bool>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Mixture {
    /// Draws `n` points: exactly `round(n·class_balance)` of class 1 (at least one of each
    /// class when `n >= 2`), interleaved, each from a component picked by weight.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Dataset {
        let ones = ((n as f64 * self.class_balance).round() as usize)
            .clamp(usize::from(n >= 2), n.saturating_sub(1).max(1));
        let mut data = Dataset { points: Vec::with_capacity(n), labels: Vec::with_capacity(n) };
        for i in 0..n {
            // Spread the labels evenly through the set, so any prefix is balanced too.
            let label = (i + 1) * ones / n > i * ones / n;
            let comps = &self.classes[usize::from(label)];
            let total: f64 = comps.iter().map(|c| c.weight).sum();
            let mut u = rng.random::<f64>() * total;
            let comp = comps
                .iter()
                .find(|c| {
                    u -= c.weight;
                    u < 0.0
                })
                .unwrap_or(&comps[comps.len() - 1]);
            let dx: f64 = StandardNormal.sample(rng);
            let dy: f64 = StandardNormal.sample(rng);
            data.points.push([comp.mean.0 + comp.std * dx, comp.mean.1 + comp.std * dy]);
            data.labels.push(label);
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_core::{ConfigError, SeedTree, parse_ron};
    use std::path::Path;

    #[test]
    fn samples_follow_the_balance_and_components() {
        let m = Mixture {
            classes: vec![
                vec![Component { mean: (-5.0, 0.0), std: 0.1, weight: 1.0 }],
                vec![Component { mean: (5.0, 0.0), std: 0.1, weight: 1.0 }],
            ],
            class_balance: 0.25,
        };
        let d = m.sample(400, &mut SeedTree::new(1).rng());
        assert_eq!(d.labels.iter().filter(|l| **l).count(), 100);
        for (p, l) in d.points.iter().zip(&d.labels) {
            assert_eq!(p[0] > 0.0, *l);
        }
        assert_eq!(d, m.sample(400, &mut SeedTree::new(1).rng()));
    }

    #[test]
    fn malformed_target_files_give_located_errors() {
        let path = Path::new("configs/targets/bad.ron");
        let err = parse_ron::<Mixture>(
            "(classes: [[(mean: (0.0, 0.0), std: 1.0)], [(mean: (1.0, 0.0) std: 1.0)]])",
            path,
        )
        .expect_err("missing comma");
        assert!(matches!(err, ConfigError::Syntax { line: 1, .. }), "{err}");
        let err =
            parse_ron::<Mixture>("(classes: [[(mean: (0.0, 0.0), std: 1.0)]])", path).expect_err("one class");
        assert!(err.to_string().contains("`classes` has 1 entries"), "{err}");
        let err = parse_ron::<Mixture>(
            "(classes: [[(mean: (0.0, 0.0), std: -1.0)], [(mean: (1.0, 0.0), std: 1.0)]])",
            path,
        )
        .expect_err("negative std");
        assert!(err.to_string().contains("`classes[0][0].std` is -1"), "{err}");
        let err = parse_ron::<Mixture>("(classes: [], colour: 3)", path).expect_err("unknown field");
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
