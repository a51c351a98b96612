//! Cityscapes label ids (the `*_labelIds.png` convention KITTI's semantic benchmark uses
//! too) and the class map from them to a model's classes.

use l2s_core::config::InvalidField;
use serde::{Deserialize, Serialize};

/// The class index of pixels that count in neither the loss nor any IoU.
pub const IGNORE: u8 = 255;

/// Cityscapes' label names by id (`cityscapesscripts.helpers.labels`, ids 0 to 33).
pub const LABEL_NAMES: [&str; 34] = [
    "unlabeled",
    "ego vehicle",
    "rectification border",
    "out of roi",
    "static",
    "dynamic",
    "ground",
    "road",
    "sidewalk",
    "parking",
    "rail track",
    "building",
    "wall",
    "fence",
    "guard rail",
    "bridge",
    "tunnel",
    "pole",
    "polegroup",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "caravan",
    "trailer",
    "train",
    "motorcycle",
    "bicycle",
];

/// Ids of the classes the simulator draws, as written to Cityscapes-id files.
pub mod id {
    pub const UNLABELED: u8 = 0;
    pub const ROAD: u8 = 7;
    pub const SIDEWALK: u8 = 8;
    pub const BUILDING: u8 = 11;
    pub const VEGETATION: u8 = 21;
    pub const TERRAIN: u8 = 22;
    pub const SKY: u8 = 23;
    /// Sedans, SUVs and vans.
    pub const CAR: u8 = 26;
    /// Pickups.
    pub const TRUCK: u8 = 27;
    pub const BUS: u8 = 28;
}

/// The Cityscapes colour of a label id (black for ids without one).
pub fn colour(label_id: u8) -> [u8; 3] {
    match label_id {
        7 => [128, 64, 128],
        8 => [244, 35, 232],
        11 => [70, 70, 70],
        21 => [107, 142, 35],
        22 => [152, 251, 152],
        23 => [70, 130, 180],
        26 => [0, 0, 142],
        27 => [0, 0, 70],
        28 => [0, 60, 100],
        _ => [0, 0, 0],
    }
}

/// One class of a model: its name and the Cityscapes ids it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    pub name: String,
    pub ids: Vec<u8>,
}

impl ClassDef {
    fn new(name: &str, ids: &[u8]) -> Self {
        Self { name: name.into(), ids: ids.to_vec() }
    }
}

/// Cityscapes ids → class indices of a model; ids in no class map to [`IGNORE`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    classes: Vec<ClassDef>,
    /// Class index of every id (boxed: the map travels inside small enums).
    lut: Box<[u8; 256]>,
}

impl ClassMap {
    /// The default table of real targets: road, sidewalk, building, terrain and vegetation,
    /// sky, car (Cityscapes' car: sedans, SUVs, vans); everything else is ignored.
    pub fn default_classes() -> Vec<ClassDef> {
        vec![
            ClassDef::new("road", &[id::ROAD]),
            ClassDef::new("sidewalk", &[id::SIDEWALK]),
            ClassDef::new("building", &[id::BUILDING]),
            ClassDef::new("terrain", &[id::TERRAIN, id::VEGETATION]),
            ClassDef::new("sky", &[id::SKY]),
            ClassDef::new("car", &[id::CAR]),
        ]
    }

    /// Checks the table: at least two classes, at most 64, names unique, every id a
    /// Cityscapes id (0..=33) named once, and a class `car` (the headline IoU).
    pub fn new(classes: Vec<ClassDef>) -> Result<Self, InvalidField> {
        if classes.len() < 2 || classes.len() > 64 {
            return Err(InvalidField::new("classes", format!("has {} classes; give 2 to 64", classes.len())));
        }
        let mut lut = Box::new([IGNORE; 256]);
        for (index, class) in classes.iter().enumerate() {
            let field = format!("classes[{index}]");
            if class.ids.is_empty() {
                return Err(InvalidField::new(field, format!("`{}` has no ids", class.name)));
            }
            if classes[..index].iter().any(|c| c.name == class.name) {
                return Err(InvalidField::new(field, format!("names `{}` a second time", class.name)));
            }
            for &label in &class.ids {
                let Some(label_name) = LABEL_NAMES.get(usize::from(label)) else {
                    return Err(InvalidField::new(
                        field,
                        format!("has id {label}, which is not a Cityscapes label id (0 to 33)"),
                    ));
                };
                if lut[usize::from(label)] != IGNORE {
                    return Err(InvalidField::new(
                        field,
                        format!(
                            "has id {label} ({label_name}), which class {} has already",
                            lut[usize::from(label)]
                        ),
                    ));
                }
                lut[usize::from(label)] = index as u8;
            }
        }
        let map = Self { classes, lut };
        if map.index_of("car").is_none() {
            return Err(InvalidField::new(
                "classes",
                "has no class named `car` (the headline IoU is car IoU)",
            ));
        }
        Ok(map)
    }

    pub fn classes(&self) -> &[ClassDef] {
        &self.classes
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The class index of a Cityscapes id, or [`IGNORE`].
    pub fn class_of(&self, label_id: u8) -> u8 {
        self.lut[usize::from(label_id)]
    }

    /// Class indices of a label-id map.
    pub fn map(&self, label_ids: &[u8]) -> Vec<u8> {
        label_ids.iter().map(|&l| self.lut[usize::from(l)]).collect()
    }

    /// The Cityscapes id written for a class index (its first id; 0, unlabeled, for
    /// [`IGNORE`]), so a class map written back as ids scores as it was scored here.
    pub fn label_id_of(&self, class: u8) -> u8 {
        self.classes.get(usize::from(class)).map_or(id::UNLABELED, |c| c.ids[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_maps_cityscapes_ids_and_ignores_the_rest() {
        let map = ClassMap::new(ClassMap::default_classes()).expect("valid");
        assert_eq!(map.len(), 6);
        assert_eq!(map.map(&[7, 8, 11, 21, 22, 23, 26, 27, 28, 0]), vec![0, 1, 2, 3, 3, 4, 5, 255, 255, 255]);
        assert_eq!(map.label_id_of(3), 22);
        assert_eq!(map.label_id_of(IGNORE), 0);
        assert_eq!(map.index_of("car"), Some(5));
    }

    #[test]
    fn bad_tables_are_refused_with_the_field() {
        let err = |classes: Vec<ClassDef>| ClassMap::new(classes).expect_err("invalid").to_string();
        let car = ClassDef::new("car", &[26]);
        assert!(err(vec![car.clone()]).contains("2 to 64"));
        let e = err(vec![ClassDef::new("road", &[7, 40]), car.clone()]);
        assert!(e.contains("classes[0]") && e.contains("40"), "{e}");
        let e = err(vec![ClassDef::new("road", &[7]), ClassDef::new("car", &[26, 7])]);
        assert!(e.contains("classes[1]") && e.contains("id 7 (road)"), "{e}");
        let e = err(vec![ClassDef::new("road", &[7]), ClassDef::new("vehicle", &[26])]);
        assert!(e.contains("`car`"), "{e}");
        let e = err(vec![ClassDef::new("car", &[7]), ClassDef::new("car", &[26])]);
        assert!(e.contains("second time"), "{e}");
    }
}
