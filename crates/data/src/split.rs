//! Splits of a target directory: validation (the reward), test (the table) and oracle
//! (trains a model on the target's own images), drawn by the master seed or listed in files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate, check_count};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::layout::DataError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Images whose score is the policy's reward.
    pub validation: usize,
    /// Images of the final table; the policy never sees them.
    pub test: usize,
    /// Images to train the oracle on, from those left over (fewer when fewer are left; none: no
    /// oracle row).
    #[serde(default)]
    pub oracle: usize,
    /// Files listing the frames of each split (one name a line, relative to the config),
    /// instead of drawing them.
    #[serde(default)]
    pub lists: Option<SplitLists>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitLists {
    pub validation: PathBuf,
    pub test: PathBuf,
    #[serde(default)]
    pub oracle: Option<PathBuf>,
}

impl Validate for SplitConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        if self.lists.is_none() {
            check_count("validation", self.validation, 1, 1_000_000)?;
            check_count("test", self.test, 1, 1_000_000)?;
        }
        Ok(())
    }
}

/// Indices into the directory's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splits {
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// Empty: no oracle.
    pub oracle: Vec<usize>,
}

impl SplitConfig {
    /// The splits of the frames named `names` (in the directory's order): drawn by `seeds`,
    /// or read from the lists (`resolve` turns a configured path into a file's path).
    pub fn splits(
        &self,
        names: &[String],
        seeds: SeedTree,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Splits, DataError> {
        match &self.lists {
            Some(lists) => {
                let index: HashMap<&str, usize> =
                    names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
                let read = |configured: &Path| -> Result<Vec<usize>, DataError> {
                    let path = resolve(configured);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| DataError::Read { path: path.clone(), cause: e.to_string() })?;
                    let mut out = Vec::new();
                    for (line_no, line) in text.lines().enumerate() {
                        let name = line.trim().trim_end_matches(".png");
                        if name.is_empty() {
                            continue;
                        }
                        let i = index.get(name).ok_or_else(|| DataError::Format {
                            path: path.clone(),
                            what: format!(
                                "line {}: `{name}` is not a frame of the target directory",
                                line_no + 1
                            ),
                        })?;
                        out.push(*i);
                    }
                    if out.is_empty() {
                        return Err(DataError::Format { path, what: "lists no frames".into() });
                    }
                    Ok(out)
                };
                let splits = Splits {
                    validation: read(&lists.validation)?,
                    test: read(&lists.test)?,
                    oracle: lists.oracle.as_deref().map(read).transpose()?.unwrap_or_default(),
                };
                for (a, b, what) in [
                    (&splits.validation, &splits.test, "validation and test"),
                    (&splits.oracle, &splits.test, "oracle and test"),
                    (&splits.oracle, &splits.validation, "oracle and validation"),
                ] {
                    if let Some(shared) = a.iter().find(|i| b.contains(i)) {
                        return Err(DataError::Split(format!(
                            "the {what} lists share frame `{}`; the splits must not overlap",
                            names[*shared]
                        )));
                    }
                }
                Ok(splits)
            }
            None => {
                let needed = self.validation + self.test;
                if names.len() < needed {
                    return Err(DataError::Split(format!(
                        "the target directory has {} labelled images, too few for {} validation + {} test images\n  hint: lower target_data.split.validation or .test",
                        names.len(),
                        self.validation,
                        self.test
                    )));
                }
                let mut order: Vec<usize> = (0..names.len()).collect();
                order.shuffle(&mut seeds.rng());
                let oracle_end = (needed + self.oracle).min(names.len());
                Ok(Splits {
                    validation: order[..self.validation].to_vec(),
                    test: order[self.validation..needed].to_vec(),
                    oracle: order[needed..oracle_end].to_vec(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:06}")).collect()
    }

    #[test]
    fn drawn_splits_are_disjoint_deterministic_and_the_oracle_takes_what_is_left() {
        let config = SplitConfig { validation: 5, test: 10, oracle: 100, lists: None };
        let a = config.splits(&names(20), SeedTree::new(3), Path::to_path_buf).expect("fits");
        assert_eq!((a.validation.len(), a.test.len(), a.oracle.len()), (5, 10, 5));
        let mut all: Vec<usize> = a.validation.iter().chain(&a.test).chain(&a.oracle).copied().collect();
        all.sort();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        assert_eq!(config.splits(&names(20), SeedTree::new(3), Path::to_path_buf).expect("fits"), a);
        assert_ne!(config.splits(&names(20), SeedTree::new(4), Path::to_path_buf).expect("fits"), a);
        let err = config.splits(&names(14), SeedTree::new(3), Path::to_path_buf).expect_err("too few");
        assert!(err.to_string().contains("has 14 labelled images"), "{err}");
    }

    #[test]
    fn listed_splits_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("val.txt"), "000001\n000002.png\n").expect("write");
        std::fs::write(dir.path().join("test.txt"), "000003\n\n").expect("write");
        std::fs::write(dir.path().join("bad.txt"), "000002\n").expect("write");
        std::fs::write(dir.path().join("unknown.txt"), "000001\nnope\n").expect("write");
        let lists = |v: &str, t: &str| SplitConfig {
            validation: 0,
            test: 0,
            oracle: 0,
            lists: Some(SplitLists { validation: v.into(), test: t.into(), oracle: None }),
        };
        let resolve = |p: &Path| dir.path().join(p);
        let s = lists("val.txt", "test.txt").splits(&names(5), SeedTree::new(0), resolve).expect("reads");
        assert_eq!((s.validation, s.test, s.oracle), (vec![1, 2], vec![3], vec![]));
        let e =
            lists("val.txt", "bad.txt").splits(&names(5), SeedTree::new(0), resolve).expect_err("overlap");
        assert!(e.to_string().contains("share frame `000002`"), "{e}");
        let e = lists("unknown.txt", "test.txt")
            .splits(&names(5), SeedTree::new(0), resolve)
            .expect_err("unknown");
        assert!(e.to_string().contains("unknown.txt") && e.to_string().contains("line 2: `nope`"), "{e}");
    }
}
