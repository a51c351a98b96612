//! The data every study seed shares (the target's validation and test sets and the shared
//! start, see [`TrafficEnv`](crate::TrafficEnv)), saved once by the driver so that Slurm
//! workers and a resumed driver load it instead of rendering and training it again.
//!
//! A directory holds `validation.cbor` and `test.cbor` (the datasets, CBOR), `start.bpk`
//! (the start model's weights, burnpack) and `shared.json`, written last: its presence
//! means the rest is complete, and its fingerprint ties the files to one experiment.

use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use l2s_train::{
    CountingCnnConfig, Dataset, Device, SegmentationNetConfig, TrainError, load_weights, save_weights,
};
use serde::{Deserialize, Serialize};

use crate::env::StartModel;
use crate::settings::Task;

const FORMAT: &str = "l2s-shared-data-1";
const HEADER: &str = "shared.json";

/// Where a run keeps its shared data for the Slurm workers: next to their job files.
pub fn dir_in_run(out: &Path) -> PathBuf {
    out.join("slurm").join("shared")
}

/// The target's validation and test sets and the start model every training fine-tunes.
#[derive(Debug, Clone)]
pub struct SharedData {
    pub validation: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub(crate) start: Option<StartModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum SharedDataError {
    #[error("cannot write `{}`: {cause}", path.display())]
    Write { path: PathBuf, cause: String },
    #[error("cannot read `{}`: {cause}\n  hint: the driver writes this directory before it submits any task; rerun the driver with --resume to write it again", path.display())]
    Read { path: PathBuf, cause: String },
    #[error(
        "`{}` belongs to another experiment (its config or target changed since it was written)\n  hint: rerun the driver with --resume, or start in a new output directory",
        path.display()
    )]
    Mismatch { path: PathBuf },
    #[error(transparent)]
    Weights(#[from] TrainError),
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    fingerprint: String,
    task: Task,
    /// Classes of the segmentation model (its head's width); 0 for counting.
    classes: usize,
    start: bool,
}

impl SharedData {
    /// Writes the data into `dir` for the experiment with `fingerprint`; `classes` is the
    /// segmentation model's class count.
    pub fn save(
        &self,
        dir: &Path,
        fingerprint: &str,
        task: Task,
        classes: usize,
    ) -> Result<(), SharedDataError> {
        let header_path = dir.join(HEADER);
        let write_error =
            |path: &Path, cause: String| SharedDataError::Write { path: path.to_path_buf(), cause };
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e.to_string()))?;
        // The old header goes first, so a half-written directory is never taken for complete.
        match std::fs::remove_file(&header_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(&header_path, e.to_string())),
        }
        write_dataset(&dir.join("validation.cbor"), &self.validation)?;
        write_dataset(&dir.join("test.cbor"), &self.test)?;
        match &self.start {
            Some(StartModel::Counting(model)) => save_weights(model.as_ref(), &dir.join("start.bpk"))?,
            Some(StartModel::Segmentation(model)) => save_weights(model.as_ref(), &dir.join("start.bpk"))?,
            None => {}
        }
        let header = Header {
            format: FORMAT.into(),
            fingerprint: fingerprint.into(),
            task,
            classes,
            start: self.start.is_some(),
        };
        let text =
            serde_json::to_vec_pretty(&header).map_err(|e| write_error(&header_path, e.to_string()))?;
        l2s_meta::records::write_atomic(&header_path, &text)
            .map_err(|e| write_error(&header_path, e.to_string()))
    }

    /// The data in `dir`, or `None` where nothing complete was written there.
    pub fn load_if_present(
        dir: &Path,
        fingerprint: &str,
        device: &Device,
    ) -> Result<Option<Self>, SharedDataError> {
        if !dir.join(HEADER).is_file() {
            return Ok(None);
        }
        Self::load(dir, fingerprint, device).map(Some)
    }

    /// The data in `dir`, written by [`SharedData::save`] for the experiment with `fingerprint`.
    pub fn load(dir: &Path, fingerprint: &str, device: &Device) -> Result<Self, SharedDataError> {
        let header_path = dir.join(HEADER);
        let read_error =
            |path: &Path, cause: String| SharedDataError::Read { path: path.to_path_buf(), cause };
        let text = std::fs::read(&header_path).map_err(|e| read_error(&header_path, e.to_string()))?;
        let header: Header =
            serde_json::from_slice(&text).map_err(|e| read_error(&header_path, e.to_string()))?;
        if header.format != FORMAT {
            return Err(read_error(&header_path, format!("format `{}`, expected `{FORMAT}`", header.format)));
        }
        if header.fingerprint != fingerprint {
            return Err(SharedDataError::Mismatch { path: header_path });
        }
        let start = match (header.start, header.task) {
            (false, _) => None,
            (true, Task::Counting) => Some(StartModel::Counting(Box::new(load_weights(
                CountingCnnConfig::new().init(device),
                &dir.join("start.bpk"),
            )?))),
            (true, Task::Segmentation) => Some(StartModel::Segmentation(Box::new(load_weights(
                SegmentationNetConfig::new(header.classes).init(device),
                &dir.join("start.bpk"),
            )?))),
        };
        Ok(Self {
            validation: Arc::new(read_dataset(&dir.join("validation.cbor"))?),
            test: Arc::new(read_dataset(&dir.join("test.cbor"))?),
            start,
        })
    }
}

fn write_dataset(path: &Path, data: &Dataset) -> Result<(), SharedDataError> {
    let error = |cause: String| SharedDataError::Write { path: path.to_path_buf(), cause };
    let file = std::fs::File::create(path).map_err(|e| error(e.to_string()))?;
    let mut writer = BufWriter::new(file);
    ciborium::into_writer(data, &mut writer).map_err(|e| error(e.to_string()))?;
    writer.flush().map_err(|e| error(e.to_string()))
}

fn read_dataset(path: &Path) -> Result<Dataset, SharedDataError> {
    let error = |cause: String| SharedDataError::Read { path: path.to_path_buf(), cause };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    ciborium::from_reader(BufReader::new(file)).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_train::{TrainConfig, train_counting};

    fn device() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn saved_data_loads_back_exactly_and_refuses_another_fingerprint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = Dataset::squares(6, 16, 3);
        let config = TrainConfig { epochs: 1, batch_size: 4, learning_rate: 1e-3, seed: 5 };
        let model = train_counting(&device(), &config, &data, None).expect("trains").model;
        let shared = SharedData {
            validation: Arc::new(data.clone()),
            test: Arc::new(Dataset::squares(3, 16, 4)),
            start: Some(StartModel::Counting(Box::new(model.clone()))),
        };
        let missing = SharedData::load_if_present(dir.path(), "exp", &device()).expect("no error");
        assert!(missing.is_none(), "nothing was written yet");
        shared.save(dir.path(), "exp", Task::Counting, 0).expect("saves");

        let loaded = SharedData::load(dir.path(), "exp", &device()).expect("loads");
        assert_eq!(*loaded.validation, data);
        assert_eq!(*loaded.test, *shared.test);
        let Some(StartModel::Counting(back)) = loaded.start else { panic!("a counting start model") };
        let images = data.images(&(0..data.len()).collect::<Vec<_>>(), &device());
        let before = model.forward(images.clone()).into_data();
        let after = back.forward(images).into_data();
        assert_eq!(before, after, "the loaded start predicts exactly as the saved one");

        let other = SharedData::load(dir.path(), "another", &device()).expect_err("another experiment");
        assert!(other.to_string().contains("belongs to another experiment"), "{other}");
    }

    #[test]
    fn a_directory_without_its_header_is_absent_and_a_torn_dataset_is_a_read_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = SharedData {
            validation: Arc::new(Dataset::squares(2, 8, 1)),
            test: Arc::new(Dataset::squares(2, 8, 2)),
            start: None,
        };
        shared.save(dir.path(), "exp", Task::Counting, 0).expect("saves");
        std::fs::write(dir.path().join("test.cbor"), b"\x85torn").expect("overwrites");
        let torn = SharedData::load(dir.path(), "exp", &device()).expect_err("torn");
        assert!(torn.to_string().contains("test.cbor"), "{torn}");
        std::fs::remove_file(dir.path().join(HEADER)).expect("removes the header");
        assert!(SharedData::load_if_present(dir.path(), "exp", &device()).expect("no error").is_none());
    }
}
