//! Whether an MPEG audio file ends inside a frame: a copy or a recording cut short.
//!
//! symphonia treats a frame the file does not hold as the stream's end (MPEG streams have no
//! stated end), and an MP3 without a Xing/Info header states no length to compare with, so the
//! frames are walked here by their 4-byte headers (ISO/IEC 11172-3 and 13818-3 frame lengths).
//! Written out because no maintained crate exposes frame positions; it reads headers only.

use std::io::{self, Read, Seek, SeekFrom};

/// Kilobits per second by bitrate index: `[MPEG-1, MPEG-2/2.5][layer I, II, III]`.
const BITRATES_KBPS: [[[u16; 15]; 3]; 2] = [
    [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ],
    [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ],
];

/// Sample rates by index, MPEG-1; MPEG-2 halves them, MPEG-2.5 quarters them.
const RATES_HZ: [u32; 3] = [44_100, 48_000, 32_000];

/// The length in bytes of the frame whose header is `h`; `None` for anything that is not a
/// frame header this walk can size (free-format bitrate, reserved values, not a sync word).
fn frame_len(h: [u8; 4]) -> Option<u64> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1
    let layer = match (h[1] >> 1) & 3 {
        3 => 0, // layer I
        2 => 1, // layer II
        1 => 2, // layer III
        _ => return None,
    };
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let mpeg1 = version == 3;
    let bitrate = u64::from(BITRATES_KBPS[usize::from(!mpeg1)][layer][bitrate_index]) * 1000;
    let rate = u64::from(
        RATES_HZ[rate_index]
            >> match version {
                3 => 0,
                2 => 1,
                _ => 2,
            },
    );
    let padding = u64::from((h[2] >> 1) & 1);
    Some(match layer {
        0 => (12 * bitrate / rate + padding) * 4,
        2 if !mpeg1 => 72 * bitrate / rate + padding,
        _ => 144 * bitrate / rate + padding,
    })
}

/// The byte offset of a last frame that the file ends inside, or `None` when the frames end
/// where the file does (or at trailing tags, or at bytes this walk cannot judge).
pub fn cut_frame<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
    let len = r.seek(SeekFrom::End(0))?;
    let mut pos = 0u64;
    r.seek(SeekFrom::Start(0))?;
    // ID3v2 tags before the first frame: "ID3", version, flags, then a 28-bit size.
    loop {
        let mut h = [0u8; 10];
        if len - pos < 10 {
            return Ok(None);
        }
        r.read_exact(&mut h)?;
        if &h[..3] != b"ID3" {
            break;
        }
        let size = h[6..10]
            .iter()
            .fold(0u64, |v, &b| v << 7 | u64::from(b & 0x7F));
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        pos += 10 + size + footer;
        r.seek(SeekFrom::Start(pos))?;
    }
    loop {
        if len.saturating_sub(pos) < 4 {
            return Ok(None);
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 4];
        r.read_exact(&mut h)?;
        // Trailing ID3v1 ("TAG"), APEv2 ("APET") and Lyrics3 ("LYRI") tags end the frames.
        if &h[..3] == b"TAG" || &h == b"APET" || &h == b"LYRI" {
            return Ok(None);
        }
        let Some(n) = frame_len(h) else {
            return Ok(None);
        };
        if pos + n > len {
            return Ok(Some(pos));
        }
        pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn frame_lengths_follow_the_standard() {
        // MPEG-1 layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes; padded: 418.
        assert_eq!(frame_len([0xFF, 0xFB, 0x90, 0x00]), Some(417));
        assert_eq!(frame_len([0xFF, 0xFB, 0x92, 0x00]), Some(418));
        // MPEG-2.5 layer III, 24 kb/s, 8 kHz (what sox writes for a telephone call): 216.
        assert_eq!(frame_len([0xFF, 0xE3, 0x38, 0x64]), Some(216));
        // Free format and text are not sized.
        assert_eq!(frame_len([0xFF, 0xFB, 0x00, 0x00]), None);
        assert_eq!(frame_len(*b"call"), None);
    }

    #[test]
    fn a_file_cut_inside_a_frame_is_found_and_a_whole_one_is_not() {
        let frame = |pad: u8| {
            let mut f = vec![0xFF, 0xE3, 0x38 | pad << 1, 0x64];
            f.resize(216 + usize::from(pad), 0x55);
            f
        };
        let mut whole = b"ID3\x03\x00\x00\x00\x00\x00\x05hello".to_vec();
        for i in 0..5 {
            whole.extend(frame(i % 2));
        }
        let frames_end = whole.len();
        whole.extend_from_slice(b"TAG");
        whole.resize(frames_end + 128, b' ');
        assert_eq!(cut_frame(&mut Cursor::new(&whole)).unwrap(), None);
        let cut = &whole[..frames_end - 100];
        let last = 15 + 216 * 2 + 217 * 2;
        assert_eq!(cut_frame(&mut Cursor::new(cut)).unwrap(), Some(last as u64));
        assert_eq!(
            cut_frame(&mut Cursor::new(&whole[..frames_end])).unwrap(),
            None
        );
    }
}
