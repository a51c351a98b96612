//! Reading target directories: the three layouts, counts, and every kind of bad input
//! named with its file. Fixtures are written by the tests.

use std::path::Path;

use l2s_data::{CountSource, Layout, Wanted, read_target_dir};

const W: u32 = 12;
const H: u32 = 4;

fn rgb(seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(W, H, |x, y| image::Rgb([x as u8 * 20, y as u8 * 50, seed]))
}

/// Road (7) on the bottom row, a car (26) at x 4..6, a bus (28) at x 8, sky (23) above.
fn ids() -> image::GrayImage {
    image::GrayImage::from_fn(W, H, |x, y| {
        image::Luma([match (x, y) {
            (_, 3) => 7,
            (4..=5, 1..=2) => 26,
            (8, 1..=2) => 28,
            _ => 23,
        }])
    })
}

fn kitti(root: &Path, frames: usize) {
    for sub in ["image_2", "semantic", "counts", "label_2", "calib"] {
        std::fs::create_dir_all(root.join(sub)).expect("dir");
    }
    for i in 0..frames {
        let name = format!("{i:06}_10");
        rgb(i as u8).save(root.join("image_2").join(format!("{name}.png"))).expect("png");
        ids().save(root.join("semantic").join(format!("{name}.png"))).expect("png");
        let counts = format!(r#"{{"sedan": {i}, "suv": 1, "van": 0, "pickup": 0, "bus": 1}}"#);
        std::fs::write(root.join("counts").join(format!("{name}.json")), counts).expect("json");
        let labels = "Car 0.00 0 -10 4 1 5 2 1.5 1.8 4.6 0 1.5 30 0\nBus 0.00 0 -10 8 1 8 2 3 2.5 11 1 1.5 30 0\nDontCare -1 -1 -10 1 1 2 2 -1 -1 -1 -1000 -1000 -1000 -10\n";
        std::fs::write(root.join("label_2").join(format!("{name}.txt")), labels).expect("txt");
        // fx = 6 / tan(45°): a 90° horizontal field of view at 12 pixels.
        std::fs::write(root.join("calib").join(format!("{name}.txt")), "P2: 6.0 0 6 0 0 6.0 2 0 0 0 1 0\n")
            .expect("txt");
    }
}

fn labels_and_counts(source: &CountSource) -> Wanted<'_> {
    Wanted { labels: true, counts: Some(source) }
}

#[test]
fn kitti_at_the_top_or_under_training_reads_images_labels_counts_and_the_field_of_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    kitti(dir.path(), 3);
    let json = CountSource::Json;
    let data = read_target_dir(dir.path(), Layout::Auto, labels_and_counts(&json)).expect("reads");
    assert_eq!(data.layout, Layout::Kitti);
    assert_eq!(data.frames.len(), 3);
    let f = &data.frames[2];
    assert_eq!((f.name.as_str(), f.width, f.height), ("000002_10", W, H));
    assert_eq!(f.label_ids.as_ref().expect("labels")[3 * W as usize + 4], 7);
    assert_eq!(f.label_ids.as_ref().expect("labels")[W as usize + 4], 26);
    assert_eq!(f.counts, Some([2, 1, 0, 0, 1]));
    assert_eq!(&f.rgb[..3], &[0, 0, 2]);
    assert!((data.hfov_deg.expect("calib") - 90.0).abs() < 1e-9);

    let map = CountSource::KittiLabels(
        [("Car".to_string(), "sedan".to_string()), ("Bus".into(), "bus".into())].into(),
    );
    let nested = tempfile::tempdir().expect("tempdir");
    kitti(&nested.path().join("training"), 2);
    let data = read_target_dir(nested.path(), Layout::Kitti, labels_and_counts(&map)).expect("reads");
    assert_eq!(data.frames[1].counts, Some([1, 0, 0, 0, 1]));
    assert!(data.root.ends_with("training"));
}

#[test]
fn cityscapes_and_the_export_layout_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (split, city) in [("val", "lindau"), ("val", "munster")] {
        let images = dir.path().join("leftImg8bit").join(split).join(city);
        let labels = dir.path().join("gtFine").join(split).join(city);
        std::fs::create_dir_all(&images).expect("dir");
        std::fs::create_dir_all(&labels).expect("dir");
        rgb(1).save(images.join(format!("{city}_000000_000019_leftImg8bit.png"))).expect("png");
        ids().save(labels.join(format!("{city}_000000_000019_gtFine_labelIds.png"))).expect("png");
        ids().save(labels.join(format!("{city}_000000_000019_gtFine_color.png"))).expect("png");
    }
    let data =
        read_target_dir(dir.path(), Layout::Auto, Wanted { labels: true, counts: None }).expect("reads");
    assert_eq!(data.layout, Layout::Cityscapes);
    let names: Vec<&str> = data.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["val/lindau/lindau_000000_000019", "val/munster/munster_000000_000019"]);
    assert!(data.hfov_deg.is_none());

    let export = tempfile::tempdir().expect("tempdir");
    kitti(export.path(), 2);
    std::fs::create_dir_all(export.path().join("frames")).expect("dir");
    std::fs::write(export.path().join("labels.json"), "{}").expect("json");
    for i in 0..2 {
        let frame = r#"{"counts": {"sedan": 0, "suv": 0, "van": 4, "pickup": 0, "bus": 0}}"#;
        std::fs::write(export.path().join("frames").join(format!("{i:06}_10.json")), frame).expect("json");
    }
    let json = CountSource::Json;
    let data = read_target_dir(export.path(), Layout::Auto, labels_and_counts(&json)).expect("reads");
    assert_eq!(data.layout, Layout::Export);
    assert_eq!(data.frames[0].counts, Some([0, 0, 4, 0, 0]));
}

/// Reads `dir` and returns the error's text.
fn error(dir: &Path) -> String {
    let json = CountSource::Json;
    read_target_dir(dir, Layout::Auto, labels_and_counts(&json)).expect_err("bad input").to_string()
}

#[test]
fn bad_directories_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    assert!(error(&root.join("nope")).contains("does not exist"));
    let e = error(root);
    assert!(
        e.contains("not a dataset layout") && e.contains("it is empty") && e.contains("training/image_2"),
        "{e}"
    );

    std::fs::create_dir_all(root.join("image_2")).expect("dir");
    std::fs::create_dir_all(root.join("semantic")).expect("dir");
    assert!(error(root).contains("holds no PNG images"));

    kitti(root, 2);
    std::fs::remove_file(root.join("semantic/000001_10.png")).expect("rm");
    let e = error(root);
    assert!(e.contains("image_2/000001_10.png") && e.contains("has no label file"), "{e}");

    kitti(root, 2);
    ids().save(root.join("semantic/000007_10.png")).expect("png");
    let e = error(root);
    assert!(e.contains("semantic/000007_10.png") && e.contains("has no image"), "{e}");
    std::fs::remove_file(root.join("semantic/000007_10.png")).expect("rm");

    std::fs::write(root.join("image_2/notes.txt"), "hello").expect("write");
    assert!(error(root).contains("image_2/notes.txt` is not a PNG"));
    std::fs::remove_file(root.join("image_2/notes.txt")).expect("rm");

    std::fs::write(root.join("image_2/000001_10.png"), "not a png at all").expect("write");
    assert!(error(root).contains("image_2/000001_10.png` is not a PNG"));
    kitti(root, 2);

    let mut bad = ids();
    bad.put_pixel(3, 2, image::Luma([120]));
    bad.save(root.join("semantic/000001_10.png")).expect("png");
    let e = error(root);
    assert!(e.contains("semantic/000001_10.png") && e.contains("(3, 2) has label id 120"), "{e}");

    rgb(0).save(root.join("semantic/000001_10.png")).expect("png");
    let e = error(root);
    assert!(e.contains("semantic/000001_10.png") && e.contains("8-bit greyscale"), "{e}");

    image::GrayImage::new(W, H + 1).save(root.join("semantic/000001_10.png")).expect("png");
    let e = error(root);
    assert!(e.contains("is 12x5, its image") && e.contains("is 12x4"), "{e}");
    kitti(root, 2);

    std::fs::write(root.join("counts/000001_10.json"), r#"{"sedan": 1}"#).expect("json");
    let e = error(root);
    assert!(e.contains("counts/000001_10.json") && e.contains("`suv`"), "{e}");
    std::fs::remove_file(root.join("counts/000001_10.json")).expect("rm");
    let e = error(root);
    assert!(e.contains("cannot read") && e.contains("counts/000001_10.json"), "{e}");
}
