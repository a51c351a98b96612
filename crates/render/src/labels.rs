//! Semantic classes with Cityscapes label ids and colours, so exported masks can be read
//! by Cityscapes tooling. Lane markings have no Cityscapes class; they get id 34, the
//! first id after Cityscapes' range.

/// The classes the renderer labels. Every label pixel is one of these ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SemanticClass {
    Road,
    Sidewalk,
    Building,
    Terrain,
    Sky,
    Car,
    LaneMarking,
}

impl SemanticClass {
    pub const ALL: [SemanticClass; 7] = [
        SemanticClass::Road,
        SemanticClass::Sidewalk,
        SemanticClass::Building,
        SemanticClass::Terrain,
        SemanticClass::Sky,
        SemanticClass::Car,
        SemanticClass::LaneMarking,
    ];

    /// Position in [`SemanticClass::ALL`]: the class index models are trained on.
    pub fn index(self) -> usize {
        match self {
            SemanticClass::Road => 0,
            SemanticClass::Sidewalk => 1,
            SemanticClass::Building => 2,
            SemanticClass::Terrain => 3,
            SemanticClass::Sky => 4,
            SemanticClass::Car => 5,
            SemanticClass::LaneMarking => 6,
        }
    }

    /// Cityscapes label id (34 for lane markings).
    pub fn id(self) -> u8 {
        match self {
            SemanticClass::Road => 7,
            SemanticClass::Sidewalk => 8,
            SemanticClass::Building => 11,
            SemanticClass::Terrain => 22,
            SemanticClass::Sky => 23,
            SemanticClass::Car => 26,
            SemanticClass::LaneMarking => 34,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SemanticClass::Road => "road",
            SemanticClass::Sidewalk => "sidewalk",
            SemanticClass::Building => "building",
            SemanticClass::Terrain => "terrain",
            SemanticClass::Sky => "sky",
            SemanticClass::Car => "car",
            SemanticClass::LaneMarking => "lane marking",
        }
    }

    /// The Cityscapes colour (sRGB); lane markings white.
    pub fn colour(self) -> [u8; 3] {
        match self {
            SemanticClass::Road => [128, 64, 128],
            SemanticClass::Sidewalk => [244, 35, 232],
            SemanticClass::Building => [70, 70, 70],
            SemanticClass::Terrain => [152, 251, 152],
            SemanticClass::Sky => [70, 130, 180],
            SemanticClass::Car => [0, 0, 142],
            SemanticClass::LaneMarking => [255, 255, 255],
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_colours_are_unique_and_round_trip() {
        for (i, a) in SemanticClass::ALL.iter().enumerate() {
            assert_eq!(SemanticClass::from_id(a.id()), Some(*a));
            assert_eq!(SemanticClass::ALL[a.index()], *a);
            for b in &SemanticClass::ALL[i + 1..] {
                assert_ne!(a.id(), b.id());
                assert_ne!(a.colour(), b.colour());
            }
        }
        assert_eq!(SemanticClass::from_id(0), None);
    }
}
