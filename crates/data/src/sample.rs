//! The sample contract: one labelled image, as the renderer produces it and every reader
//! returns it.

/// Car types in count order; the names of `counts/*.json` and of `l2s render`'s records.
pub const CAR_TYPE_NAMES: [&str; 5] = ["sedan", "suv", "van", "pickup", "bus"];

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    /// The frame's name in its dataset (file stem, or `city/stem` for Cityscapes).
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Interleaved 8-bit RGB, row-major.
    pub rgb: Vec<u8>,
    /// Cityscapes label id of every pixel (0..=33); None when the dataset has no class labels.
    pub label_ids: Option<Vec<u8>>,
    /// Counted cars of each type, in [`CAR_TYPE_NAMES`] order; None when not labelled.
    pub counts: Option<[u32; 5]>,
}

impl LabelledImage {
    pub fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }
}
