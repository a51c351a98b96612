//! Loading RON configuration files so that every mistake is reported once, with the file,
//! the line and column (syntax, unknown or missing fields) or the field path (values out
//! of bounds), and never as a panic.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A value that failed validation, named by its dotted path in the config (`meta.learning_rate`).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Prefixes the field path, so nested configs can report `outer.inner.field`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidField {}

/// Semantic checks that serde cannot express (bounds, non-empty lists, consistency).
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidField>;
}

/// Fails unless `lo <= value <= hi` and the value is finite.
pub fn check_range(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), InvalidField> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(InvalidField::new(field, format!("is {value}, but must lie in [{lo}, {hi}]")))
    }
}

/// Fails unless `lo <= value <= hi`.
pub fn check_count(field: &str, value: usize, lo: usize, hi: usize) -> Result<(), InvalidField> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(InvalidField::new(field, format!("is {value}, but must lie in [{lo}, {hi}]")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file `{}`: {cause}\n  hint: check the path (relative paths are taken from the current directory)",
        path.display()
    )]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{}:{line}:{col}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, col: usize, message: String },
    #[error("{}: {field}", path.display())]
    Invalid { path: PathBuf, field: InvalidField },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Invalid { path, .. } => path,
        }
    }
}

/// Parses RON text that came from `path` (used only for messages) and validates it.
///
/// Newtype variants may be written without the inner parentheses: `ToyGmm(seed: 7, ...)`;
/// optional values without `Some`: `warm_start: (samples: 400, epochs: 6)`.
pub fn parse_ron<T: DeserializeOwned + Validate>(text: &str, path: &Path) -> Result<T, ConfigError> {
    use ron::extensions::Extensions;
    let options = ron::Options::default()
        .with_default_extension(Extensions::UNWRAP_VARIANT_NEWTYPES | Extensions::IMPLICIT_SOME);
    let value: T = options.from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: e.span.start.line,
        col: e.span.start.col,
        message: e.code.to_string(),
    })?;
    value.validate().map_err(|field| ConfigError::Invalid { path: path.to_path_buf(), field })?;
    Ok(value)
}

/// Reads, parses and validates a RON file.
pub fn load_ron<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|cause| ConfigError::Read { path: path.to_path_buf(), cause })?;
    parse_ron(&text, path)
}

/// Resolves `relative` against the directory of the config file that named it, so that
/// configs can point at their targets wherever they are run from.
pub fn resolve_beside(config_path: &Path, relative: &Path) -> PathBuf {
    if relative.is_absolute() {
        return relative.to_path_buf();
    }
    config_path.parent().map_or_else(|| relative.to_path_buf(), |dir| dir.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        rate: f64,
        #[serde(default)]
        count: usize,
        #[serde(default)]
        extra: Option<Extra>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Extra {
        size: usize,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), InvalidField> {
            check_range("rate", self.rate, 0.0, 1.0)?;
            check_count("count", self.count, 0, 10)
        }
    }

    fn parse(text: &str) -> Result<Sample, ConfigError> {
        parse_ron(text, Path::new("configs/sample.ron"))
    }

    #[test]
    fn valid_file_parses() {
        let s = parse("(rate: 0.5, count: 3)").expect("valid config");
        assert_eq!(s.count, 3);
    }

    #[test]
    fn optional_values_need_no_some() {
        assert_eq!(
            parse("(rate: 0.5, extra: (size: 4))").expect("implicit Some").extra,
            Some(Extra { size: 4 })
        );
        assert_eq!(
            // Newtype variants unwrapped: `Some`'s struct loses its own parentheses.
            parse("(rate: 0.5, extra: Some(size: 4))").expect("explicit Some").extra,
            Some(Extra { size: 4 })
        );
        assert_eq!(parse("(rate: 0.5, extra: None)").expect("None").extra, None);
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let err = parse("(\n  rate: 0.5,\n  count: ]\n)").expect_err("malformed");
        let msg = err.to_string();
        assert!(msg.starts_with("configs/sample.ron:3:"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named_with_its_position() {
        let err = parse("(rate: 0.5, cuont: 3)").expect_err("unknown field");
        let msg = err.to_string();
        assert!(msg.starts_with("configs/sample.ron:1:"), "{msg}");
        assert!(msg.contains("cuont"), "{msg}");
    }

    #[test]
    fn out_of_bounds_value_names_the_field_and_bounds() {
        let err = parse("(rate: 1.5)").expect_err("out of bounds");
        assert_eq!(err.to_string(), "configs/sample.ron: `rate` is 1.5, but must lie in [0, 1]");
    }

    #[test]
    fn missing_file_says_which() {
        let err = load_ron::<Sample>(Path::new("/nonexistent/x.ron")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/x.ron"));
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn relative_paths_resolve_beside_the_config() {
        let p = resolve_beside(Path::new("configs/toy.ron"), Path::new("targets/t.ron"));
        assert_eq!(p, Path::new("configs/targets/t.ron"));
    }
}
