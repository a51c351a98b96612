//! Labelled images as every part of l2s sees them.
//!
//! - [`sample`]: [`LabelledImage`], the one contract between the renderer, the exporter and
//!   every reader (RGB, Cityscapes label ids, optional instance map, optional car counts).
//! - [`cityscapes`]: Cityscapes' label ids and names, and [`ClassMap`], the table that maps
//!   them to a model's classes (everything else becomes [`IGNORE`]).
//! - [`layout`]: datasets on disk (KITTI semantic, Cityscapes, `l2s render`'s export), found
//!   and read with errors that name the file.
//! - [`fit`]: the policy that brings any image size to the model's input.
//! - [`split`]: validation, test and oracle splits drawn by the master seed or listed.

pub mod cityscapes;
pub mod fit;
pub mod layout;
pub mod sample;
pub mod split;

pub use cityscapes::{ClassDef, ClassMap, IGNORE};
pub use fit::Framing;
pub use layout::{CountSource, DataError, Layout, TargetDir, Wanted, read_target_dir};
pub use sample::{CAR_TYPE_NAMES, LabelledImage};
pub use split::{SplitConfig, Splits};
