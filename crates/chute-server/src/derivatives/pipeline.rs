//! The image pipeline, in memory and synchronous (it runs on the worker
//! pool, never on the async runtime): decode once under strict limits,
//! apply the EXIF orientation, then resize and encode each derivative.
//!
//! Decoding refuses anything over the configured width, height or
//! allocation before it allocates the pixels (a 30000x30000 PNG that
//! compresses to a few kilobytes is refused from its header), and a
//! decoder error (truncated file, HTML named `.jpg`) becomes a message
//! for the derivative's status, never a panic or a failed upload.

use chute_core::{DerivativeSpec, FitMode, OutputFormat};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::borrow::Cow;
use std::io::Cursor;

/// What the decoder may spend on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The widest (and tallest) image decoded, in pixels.
    pub max_dimension: u32,
    /// The most bytes the decoded pixels (and the decoder's buffers) may take.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_dimension: 16_384,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

/// The format and quality used when a spec names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeDefaults {
    /// The output format.
    pub format: OutputFormat,
    /// The JPEG quality, 1-100.
    pub quality: u8,
}

impl Default for EncodeDefaults {
    fn default() -> Self {
        Self {
            format: OutputFormat::Jpeg,
            quality: 85,
        }
    }
}

/// One encoded derivative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The output format.
    pub format: OutputFormat,
}

/// The source formats derivatives are made from.
const SOURCE_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
];

/// Decodes `bytes` (JPEG, PNG, WebP or GIF, recognised by content, not
/// name) within `limits` and turns it upright per its EXIF orientation.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<DynamicImage, String> {
    decode_for(bytes, limits, &[])
}

/// [`decode`], for making `specs`: a sequential (baseline) JPEG much
/// larger than they need is decoded at 1/2, 1/4 or 1/8 of its size by DCT
/// scaling (jpeg-decoder's `Decoder::scale`), keeping at least twice the
/// largest output's resolution, which costs a fraction of a full decode.
/// Progressive JPEGs, and anything else, go through image's decoder under
/// `limits` (see [`scaled_jpeg`] for why).
pub fn decode_for(
    bytes: &[u8],
    limits: DecodeLimits,
    specs: &[DerivativeSpec],
) -> Result<DynamicImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    match reader.format() {
        Some(f) if SOURCE_FORMATS.contains(&f) => {}
        Some(f) => {
            return Err(format!(
                "{f:?} images are not derived; send JPEG, PNG, WebP or GIF"
            ));
        }
        None => return Err("not a JPEG, PNG, WebP or GIF image".into()),
    }
    // The header first, so an oversized image is refused by its stated
    // size with a message that says which limit it broke.
    let (w, h) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?
        .into_dimensions()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    if w > limits.max_dimension || h > limits.max_dimension {
        return Err(format!(
            "the image is {w}x{h} pixels; at most {0}x{0} are decoded (image_max_dimension)",
            limits.max_dimension
        ));
    }
    let format = reader.format();
    let mut reader = reader;
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_dimension);
    image_limits.max_image_height = Some(limits.max_dimension);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let over_alloc = |needed: u64| {
        format!(
            "the image ({w}x{h}) needs {} MiB decoded; at most {} MiB are allowed (image_max_alloc_mib)",
            needed.div_ceil(1024 * 1024),
            limits.max_alloc / (1024 * 1024)
        )
    };
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => over_alloc(u64::from(w) * u64::from(h)),
        e => format!("cannot decode the image: {e}"),
    })?;
    // Not every decoder honours `max_alloc`; the pixels alone must fit.
    if decoder.total_bytes() > limits.max_alloc {
        return Err(over_alloc(decoder.total_bytes()));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let scaled = match (format, jpeg_request(w, h, orientation, specs)) {
        // Any trouble (CMYK, a cut scan) and the full decoder decides.
        (Some(ImageFormat::Jpeg), Some(request)) => scaled_jpeg(bytes, (w, h), request, limits),
        _ => None,
    };
    let mut image = match scaled {
        Some(image) => image,
        None => DynamicImage::from_decoder(decoder).map_err(|e| match e {
            image::ImageError::Limits(_) => over_alloc(u64::from(w) * u64::from(h)),
            e => format!("cannot decode the image: {e}"),
        })?,
    };
    image.apply_orientation(orientation);
    Ok(image)
}

/// The stored size a JPEG of `w`x`h` must be decoded at for `specs`
/// (twice the resolution the largest needs), when that is at most half
/// of it; `None` when a full decode is needed.
fn jpeg_request(
    w: u32,
    h: u32,
    orientation: image::metadata::Orientation,
    specs: &[DerivativeSpec],
) -> Option<(u16, u16)> {
    use image::metadata::Orientation as O;
    let swapped = matches!(
        orientation,
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH
    );
    let (dw, dh) = if swapped { (h, w) } else { (w, h) };
    let (dw, dh) = (f64::from(dw.max(1)), f64::from(dh.max(1)));
    let scale = specs
        .iter()
        .map(|s| {
            let (sx, sy) = (f64::from(s.width) / dw, f64::from(s.height) / dh);
            match s.mode {
                FitMode::Crop => sx.max(sy),
                FitMode::Fit => sx.min(sy),
            }
        })
        .fold(None, |acc: Option<f64>, s| Some(acc.map_or(s, |a| a.max(s))))?;
    let factor = 2.0 * scale;
    if factor > 0.5 {
        return None;
    }
    let side = |n: u32| u16::try_from((f64::from(n) * factor).ceil() as u32).ok();
    Some((side(w)?.max(1), side(h)?.max(1)))
}

/// A JPEG decoded by DCT scaling to at least `request` (stored
/// orientation), or `None` when it is not one the fast path takes (the
/// limited decoder then decides).
///
/// jpeg-decoder does not know `image::Limits`: a progressive JPEG makes
/// it hold full-size coefficient buffers whatever the scale, and walk
/// every block once per scan, with no limit on the number of scans (a
/// few kilobytes of repeated scans cost minutes). So it only gets
/// sequential (baseline) RGB or greyscale JPEGs of `w`x`h` (the size the
/// limited header check passed) with at most one scan per component;
/// their cost is one pass over the file, and the output buffer is capped
/// at `max_alloc`.
fn scaled_jpeg(
    bytes: &[u8],
    (w, h): (u32, u32),
    request: (u16, u16),
    limits: DecodeLimits,
) -> Option<DynamicImage> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let components = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::L8 => 1,
        _ => return None,
    };
    if info.coding_process != jpeg_decoder::CodingProcess::DctSequential
        || (u32::from(info.width), u32::from(info.height)) != (w, h)
        || jpeg_scan_count(bytes)? > components
    {
        return None;
    }
    let (sw, sh) = decoder.scale(request.0, request.1).ok()?;
    let pixels = decoder.decode().ok()?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => None,
    }
}

/// The number of scans (SOS markers) in a JPEG, walking its marker
/// segments and skipping entropy-coded data; `None` when the marker
/// structure is broken.
fn jpeg_scan_count(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut scans = 0;
    let mut i = 2;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while bytes.get(i)? == &0xFF && bytes.get(i + 1)? == &0xFF {
            i += 1;
        }
        if bytes.get(i)? != &0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        match marker {
            0xD9 => return Some(scans),
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]));
        i += 2 + len;
        if marker == 0xDA {
            scans += 1;
            // Entropy-coded data runs to the next marker that is neither a
            // stuffed 0xFF00 nor a restart marker.
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => i += 2,
                    (Some(0xFF), Some(_)) => break,
                    // Cut inside the scan: what was read is all there is.
                    (Some(_), Some(_)) => i += 1,
                    _ => return Some(scans),
                }
            }
        }
    }
}

/// `image` converted once to the 8-bit pixels every one of `specs`
/// encodes from (RGB8, flattened on white, for JPEG; RGBA8 for WebP with
/// alpha), so [`render`] borrows it instead of converting the whole
/// source again for each spec, and the decoded original (16-bit PNGs:
/// twice the size) is freed before rendering. Left as it is when the
/// specs need different pixels.
pub fn converted_once(
    image: DynamicImage,
    specs: &[DerivativeSpec],
    defaults: EncodeDefaults,
) -> DynamicImage {
    let alpha = image.color().has_alpha();
    let keeps_alpha = |s: &DerivativeSpec| alpha && s.format.unwrap_or(defaults.format) == OutputFormat::Webp;
    if specs.iter().all(keeps_alpha) {
        match image {
            DynamicImage::ImageRgba8(_) => image,
            other => DynamicImage::ImageRgba8(other.to_rgba8()),
        }
    } else if !specs.iter().any(keeps_alpha) {
        match image {
            DynamicImage::ImageRgb8(_) => image,
            other if alpha => DynamicImage::ImageRgb8(on_white(&other)),
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        }
    } else {
        image
    }
}

/// Resizes and encodes one derivative of an upright image.
pub fn render(
    image: &DynamicImage,
    spec: &DerivativeSpec,
    defaults: EncodeDefaults,
) -> Result<Rendered, String> {
    let format = spec.format.unwrap_or(defaults.format);
    let quality = spec.quality.unwrap_or(defaults.quality);
    let (width, height) = target_size(image.width(), image.height(), spec);
    // 8 bits per channel; alpha only where the output keeps it.
    let keep_alpha = format == OutputFormat::Webp && image.color().has_alpha();
    let source = if keep_alpha && matches!(image, DynamicImage::ImageRgba8(_)) {
        Cow::Borrowed(image)
    } else if keep_alpha {
        Cow::Owned(DynamicImage::ImageRgba8(image.to_rgba8()))
    } else if image.color().has_alpha() {
        Cow::Owned(DynamicImage::ImageRgb8(on_white(image)))
    } else if let DynamicImage::ImageRgb8(_) = image {
        Cow::Borrowed(image)
    } else {
        Cow::Owned(DynamicImage::ImageRgb8(image.to_rgb8()))
    };
    let mut resized = DynamicImage::new(width, height, source.color());
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if spec.mode == FitMode::Crop {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(source.as_ref(), &mut resized, &options)
        .map_err(|e| format!("cannot resize: {e}"))?;
    let mut bytes = Vec::new();
    match format {
        OutputFormat::Jpeg => JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode(resized.as_bytes(), width, height, ExtendedColorType::Rgb8)
            .map_err(|e| format!("cannot encode JPEG: {e}"))?,
        OutputFormat::Webp => {
            let color = if keep_alpha {
                ExtendedColorType::Rgba8
            } else {
                ExtendedColorType::Rgb8
            };
            WebPEncoder::new_lossless(&mut bytes)
                .encode(resized.as_bytes(), width, height, color)
                .map_err(|e| format!("cannot encode WebP: {e}"))?;
        }
    }
    Ok(Rendered {
        bytes,
        width,
        height,
        format,
    })
}

/// Without alpha the source needs a background: white, as most pages are.
fn on_white(image: &DynamicImage) -> image::RgbImage {
    let rgba = image.to_rgba8();
    let mut out = image::RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = src.0;
        let blend = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        dst.0 = [blend(r), blend(g), blend(b)];
    }
    out
}

/// The output size: the box itself for `crop` (the source is cut to its
/// aspect ratio), the largest size within the box keeping the aspect
/// ratio for `fit`. Neither enlarges a smaller source: `crop` shrinks the
/// box to the source's size first, `fit` keeps the source's size.
pub fn target_size(src_w: u32, src_h: u32, spec: &DerivativeSpec) -> (u32, u32) {
    let (bw, bh) = (u64::from(spec.width), u64::from(spec.height));
    let (sw, sh) = (u64::from(src_w.max(1)), u64::from(src_h.max(1)));
    let (w, h) = match spec.mode {
        FitMode::Crop => {
            if sw >= bw && sh >= bh {
                (bw, bh)
            } else if sw * bh <= sh * bw {
                // The source's width limits: the box scaled to it.
                (sw, (sw * bh / bw).max(1))
            } else {
                ((sh * bw / bh).max(1), sh)
            }
        }
        FitMode::Fit => {
            if sw <= bw && sh <= bh {
                (sw, sh)
            } else if sw * bh >= sh * bw {
                (bw, (sh * bw / sw).max(1))
            } else {
                ((sw * bh / sh).max(1), bh)
            }
        }
    };
    (w as u32, h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::derivatives::test_images as images;

    fn decoded(bytes: &[u8]) -> DynamicImage {
        decode(bytes, DecodeLimits::default()).unwrap()
    }

    fn rendered(bytes: &[u8], s: &str) -> (Rendered, DynamicImage) {
        let r = render(&decoded(bytes), &spec(s), EncodeDefaults::default()).unwrap();
        let back = image::load_from_memory(&r.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (r.width, r.height));
        (r, back)
    }

    #[test]
    fn every_source_format_gives_a_real_image_of_the_right_size() {
        for (what, bytes) in [
            ("jpeg", images::jpeg(640, 480)),
            ("png", images::png_rgba(640, 480)),
            ("webp", images::webp(640, 480)),
            ("gif", images::gif(640, 480)),
        ] {
            let (thumb, _) = rendered(&bytes, "200x200 crop");
            assert_eq!(
                (thumb.width, thumb.height, thumb.format),
                (200, 200, OutputFormat::Jpeg),
                "{what}"
            );
            assert_eq!(
                image::guess_format(&thumb.bytes).unwrap(),
                ImageFormat::Jpeg,
                "{what}"
            );
            let (fit, _) = rendered(&bytes, "300x300 fit webp");
            assert_eq!((fit.width, fit.height), (300, 225), "{what}");
            assert_eq!(
                image::guess_format(&fit.bytes).unwrap(),
                ImageFormat::WebP,
                "{what}"
            );
        }
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored 40x20, red left, blue right.
        let src = images::halves(40, 20);
        // 6: turn 90 degrees clockwise to show; the left (red) comes on top.
        let (r, img) = rendered(&images::jpeg_of(&src, Some(6)), "100x100 fit");
        assert_eq!((r.width, r.height), (20, 40));
        let rgb = img.to_rgb8();
        let top = rgb.get_pixel(10, 5).0;
        let bottom = rgb.get_pixel(10, 35).0;
        assert!(top[0] > 200 && top[2] < 60, "top is red: {top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "bottom is blue: {bottom:?}");
        // 3: turned 180 degrees; blue now on the left.
        let (r, img) = rendered(&images::jpeg_of(&src, Some(3)), "100x100 fit");
        assert_eq!((r.width, r.height), (40, 20));
        let left = img.to_rgb8().get_pixel(5, 10).0;
        assert!(left[2] > 200 && left[0] < 60, "left is blue: {left:?}");
        // 1 (or none): as stored.
        let (_, img) = rendered(&images::jpeg_of(&src, Some(1)), "100x100 fit");
        assert!(img.to_rgb8().get_pixel(5, 10).0[0] > 200);
    }

    #[test]
    fn transparency_lies_on_white_in_jpeg_and_stays_in_webp() {
        let png = images::png_rgba(100, 50);
        let (_, jpeg) = rendered(&png, "100x100 fit");
        let p = jpeg.to_rgb8().get_pixel(10, 25).0;
        assert!(p.iter().all(|c| *c > 230), "transparent became white: {p:?}");
        let (_, webp) = rendered(&png, "100x100 fit webp");
        assert!(webp.color().has_alpha());
        assert_eq!(webp.to_rgba8().get_pixel(10, 25).0[3], 0);
    }

    fn refused(bytes: &[u8], limits: DecodeLimits) -> String {
        match decode(bytes, limits) {
            Ok(img) => panic!("decoded a {}x{} image", img.width(), img.height()),
            Err(why) => why,
        }
    }

    #[test]
    fn hostile_input_fails_with_a_reason() {
        let bomb = images::bomb_png(30_000);
        assert!(
            bomb.len() < 1024 * 1024,
            "the bomb is small: {} bytes",
            bomb.len()
        );
        let err = refused(&bomb, DecodeLimits::default());
        assert!(err.contains("30000x30000"), "{err}");
        let tight = DecodeLimits {
            max_dimension: 65_535,
            max_alloc: 64 * 1024 * 1024,
        };
        let err = refused(&bomb, tight);
        assert!(err.contains("MiB"), "{err}");
        let err = refused(&images::truncated_jpeg(), DecodeLimits::default());
        assert!(err.contains("cannot decode"), "{err}");
        let err = refused(&images::html(), DecodeLimits::default());
        assert!(err.contains("not a JPEG, PNG, WebP or GIF"), "{err}");
        // Cut inside the scan data: decoded, the missing rows grey.
        let half = decoded(&images::half_jpeg());
        assert_eq!((half.width(), half.height()), (400, 300));
        let err = refused(b"BM\x3a\0\0\0\0\0\0\0", DecodeLimits::default());
        assert!(err.contains("not a JPEG") || err.contains("not derived"), "{err}");
    }

    #[test]
    fn big_jpegs_decode_scaled_for_small_derivatives() {
        let thumb = spec("200x200 crop");
        let jpeg = images::jpeg(1600, 1200);
        // Twice the 200x200 cover (267x200 of 1600x1200) is 534x400:
        // decoded at 1/2, not 1/4.
        let scaled = decode_for(&jpeg, DecodeLimits::default(), &[thumb]).unwrap();
        assert_eq!((scaled.width(), scaled.height()), (800, 600));
        let full = decoded(&jpeg);
        let a = render(&scaled, &thumb, EncodeDefaults::default()).unwrap();
        let b = render(&full, &thumb, EncodeDefaults::default()).unwrap();
        assert_eq!((a.width, a.height), (b.width, b.height));
        let (a, b) = (
            image::load_from_memory(&a.bytes).unwrap().to_rgb8(),
            image::load_from_memory(&b.bytes).unwrap().to_rgb8(),
        );
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        let mean = diff as f64 / a.as_raw().len() as f64;
        assert!(
            mean < 6.0,
            "scaled and full decodes look alike: mean difference {mean}"
        );
        // A large derivative needs the full decode.
        let big = decode_for(&jpeg, DecodeLimits::default(), &[spec("1200x1200 fit")]).unwrap();
        assert_eq!(big.width(), 1600);
        // Orientation counts: stored 1600x800 (red left), shown 800x1600 (red on top).
        let rotated = images::jpeg_of(&images::halves(1600, 800), Some(6));
        let img = decode_for(&rotated, DecodeLimits::default(), &[spec("100x100 fit")]).unwrap();
        assert_eq!((img.width(), img.height()), (100, 200), "1/8 of 800x1600");
        let top = img.to_rgb8().get_pixel(50, 20).0;
        assert!(top[0] > 200 && top[2] < 60, "{top:?}");
        // A cut scan falls back to the full decoder (grey rows).
        let half = decode_for(&images::half_jpeg(), DecodeLimits::default(), &[thumb]).unwrap();
        assert!(half.width() > 0);
    }

    #[test]
    fn progressive_jpegs_with_many_scans_are_refused() {
        // 300 scans of a 2048x2048 picture: a few kilobytes, but each scan
        // walks every block. The limited decoder stops at 100 scans, even
        // when the derivatives are small enough for DCT scaling.
        let bomb = images::progressive_jpeg_bomb(2048, 300);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let thumb = spec("200x200 crop");
        let err = match decode_for(&bomb, DecodeLimits::default(), &[thumb]) {
            Ok(img) => panic!("decoded {}x{}", img.width(), img.height()),
            Err(why) => why,
        };
        assert!(err.contains("scans"), "{err}");
        assert_eq!(jpeg_scan_count(&bomb), Some(300));
        assert_eq!(jpeg_scan_count(&images::jpeg(64, 48)), Some(1));
        // A progressive JPEG within the limit still decodes (in full).
        let fine = images::progressive_jpeg_bomb(256, 10);
        let img = decode_for(&fine, DecodeLimits::default(), &[spec("16x16 crop")]).unwrap();
        assert_eq!((img.width(), img.height()), (256, 256));
    }

    #[test]
    fn converting_once_renders_the_same_derivatives() {
        for (bytes, specs) in [
            (images::png_rgba(300, 200), ["100x100 crop", "150x150 fit"]),
            (
                images::png_rgba(300, 200),
                ["100x100 crop webp", "150x150 fit webp"],
            ),
            (images::png_rgba(300, 200), ["100x100 crop", "150x150 fit webp"]),
            (images::gif(300, 200), ["100x100 crop", "150x150 fit"]),
            (images::jpeg(300, 200), ["100x100 crop", "150x150 fit webp"]),
        ] {
            let specs = specs.map(spec);
            let image = decoded(&bytes);
            let once = converted_once(image.clone(), &specs, EncodeDefaults::default());
            for s in &specs {
                assert_eq!(
                    render(&once, s, EncodeDefaults::default()).unwrap(),
                    render(&image, s, EncodeDefaults::default()).unwrap(),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn quality_changes_the_jpeg() {
        let img = decoded(&images::jpeg(800, 600));
        let low = render(&img, &spec("400x400 fit q20"), EncodeDefaults::default()).unwrap();
        let high = render(&img, &spec("400x400 fit q95"), EncodeDefaults::default()).unwrap();
        assert!(low.bytes.len() < high.bytes.len());
    }

    fn spec(s: &str) -> DerivativeSpec {
        DerivativeSpec::parse(s, 4096).unwrap()
    }

    #[test]
    fn sizes_fit_and_crop_without_upscaling() {
        assert_eq!(target_size(4000, 3000, &spec("200x200 crop")), (200, 200));
        assert_eq!(target_size(4000, 3000, &spec("1200x1200 fit")), (1200, 900));
        assert_eq!(target_size(3000, 4000, &spec("1200x1200 fit")), (900, 1200));
        assert_eq!(target_size(100, 50, &spec("1200x1200 fit")), (100, 50));
        assert_eq!(target_size(100, 50, &spec("200x200 crop")), (50, 50));
        assert_eq!(target_size(300, 100, &spec("200x100 crop")), (200, 100));
        assert_eq!(target_size(150, 400, &spec("200x100 crop")), (150, 75));
        assert_eq!(target_size(1, 5000, &spec("100x100 fit")), (1, 100));
    }
}
