//! Image derivatives as a grant names them: `name -> spec`, where a spec
//! is a box and a mode, then optional words for the output format and
//! quality, separated by spaces:
//!
//! ```text
//! 200x200 crop          cover the box, then cut its centre
//! 1200x1200 fit         the largest size within the box (never upscaled)
//! 400x300 fit webp      WebP output (lossless: image-rs encodes no lossy WebP)
//! 200x200 crop jpeg q70 JPEG at quality 70
//! ```
//!
//! A quality applies to JPEG only: `webp q80` is refused rather than
//! silently ignored.
//!
//! This module only parses and validates (the grant is checked once, when
//! it is resolved); decoding and resizing live in `chute-server`'s
//! `derivatives` module. Where each derivative is stored is decided here
//! too ([`derivative_key`]), so receipts, the worker pool and the status
//! route agree on it without asking each other.

use crate::key::ObjectKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// When a grant's derivatives are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeriveOn {
    /// When the upload completes (the receipt is issued); the default.
    #[default]
    Complete,
    /// When the app promotes the object (so abandoned uploads cost no CPU).
    Promote,
}

impl DeriveOn {
    /// Whether this is the default (`complete`), for `skip_serializing_if`.
    pub fn is_default(&self) -> bool {
        *self == Self::Complete
    }
}

/// How a derivative fits its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitMode {
    /// Scale to cover the box, then cut the centre: exactly the box's size.
    Crop,
    /// Scale to fit within the box, keeping the aspect ratio; never larger
    /// than the source.
    Fit,
}

/// The encoded format of a derivative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Baseline JPEG (no alpha: transparent pixels are laid on white).
    Jpeg,
    /// Lossless WebP (keeps alpha; larger and slower than JPEG).
    Webp,
}

impl OutputFormat {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// The file name extension, without a dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    /// Parses `jpeg`, `jpg` or `webp` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// One parsed derivative spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivativeSpec {
    /// The box's width in pixels.
    pub width: u32,
    /// The box's height in pixels.
    pub height: u32,
    /// How the image fits the box.
    pub mode: FitMode,
    /// The output format; the server's `image_format` when `None`.
    pub format: Option<OutputFormat>,
    /// The JPEG quality (1-100); the server's `image_quality` when `None`.
    pub quality: Option<u8>,
}

/// The limits a grant's derivatives are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivativeLimits {
    /// The largest width or height a spec may name.
    pub max_dimension: u32,
    /// The most derivatives one grant may name.
    pub max_count: usize,
}

impl Default for DerivativeLimits {
    fn default() -> Self {
        Self {
            max_dimension: 4096,
            max_count: MAX_DERIVATIVES,
        }
    }
}

/// The most derivatives one grant may name.
pub const MAX_DERIVATIVES: usize = 8;

/// Why a derivative spec or name was refused. Safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("derivative {name:?}: {why}")]
pub struct DerivativeError {
    /// The derivative's name as the grant gave it.
    pub name: String,
    /// What is wrong and what is expected.
    pub why: String,
}

impl DerivativeSpec {
    /// Parses a spec (see the module docs), refusing zero sizes and sizes
    /// over `max_dimension`.
    pub fn parse(spec: &str, max_dimension: u32) -> Result<Self, String> {
        let mut words = spec.split_whitespace();
        let size = words
            .next()
            .ok_or("empty spec; expected for example \"200x200 crop\"")?;
        let (w, h) = size
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("{size:?} is not WIDTHxHEIGHT"))?;
        let dim = |s: &str| -> Result<u32, String> {
            // Digits only (`u32::from_str` would take a leading `+`).
            let n: u32 = Some(s)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{s:?} is not a whole number of pixels"))?;
            if n == 0 || n > max_dimension {
                return Err(format!("size {n} is outside 1-{max_dimension} pixels"));
            }
            Ok(n)
        };
        let (width, height) = (dim(w)?, dim(h)?);
        let mode = match words.next() {
            Some("crop") => FitMode::Crop,
            Some("fit") => FitMode::Fit,
            Some(other) => return Err(format!("mode {other:?} is neither crop nor fit")),
            None => return Err("missing mode: add crop or fit after the size".into()),
        };
        let mut out = Self {
            width,
            height,
            mode,
            format: None,
            quality: None,
        };
        for word in words {
            if let Some(format) = OutputFormat::parse(word) {
                if out.format.replace(format).is_some() {
                    return Err("more than one format".into());
                }
            } else if let Some(q) = word.strip_prefix('q') {
                let q: u8 = q
                    .parse()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| format!("quality {word:?} is not q1-q100"))?;
                if out.quality.replace(q).is_some() {
                    return Err("more than one quality".into());
                }
            } else {
                return Err(format!(
                    "unknown word {word:?}; expected jpeg, webp or a quality such as q80"
                ));
            }
        }
        if out.format == Some(OutputFormat::Webp) && out.quality.is_some() {
            return Err(
                "WebP output is lossless, so a quality does not apply; drop the q word or ask for jpeg"
                    .into(),
            );
        }
        Ok(out)
    }
}

impl fmt::Display for DerivativeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            FitMode::Crop => "crop",
            FitMode::Fit => "fit",
        };
        write!(f, "{}x{} {mode}", self.width, self.height)?;
        if let Some(format) = self.format {
            write!(f, " {}", format.extension().replace("jpg", "jpeg"))?;
        }
        if let Some(q) = self.quality {
            write!(f, " q{q}")?;
        }
        Ok(())
    }
}

/// Whether `name` may name a derivative: 1-32 of `a-z0-9_-`, starting
/// with a letter or digit (it becomes part of an object key).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Parses and checks every derivative of a grant.
pub fn parse_all(
    derivatives: &BTreeMap<String, String>,
    limits: &DerivativeLimits,
) -> Result<BTreeMap<String, DerivativeSpec>, DerivativeError> {
    if derivatives.len() > limits.max_count {
        return Err(DerivativeError {
            name: derivatives
                .keys()
                .nth(limits.max_count)
                .cloned()
                .unwrap_or_default(),
            why: format!(
                "a grant may name at most {} derivatives; it names {}",
                limits.max_count,
                derivatives.len()
            ),
        });
    }
    derivatives
        .iter()
        .map(|(name, spec)| {
            let bad = |why: String| DerivativeError {
                name: name.clone(),
                why,
            };
            if !valid_name(name) {
                return Err(bad(
                    "names are 1-32 characters of a-z, 0-9, _ and -, starting with a letter or digit".into(),
                ));
            }
            let parsed = DerivativeSpec::parse(spec, limits.max_dimension).map_err(bad)?;
            Ok((name.clone(), parsed))
        })
        .collect()
}

/// The key prefix under which all derivatives live.
pub const DERIVATIVES_PREFIX: &str = "derivatives/";

/// Where derivative `name` of upload `upload_id` is stored:
/// `derivatives/<upload id>/<name>.<ext>`. The key depends on the upload,
/// not on the original's key, so it stays put when the original is
/// promoted from `tmp/` to its final key, and a receipt (whose `jti` is
/// the upload id) finds it before and after promotion.
pub fn derivative_key(
    upload_id: &str,
    name: &str,
    format: OutputFormat,
) -> Result<ObjectKey, crate::KeyError> {
    ObjectKey::parse(&format!(
        "{DERIVATIVES_PREFIX}{upload_id}/{name}.{}",
        format.extension()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s = DerivativeSpec::parse("200x200 crop", 4096).unwrap();
        assert_eq!(
            (s.width, s.height, s.mode, s.format, s.quality),
            (200, 200, FitMode::Crop, None, None)
        );
        let s = DerivativeSpec::parse("  1200X800   fit jpeg q70 ", 4096).unwrap();
        assert_eq!(
            (s.width, s.height, s.mode, s.format, s.quality),
            (1200, 800, FitMode::Fit, Some(OutputFormat::Jpeg), Some(70))
        );
        assert_eq!(s.to_string(), "1200x800 fit jpeg q70");
        let s = DerivativeSpec::parse("400x300 fit webp", 4096).unwrap();
        assert_eq!((s.format, s.quality), (Some(OutputFormat::Webp), None));
        assert_eq!(
            DerivativeSpec::parse("10x20 crop jpg", 100).unwrap().format,
            Some(OutputFormat::Jpeg)
        );
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("", "empty"),
            ("200", "WIDTHxHEIGHT"),
            ("0x200 crop", "outside 1-4096"),
            ("200x5000 fit", "outside 1-4096"),
            ("-1x2 fit", "whole number"),
            ("200x200", "missing mode"),
            ("200x200 stretch", "neither crop nor fit"),
            ("200x200 fit png", "unknown word"),
            ("200x200 fit q0", "q1-q100"),
            ("200x200 fit q101", "q1-q100"),
            ("200x200 fit webp jpeg", "more than one format"),
            ("200x200 fit q1 q2", "more than one quality"),
            ("200x200 fit webp q80", "lossless"),
            ("200x200 fit q80 webp", "lossless"),
            ("+200x200 crop", "whole number"),
            ("200x+200 crop", "whole number"),
        ] {
            let err = DerivativeSpec::parse(spec, 4096).unwrap_err();
            assert!(err.contains(why), "{spec:?}: {err}");
        }
    }

    #[test]
    fn names_and_counts_are_checked() {
        let limits = DerivativeLimits::default();
        let one = |name: &str| BTreeMap::from([(name.to_owned(), "1x1 fit".to_owned())]);
        assert!(parse_all(&one("thumb_2x-a"), &limits).is_ok());
        for bad in ["", "Thumb", "a/b", "..", "-x", "a.b", &"a".repeat(33)] {
            assert!(parse_all(&one(bad), &limits).is_err(), "{bad:?}");
        }
        let many: BTreeMap<_, _> = (0..9).map(|i| (format!("d{i}"), "1x1 fit".to_owned())).collect();
        let err = parse_all(&many, &limits).unwrap_err();
        assert!(err.why.contains("at most 8"), "{err}");
    }

    #[test]
    fn keys_follow_the_upload_not_the_original() {
        let key = derivative_key("u123", "thumb", OutputFormat::Jpeg).unwrap();
        assert_eq!(key.as_str(), "derivatives/u123/thumb.jpg");
        assert!(derivative_key("../x", "thumb", OutputFormat::Webp).is_err());
    }
}
