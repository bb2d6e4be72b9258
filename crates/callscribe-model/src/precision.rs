//! The number format of a model's weights: one type for what the configuration
//! (`models.weights`), the command line (`--weights`, `models quantize --to`,
//! `models import-ct2 --weights`) and whisper.cpp's file format (a tensor's `ggml_type`, a
//! file's `ftype`) choose between.
//!
//! The discriminant is ggml's type id (`enum ggml_type`); a file's `ftype` numbers the same
//! formats differently ([`Precision::ftype`]). Every format whisper.cpp's loader accepts can be
//! read; which ones a setting takes is a named list here ([`Precision::CATALOGUE`],
//! [`Precision::QUANTISED`], [`Precision::WRITABLE`]), so the configuration and every flag
//! that means the same choice accept the same names.

use crate::ggml::{QNT_VERSION, QNT_VERSION_FACTOR};

/// A weight format, named as ggml names it (`f16`, `q8_0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 32-bit floats: twice the size of f16 for no gain on published weights.
    F32 = 0,
    /// 16-bit floats: the published whisper.cpp files.
    F16 = 1,
    /// 4-bit symmetric blocks (read, not written).
    Q4_0 = 2,
    /// 4-bit blocks with offset (read, not written).
    Q4_1 = 3,
    /// 5-bit symmetric blocks, 22 bytes per 32 weights (34 % of f16).
    Q5_0 = 6,
    /// 5-bit blocks with offset, 24 bytes per 32 weights (38 % of f16).
    Q5_1 = 7,
    /// 8-bit blocks, 34 bytes per 32 weights (53 % of f16): on a CPU faster than f16 at the
    /// same error rates (BENCHMARKS.md, issue #7), hence what catalogue models run at unless
    /// configured otherwise.
    #[default]
    Q8_0 = 8,
}

/// A precision name that is not among those a setting accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant `{name}`, expected one of {}", quoted(.among))]
pub struct UnknownPrecision {
    pub name: String,
    pub among: &'static [Precision],
}

fn quoted(among: &[Precision]) -> String {
    among
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Precision {
    /// What a catalogue model runs at: the published f16 file, or a copy quantised from it on
    /// first use (`models.weights`, `--weights`).
    pub const CATALOGUE: &'static [Precision] = &[Self::F16, Self::Q8_0, Self::Q5_1, Self::Q5_0];
    /// The block formats callscribe quantises to, largest first (`models quantize --to`).
    pub const QUANTISED: &'static [Precision] = &[Self::Q8_0, Self::Q5_1, Self::Q5_0];
    /// What the ggml writer (and so the CTranslate2 converter) can write
    /// (`models import-ct2 --weights`).
    pub const WRITABLE: &'static [Precision] =
        &[Self::F16, Self::F32, Self::Q8_0, Self::Q5_1, Self::Q5_0];
    /// Every format the reader knows.
    pub const ALL: &'static [Precision] = &[
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
    ];

    /// The format with ggml type id `id`.
    pub fn from_id(id: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.id() == id)
    }

    /// ggml's type id (`enum ggml_type`), as a tensor record stores it.
    pub fn id(self) -> i32 {
        self as i32
    }

    /// ggml's name: `f16`, `q8_0`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
        }
    }

    /// The format named `name`, if it is one of `among`.
    pub fn parse_among(name: &str, among: &'static [Precision]) -> Result<Self, UnknownPrecision> {
        among
            .iter()
            .copied()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownPrecision {
                name: name.to_owned(),
                among,
            })
    }

    /// One line on what the format is, for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Self::F32 => "32-bit floats: twice the size of f16, no more accurate",
            Self::F16 => "16-bit floats, as published",
            Self::Q4_0 => "4-bit symmetric blocks",
            Self::Q4_1 => "4-bit blocks with offset",
            Self::Q5_0 => "5-bit symmetric blocks, 22 bytes per 32 weights (34% of f16)",
            Self::Q5_1 => "5-bit blocks with offset, 24 bytes per 32 weights (38% of f16)",
            Self::Q8_0 => "8-bit blocks, 34 bytes per 32 weights (53% of f16): fastest on a CPU",
        }
    }

    /// Elements per block (`ggml_blck_size`).
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 => 1,
            _ => 32,
        }
    }

    /// Bytes per block (`ggml_type_size`).
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
        }
    }

    /// Size of a tensor of this format with these ggml dimensions; `None` when rows are not a
    /// whole number of blocks (ggml cannot represent that) or the size overflows.
    pub fn nbytes(self, ne: &[usize]) -> Option<u64> {
        let row = *ne.first()?;
        if row % self.block_size() != 0 {
            return None;
        }
        let n = ne
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
        (n / self.block_size() as u64).checked_mul(self.block_bytes() as u64)
    }

    /// The model-level `ftype` (`enum ggml_ftype`) whose large matrices have this format.
    pub fn ftype(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
        }
    }

    /// Whether this is a block quantisation (rather than plain floats).
    pub fn is_quantised(self) -> bool {
        !matches!(self, Self::F32 | Self::F16)
    }

    /// The `ftype` to store in a file's header: [`Precision::ftype`], plus
    /// [`QNT_VERSION`] × [`QNT_VERSION_FACTOR`] for quantised formats, as whisper.cpp's
    /// `quantize` tool writes it (float models carry no version).
    pub fn file_ftype(self) -> i32 {
        if self.is_quantised() {
            QNT_VERSION * QNT_VERSION_FACTOR + self.ftype()
        } else {
            self.ftype()
        }
    }

    /// Inverse of [`Precision::ftype`], after removing the quantisation version.
    pub fn from_ftype(ftype: i32) -> Option<Self> {
        let ftype = ftype.rem_euclid(QNT_VERSION_FACTOR);
        Self::ALL.iter().copied().find(|p| p.ftype() == ftype)
    }

    /// The store name of model `model` in this format: `base` for f16 (the published file),
    /// else `base-q8_0`, the name a quantised copy gets unless told otherwise.
    pub fn store_name(self, model: &str) -> String {
        if self == Self::F16 {
            model.to_owned()
        } else {
            format!("{model}-{self}")
        }
    }

    /// Serde's `deserialize_with` for a setting that takes one of [`Precision::CATALOGUE`]
    /// (`models.weights`).
    pub fn deserialize_catalogue<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        Self::parse_among(&name, Self::CATALOGUE).map_err(serde::de::Error::custom)
    }

    /// A clap value parser that takes exactly the formats in `among`, listed in that order with
    /// their [`help`](Self::help) in `--help`.
    #[cfg(feature = "clap")]
    pub fn value_parser(
        among: &'static [Precision],
    ) -> impl clap::builder::TypedValueParser<Value = Precision> {
        use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
        PossibleValuesParser::new(
            among
                .iter()
                .map(|p| PossibleValue::new(p.name()).help(p.help())),
        )
        .map(move |name| Self::parse_among(&name, among).expect("clap accepts only these names"))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        Self::parse_among(&name, Self::ALL).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_ftypes_round_trip() {
        for &p in Precision::ALL {
            assert_eq!(Precision::from_id(p.id()), Some(p));
            assert_eq!(Precision::parse_among(p.name(), Precision::ALL), Ok(p));
            assert_eq!(Precision::from_ftype(p.file_ftype()), Some(p));
        }
        assert_eq!(Precision::from_id(4), None, "q4_2 is gone from ggml");
    }

    #[test]
    fn every_list_names_what_it_accepts() {
        assert!(Precision::QUANTISED.iter().all(|p| p.is_quantised()));
        assert!(Precision::QUANTISED
            .iter()
            .all(|p| Precision::CATALOGUE.contains(p) && Precision::WRITABLE.contains(p)));
        let e = Precision::parse_among("f32", Precision::CATALOGUE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown variant `f32`, expected one of `f16`, `q8_0`, `q5_1`, `q5_0`"
        );
    }

    #[test]
    fn store_names_mark_all_but_the_published_f16() {
        assert_eq!(Precision::F16.store_name("base"), "base");
        assert_eq!(Precision::Q8_0.store_name("base"), "base-q8_0");
        assert_eq!(Precision::default(), Precision::Q8_0);
    }
}
