//! Image fixtures made in memory: photo-like JPEGs (with an EXIF
//! orientation when asked), PNG, WebP, GIF, a decompression bomb and a
//! truncated JPEG. Shared by the integration tests and, through
//! `#[path]`, the pipeline's unit tests.

#![allow(dead_code)]

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage, RgbaImage};
use std::io::Write as _;

/// A photo-like picture: gradients and texture, so JPEG has work to do.
pub fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let t = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 17;
        Rgb([
            ((x * 255 / w.max(1)) as u8).wrapping_add(t as u8),
            ((y * 255 / h.max(1)) as u8).wrapping_add(t as u8),
            (((x + y) % 256) as u8) / 2,
        ])
    })
}

/// Left half red, right half blue: shows where a rotation put things.
pub fn halves(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

/// `img` as a JPEG, with an EXIF orientation tag when `orientation` is set.
pub fn jpeg_of(img: &RgbImage, orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 90);
    if let Some(o) = orientation {
        enc.set_exif_metadata(exif_orientation(o)).unwrap();
    }
    enc.write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A photo-like JPEG.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    jpeg_of(&photo(w, h), None)
}

/// A TIFF block (little-endian) with one IFD entry: Orientation.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_le_bytes()); // count
    t.extend_from_slice(&o.to_le_bytes());
    t.extend_from_slice(&[0, 0]); // padding of the value field
    t.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    t
}

/// A PNG with an alpha channel (a transparent left half).
pub fn png_rgba(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            (x % 256) as u8,
            (y % 256) as u8,
            90,
            if x < w / 2 { 0 } else { 255 },
        ])
    });
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, ExtendedColorType::Rgba8)
        .unwrap();
    out
}

/// A lossless WebP.
pub fn webp(w: u32, h: u32) -> Vec<u8> {
    let img = photo(w, h);
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .encode(img.as_raw(), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A one-frame GIF.
pub fn gif(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(photo(w, h)).to_rgba8();
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.encode(img.as_raw(), w, h, ExtendedColorType::Rgba8).unwrap();
    }
    out
}

/// A valid `side`x`side` 1-bit grayscale PNG of zeros: a few hundred
/// kilobytes that decode to `side`² bytes. The pixel rows are streamed
/// through zlib, never held in memory.
pub fn bomb_png(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // depth 1, gray, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let row = vec![0u8; 1 + (side as usize).div_ceil(8)];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..side {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A JPEG cut off inside its headers (before the Huffman tables end):
/// the magic bytes pass, the decode cannot. (A JPEG cut inside its scan
/// data decodes, the missing rows grey, as browsers show it.)
pub fn truncated_jpeg() -> Vec<u8> {
    jpeg(400, 300)[..300].to_vec()
}

/// The first half of a JPEG, cut inside its scan data.
pub fn half_jpeg() -> Vec<u8> {
    let full = jpeg(400, 300);
    full[..full.len() / 2].to_vec()
}

/// An HTML page (to be named `.jpg`).
pub fn html() -> Vec<u8> {
    b"<!doctype html><html><body><script>alert(1)</script></body></html>".to_vec()
}

/// A valid progressive greyscale `side`x`side` JPEG of `scans` scans: a
/// DC scan, then the same first-AC-coefficient scan repeated, each coded
/// as runs of end-of-band. A few bytes per scan, yet a decoder without a
/// scan limit walks every block on each one (a CPU bomb).
pub fn progressive_jpeg_bomb(side: u16, scans: usize) -> Vec<u8> {
    let per_side = usize::from(side).div_ceil(8);
    let blocks = per_side * per_side;
    let mut out = vec![0xFF, 0xD8];
    let seg = |out: &mut Vec<u8>, marker: u8, body: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(body);
    };
    // Quantisation table 0, all ones.
    let mut dqt = vec![0];
    dqt.extend_from_slice(&[1; 64]);
    seg(&mut out, 0xDB, &dqt);
    // SOF2: 8 bits, one component, sampling 1x1, table 0.
    let mut sof = vec![8];
    sof.extend_from_slice(&side.to_be_bytes());
    sof.extend_from_slice(&side.to_be_bytes());
    sof.extend_from_slice(&[1, 1, 0x11, 0]);
    seg(&mut out, 0xC2, &sof);
    // DC table 0: one symbol (category 0), one 1-bit code.
    let mut dht = vec![0x00, 1];
    dht.extend_from_slice(&[0; 15]);
    dht.push(0);
    seg(&mut out, 0xC4, &dht);
    // AC table 0: the EOBn symbols n << 4, n = 0..14, 4-bit codes.
    let mut dht = vec![0x10, 0, 0, 0, 15];
    dht.extend_from_slice(&[0; 12]);
    dht.extend((0..15u8).map(|n| n << 4));
    seg(&mut out, 0xC4, &dht);
    let sos = |out: &mut Vec<u8>, ss: u8, se: u8| seg(out, 0xDA, &[1, 1, 0x00, ss, se, 0]);
    // The DC scan: one 0 bit per block.
    let mut bits = Bits::default();
    for _ in 0..blocks {
        bits.put(0, 1);
    }
    sos(&mut out, 0, 0);
    out.extend_from_slice(&bits.finish());
    // One AC scan: end-of-band runs covering every block.
    let mut bits = Bits::default();
    let mut left = blocks;
    while left > 0 {
        let run = left.min(32_767);
        let n = usize::BITS - 1 - run.leading_zeros();
        bits.put(n, 4);
        if n > 0 {
            bits.put(u32::try_from(run - (1 << n)).unwrap(), n);
        }
        left -= run;
    }
    let ac = bits.finish();
    for _ in 1..scans {
        sos(&mut out, 1, 1);
        out.extend_from_slice(&ac);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// An entropy-coded bit writer (with 0xFF byte stuffing).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u8,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1) as u8;
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc);
                if self.acc == 0xFF {
                    self.out.push(0);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n > 0 {
            self.put(1, 1);
        }
        self.out
    }
}
