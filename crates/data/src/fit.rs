//! The framing policy: how an image of any size becomes the model's input. The largest
//! centred crop with the model's aspect ratio is taken, then scaled to the model's size:
//! RGB with a triangle (bilinear) filter, labels by nearest neighbour, so every label
//! stays a label of the source.

use image::{RgbImage, imageops};

use crate::sample::LabelledImage;

/// The model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub width: u32,
    pub height: u32,
}

impl Framing {
    /// The centred crop of a `w`x`h` image with the model's aspect ratio: `(x0, y0, w, h)`.
    pub fn crop(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        let (mw, mh) = (u64::from(self.width), u64::from(self.height));
        if u64::from(w) * mh > u64::from(h) * mw {
            let cw = ((u64::from(h) * mw + mh / 2) / mh).clamp(1, u64::from(w)) as u32;
            ((w - cw) / 2, 0, cw, h)
        } else {
            let ch = ((u64::from(w) * mh + mw / 2) / mw).clamp(1, u64::from(h)) as u32;
            (0, (h - ch) / 2, w, ch)
        }
    }

    /// `image` cropped and scaled to the model's size (unchanged when it has that size).
    pub fn apply(&self, image: &LabelledImage) -> LabelledImage {
        if (image.width, image.height) == (self.width, self.height) {
            return image.clone();
        }
        let (x0, y0, cw, ch) = self.crop(image.width, image.height);
        let rgb = RgbImage::from_raw(image.width, image.height, image.rgb.clone())
            .map(|full| {
                let cropped = imageops::crop_imm(&full, x0, y0, cw, ch).to_image();
                imageops::resize(&cropped, self.width, self.height, imageops::FilterType::Triangle).into_raw()
            })
            .unwrap_or_else(|| vec![0; 3 * self.width as usize * self.height as usize]);
        let label_ids = image.label_ids.as_ref().map(|ids| {
            let mut out = Vec::with_capacity(self.width as usize * self.height as usize);
            for y in 0..self.height {
                let sy = y0 + ((2 * u64::from(y) + 1) * u64::from(ch) / (2 * u64::from(self.height))) as u32;
                for x in 0..self.width {
                    let sx =
                        x0 + ((2 * u64::from(x) + 1) * u64::from(cw) / (2 * u64::from(self.width))) as u32;
                    out.push(ids[(sy * image.width + sx) as usize]);
                }
            }
            out
        });
        LabelledImage {
            name: image.name.clone(),
            width: self.width,
            height: self.height,
            rgb,
            label_ids,
            counts: image.counts,
        }
    }

    /// The vertical field of view (degrees) of a framed image whose `w`x`h` source had the
    /// horizontal field of view `source_hfov_deg`: the renderer's camera uses it, so rendered
    /// and target images are framed alike.
    pub fn vertical_fov_deg(&self, w: u32, h: u32, source_hfov_deg: f64) -> f64 {
        let (_, _, _, ch) = self.crop(w, h);
        let focal = f64::from(w) / 2.0 / (source_hfov_deg.to_radians() / 2.0).tan();
        (2.0 * (f64::from(ch) / 2.0 / focal).atan()).to_degrees()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32) -> LabelledImage {
        LabelledImage {
            name: "a".into(),
            width: w,
            height: h,
            rgb: (0..w * h * 3).map(|v| (v % 251) as u8).collect(),
            label_ids: Some((0..w * h).map(|i| (i % w) as u8).collect()),
            counts: Some([1, 0, 0, 0, 2]),
        }
    }

    #[test]
    fn a_wide_image_is_cropped_in_the_centre_and_labels_stay_labels() {
        // 1242x375 (KITTI) into 144x48: crop 1125x375 from x = 58.
        let framing = Framing { width: 144, height: 48 };
        assert_eq!(framing.crop(1242, 375), (58, 0, 1125, 375));
        assert_eq!(framing.crop(100, 100), (0, 33, 100, 33));
        let src = image(30, 10);
        let out = Framing { width: 6, height: 4 }.apply(&src);
        assert_eq!((out.width, out.height, out.rgb.len()), (6, 4, 72));
        // Crop 15x10 from x = 7; output column x samples source column 7 + (2x+1)*15/12.
        let ids = out.label_ids.expect("labels");
        assert_eq!(&ids[..6], &[8, 10, 13, 15, 18, 20]);
        assert!(ids.iter().all(|id| (7..22).contains(id)));
        assert_eq!(out.counts, src.counts);
    }

    #[test]
    fn the_same_size_is_an_exact_copy_and_the_field_of_view_follows_the_crop() {
        let src = image(12, 4);
        assert_eq!(Framing { width: 12, height: 4 }.apply(&src), src);
        // 384x128 at 86.9° horizontal, framed at 3:1: vertical fov 2 atan(64 / 202.77).
        let v = Framing { width: 144, height: 48 }.vertical_fov_deg(384, 128, 86.876);
        assert!((v - 35.05).abs() < 0.05, "{v}");
    }
}
