//! Parameter spaces: the bounded continuous and named categorical dimensions that a policy
//! searches over, and the values of one point ψ in such a space.

use serde::{Deserialize, Serialize};

/// One dimension of a parameter space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Dim {
    /// A real value in `[low, high]`.
    Continuous { name: String, low: f64, high: f64 },
    /// One of a fixed list of named choices.
    Categorical { name: String, choices: Vec<String> },
}

impl Dim {
    pub fn continuous(name: impl Into<String>, low: f64, high: f64) -> Self {
        Dim::Continuous { name: name.into(), low, high }
    }

    pub fn categorical<S: Into<String>>(
        name: impl Into<String>,
        choices: impl IntoIterator<Item = S>,
    ) -> Self {
        Dim::Categorical { name: name.into(), choices: choices.into_iter().map(Into::into).collect() }
    }

    pub fn name(&self) -> &str {
        match self {
            Dim::Continuous { name, .. } | Dim::Categorical { name, .. } => name,
        }
    }
}

/// The value of one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ParamValue {
    Continuous(f64),
    Categorical(usize),
}

/// A point ψ of a [`ParamSpace`], one value per dimension, in the space's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamValues(pub Vec<ParamValue>);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    #[error("parameter space is empty")]
    Empty,
    #[error("dimension `{name}`: bounds [{low}, {high}] are not finite and increasing")]
    BadBounds { name: String, low: f64, high: f64 },
    #[error("dimension `{0}` has no choices")]
    NoChoices(String),
    #[error("dimension name `{0}` is used twice")]
    DuplicateName(String),
    #[error("expected {expected} parameter values, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("`{name}` = {value} is outside its bounds [{low}, {high}]")]
    OutOfBounds { name: String, value: f64, low: f64, high: f64 },
    #[error("`{name}` = choice {index} does not exist (it has {count} choices)")]
    NoSuchChoice { name: String, index: usize, count: usize },
    #[error("`{name}` expects a {expected} value")]
    WrongKind { name: String, expected: &'static str },
}

/// An ordered list of named dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpace {
    dims: Vec<Dim>,
}

impl ParamSpace {
    /// Checks that bounds are finite and increasing, choices non-empty and names unique.
    pub fn new(dims: Vec<Dim>) -> Result<Self, SpaceError> {
        if dims.is_empty() {
            return Err(SpaceError::Empty);
        }
        for (i, d) in dims.iter().enumerate() {
            if dims[..i].iter().any(|o| o.name() == d.name()) {
                return Err(SpaceError::DuplicateName(d.name().to_string()));
            }
            match d {
                Dim::Continuous { name, low, high } => {
                    if !(low.is_finite() && high.is_finite() && low < high) {
                        return Err(SpaceError::BadBounds { name: name.clone(), low: *low, high: *high });
                    }
                }
                Dim::Categorical { name, choices } => {
                    if choices.is_empty() {
                        return Err(SpaceError::NoChoices(name.clone()));
                    }
                }
            }
        }
        Ok(Self { dims })
    }

    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    pub fn len(&self) -> usize {
        self.dims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Index of the dimension called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.dims.iter().position(|d| d.name() == name)
    }

    /// Checks that `values` is a point of this space.
    pub fn check(&self, values: &ParamValues) -> Result<(), SpaceError> {
        if values.0.len() != self.dims.len() {
            return Err(SpaceError::WrongLength { expected: self.dims.len(), got: values.0.len() });
        }
        for (d, v) in self.dims.iter().zip(&values.0) {
            match (d, v) {
                (Dim::Continuous { name, low, high }, ParamValue::Continuous(x)) => {
                    if !(x.is_finite() && (*low..=*high).contains(x)) {
                        return Err(SpaceError::OutOfBounds {
                            name: name.clone(),
                            value: *x,
                            low: *low,
                            high: *high,
                        });
                    }
                }
                (Dim::Categorical { name, choices }, ParamValue::Categorical(i)) => {
                    if *i >= choices.len() {
                        return Err(SpaceError::NoSuchChoice {
                            name: name.clone(),
                            index: *i,
                            count: choices.len(),
                        });
                    }
                }
                (Dim::Continuous { name, .. }, _) => {
                    return Err(SpaceError::WrongKind { name: name.clone(), expected: "continuous" });
                }
                (Dim::Categorical { name, .. }, _) => {
                    return Err(SpaceError::WrongKind { name: name.clone(), expected: "categorical" });
                }
            }
        }
        Ok(())
    }

    /// The flat normalised view: each continuous value mapped to `[0, 1]`, each categorical
    /// value one-hot over its choices. Its length is [`Self::flat_len`].
    pub fn to_flat(&self, values: &ParamValues) -> Result<Vec<f64>, SpaceError> {
        self.check(values)?;
        let mut out = Vec::with_capacity(self.flat_len());
        for (d, v) in self.dims.iter().zip(&values.0) {
            match (d, v) {
                (Dim::Continuous { low, high, .. }, ParamValue::Continuous(x)) => {
                    out.push((x - low) / (high - low))
                }
                (Dim::Categorical { choices, .. }, ParamValue::Categorical(i)) => {
                    out.extend((0..choices.len()).map(|c| if c == *i { 1.0 } else { 0.0 }));
                }
                _ => unreachable!("checked above"),
            }
        }
        Ok(out)
    }

    /// The inverse of [`Self::to_flat`]: continuous entries are clamped to `[0, 1]`,
    /// categorical blocks take their largest entry.
    pub fn from_flat(&self, flat: &[f64]) -> Result<ParamValues, SpaceError> {
        if flat.len() != self.flat_len() {
            return Err(SpaceError::WrongLength { expected: self.flat_len(), got: flat.len() });
        }
        let mut at = 0;
        let mut values = Vec::with_capacity(self.dims.len());
        for d in &self.dims {
            match d {
                Dim::Continuous { low, high, .. } => {
                    values.push(ParamValue::Continuous(low + flat[at].clamp(0.0, 1.0) * (high - low)));
                    at += 1;
                }
                Dim::Categorical { choices, .. } => {
                    let block = &flat[at..at + choices.len()];
                    let best = (0..block.len()).fold(0, |b, i| if block[i] > block[b] { i } else { b });
                    values.push(ParamValue::Categorical(best));
                    at += choices.len();
                }
            }
        }
        Ok(ParamValues(values))
    }

    pub fn flat_len(&self) -> usize {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Continuous { .. } => 1,
                Dim::Categorical { choices, .. } => choices.len(),
            })
            .sum()
    }

    /// `(name, value)` pairs for logs and reports; categorical values by choice name.
    pub fn describe(&self, values: &ParamValues) -> Vec<(String, String)> {
        self.dims
            .iter()
            .zip(&values.0)
            .map(|(d, v)| {
                let text = match (d, v) {
                    (Dim::Categorical { choices, .. }, ParamValue::Categorical(i)) => {
                        choices.get(*i).cloned().unwrap_or_else(|| format!("#{i}"))
                    }
                    (_, ParamValue::Continuous(x)) => format!("{x:.4}"),
                    (_, ParamValue::Categorical(i)) => format!("#{i}"),
                };
                (d.name().to_string(), text)
            })
            .collect()
    }
}

impl ParamValues {
    /// The continuous value at `index`, if that dimension is continuous.
    pub fn continuous(&self, index: usize) -> Option<f64> {
        match self.0.get(index) {
            Some(ParamValue::Continuous(x)) => Some(*x),
            _ => None,
        }
    }

    /// The categorical choice at `index`, if that dimension is categorical.
    pub fn categorical(&self, index: usize) -> Option<usize> {
        match self.0.get(index) {
            Some(ParamValue::Categorical(i)) => Some(*i),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ParamSpace {
        ParamSpace::new(vec![
            Dim::continuous("length", 50.0, 250.0),
            Dim::categorical("weather", ["clear", "fog", "rain"]),
        ])
        .expect("valid space")
    }

    #[test]
    fn flat_view_round_trips() {
        let s = space();
        let v = ParamValues(vec![ParamValue::Continuous(100.0), ParamValue::Categorical(2)]);
        let flat = s.to_flat(&v).expect("in space");
        assert_eq!(flat, vec![0.25, 0.0, 0.0, 1.0]);
        assert_eq!(s.from_flat(&flat).expect("right length"), v);
    }

    #[test]
    fn out_of_bounds_and_bad_choices_are_rejected() {
        let s = space();
        let bad = ParamValues(vec![ParamValue::Continuous(300.0), ParamValue::Categorical(0)]);
        assert!(matches!(s.check(&bad), Err(SpaceError::OutOfBounds { .. })));
        let bad = ParamValues(vec![ParamValue::Continuous(60.0), ParamValue::Categorical(3)]);
        assert!(matches!(s.check(&bad), Err(SpaceError::NoSuchChoice { .. })));
        let bad = ParamValues(vec![ParamValue::Continuous(f64::NAN), ParamValue::Categorical(0)]);
        assert!(s.check(&bad).is_err());
    }

    #[test]
    fn invalid_spaces_are_rejected() {
        assert_eq!(ParamSpace::new(vec![]), Err(SpaceError::Empty));
        assert!(ParamSpace::new(vec![Dim::continuous("x", 1.0, 1.0)]).is_err());
        assert!(
            ParamSpace::new(vec![Dim::continuous("x", 0.0, 1.0), Dim::continuous("x", 0.0, 2.0)]).is_err()
        );
        assert!(ParamSpace::new(vec![Dim::categorical::<&str>("w", [])]).is_err());
    }
}
