//! Several utterances of one channel in one whisper window, and whisper's times mapped back.
//!
//! Whisper's encoder costs the same for 3 s of speech as for a full 30 s window, so a recording
//! decoded one utterance per window pays mostly for padding: the 10-minute test call ran 16
//! encoder passes for every 4 that whisper.cpp's CLI runs over the raw file. A [`Pack`] joins a
//! channel's consecutive utterances into windows of up to [`PACK_LIMIT`] samples, with up to a
//! second of the call's own background between them so that whisper hears a pause where one
//! was (with digital silence there instead, tiny.en moved utterances' last words across the
//! gap). faster-whisper does the same with Silero's speech chunks. [`Pack::split`] maps whisper's segments back onto the utterances they
//! came from, splitting a segment at the gap (by its words) when whisper ran two utterances
//! together. Live calls do not pack: each final waits for its own utterance only.

use super::{join_text, Decoded, Word};
use crate::audio::{CallTime, PIPELINE_RATE_HZ};

const RATE: usize = PIPELINE_RATE_HZ as usize;

/// Audio per pack: two seconds short of whisper's window, so a window's last words are not
/// cut off at the edge and whisper.cpp seldom needs a second pass for the tail.
pub const PACK_LIMIT: usize = 28 * RATE;
/// Pause between packed utterances. Whisper ends a segment at a pause this long.
pub const PACK_GAP: usize = RATE;

/// One utterance's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The caller's index of the utterance.
    pub index: usize,
    /// First sample in the pack.
    pub at: usize,
    pub len: usize,
}

impl Piece {
    fn at_ms(&self) -> u64 {
        CallTime(self.at as u64).as_ms()
    }

    fn end_ms(&self) -> u64 {
        CallTime((self.at + self.len) as u64).as_ms()
    }

    /// A pack time as a time in this utterance, clamped onto it.
    fn local(&self, t: u64) -> u64 {
        t.saturating_sub(self.at_ms())
            .min(self.end_ms() - self.at_ms())
    }

    /// A segment with pack times as one with times in this utterance.
    fn localise(&self, d: Decoded) -> Decoded {
        Decoded {
            start_ms: self.local(d.start_ms),
            end_ms: self.local(d.end_ms),
            words: d
                .words
                .into_iter()
                .map(|w| Word {
                    start_ms: self.local(w.start_ms),
                    end_ms: self.local(w.end_ms),
                    ..w
                })
                .collect(),
            ..d
        }
    }
}

/// Utterances joined into one window's audio.
#[derive(Debug, Clone, Default)]
pub struct Pack {
    pub samples: Vec<f32>,
    pub pieces: Vec<Piece>,
}

/// One utterance to pack: the caller's index, its samples, and the audio that follows it on
/// the channel up to the next utterance (only the first `gap` samples of it are used).
pub type Entry<'a> = (usize, &'a [f32], &'a [f32]);

/// Packs one channel's utterances, in the order given, greedily into windows of at most
/// `limit` samples. Between two utterances goes up to `gap` samples of the audio that really
/// followed the first one (zeros where the channel ends), so that whisper hears a pause in the
/// call's own background, not a cut to digital silence. An utterance longer than `limit`
/// gets a pack of its own; `limit = 0` gives every utterance its own.
pub fn pack<'a>(
    utterances: impl IntoIterator<Item = Entry<'a>>,
    limit: usize,
    gap: usize,
) -> Vec<Pack> {
    let mut packs: Vec<Pack> = Vec::new();
    let mut cur = Pack::default();
    let mut pending_gap: &[f32] = &[];
    for (index, samples, after) in utterances {
        if !cur.pieces.is_empty() && cur.samples.len() + gap + samples.len() > limit {
            packs.push(std::mem::take(&mut cur));
        }
        if !cur.pieces.is_empty() {
            let take = pending_gap.len().min(gap);
            cur.samples.extend_from_slice(&pending_gap[..take]);
            cur.samples.resize(cur.samples.len() + gap - take, 0.0);
        }
        cur.pieces.push(Piece {
            index,
            at: cur.samples.len(),
            len: samples.len(),
        });
        cur.samples.extend_from_slice(samples);
        pending_gap = after;
    }
    if !cur.pieces.is_empty() {
        packs.push(cur);
    }
    packs
}

impl Pack {
    /// Piece `i`'s own audio, to decode it alone.
    pub fn piece_samples(&self, i: usize) -> &[f32] {
        let p = &self.pieces[i];
        &self.samples[p.at..p.at + p.len]
    }

    /// The piece a pack time belongs to: the one that holds it, else the nearest across a gap.
    fn piece_at(&self, t: u64) -> usize {
        let mut best = 0;
        let mut best_dist = u64::MAX;
        for (i, p) in self.pieces.iter().enumerate() {
            let dist = if t < p.at_ms() {
                p.at_ms() - t
            } else {
                t.saturating_sub(p.end_ms())
            };
            if dist < best_dist {
                best = i;
                best_dist = dist;
            }
        }
        best
    }

    /// Whisper's segments of this pack as (piece, segment with times in that utterance).
    /// Words go to the utterance that holds their time, with the cuts between utterances moved
    /// to a nearby sentence end across whisper's segment borders (see
    /// [`snap_cuts_to_sentence_ends`]); a segment whose words fall in more than one utterance
    /// is split between them, and a fragment left without punctuation joins the next segment
    /// of its utterance. Without words a segment goes whole to the utterance that holds its
    /// midpoint.
    pub fn split(&self, decoded: Vec<Decoded>) -> Vec<(usize, Decoded)> {
        let mut owner: Vec<usize> = Vec::new();
        let mut ends = Vec::new();
        for d in &decoded {
            for w in &d.words {
                owner.push(self.piece_at((w.start_ms + w.end_ms) / 2));
                ends.push(ends_sentence(&w.text));
            }
        }
        snap_cuts_to_sentence_ends(&ends, &mut owner);
        let mut out: Vec<(usize, Decoded)> = Vec::new();
        let mut at = 0;
        for d in decoded {
            if d.words.is_empty() {
                let i = self.piece_at((d.start_ms + d.end_ms) / 2);
                out.push((i, self.pieces[i].localise(d)));
                continue;
            }
            let own = &owner[at..at + d.words.len()];
            at += d.words.len();
            let parts = if own.iter().all(|&o| o == own[0]) {
                vec![(own[0], d)]
            } else {
                split_by_owner(d, own)
            };
            for (i, part) in parts {
                let part = self.pieces[i].localise(part);
                match out.last_mut() {
                    Some((last, prev)) if *last == i && is_fragment(&prev.text) => {
                        join_into(prev, part)
                    }
                    _ => out.push((i, part)),
                }
            }
        }
        out
    }
}

fn ends_sentence(text: &str) -> bool {
    text.trim_end()
        .ends_with(['。', '？', '！', '.', '?', '!', '…'])
}

/// Text that stops without any punctuation: whisper broke a segment mid-sentence.
fn is_fragment(text: &str) -> bool {
    text.trim_end()
        .chars()
        .last()
        .is_some_and(char::is_alphanumeric)
}

fn join_into(prev: &mut Decoded, next: Decoded) {
    let (a, b) = (prev.words.len() as f32, next.words.len() as f32);
    if a + b > 0.0 {
        prev.confidence = (prev.confidence * a + next.confidence * b) / (a + b);
    }
    prev.text = join_text(&prev.text, &next.text);
    prev.start_ms = prev.start_ms.min(next.start_ms);
    prev.end_ms = prev.end_ms.max(next.end_ms);
    prev.no_speech_prob = prev.no_speech_prob.min(next.no_speech_prob);
    prev.words.extend(next.words);
}

/// Words a cut between utterances may move to reach a sentence end.
const SNAP_WORDS: usize = 2;

/// Moves each cut between two utterances' words to a sentence end within [`SNAP_WORDS`]
/// words, nearest first. whisper.cpp's word times drift by a few hundred milliseconds, so a
/// cut by times alone can fall a word off the pause, worst in Chinese where every character is
/// a word: "很抱 | 歉，我帮您查一下" instead of "很抱歉，我帮您查一下". Whisper ends what one
/// utterance said with 。？！.?! far more reliably than it times its last token.
fn snap_cuts_to_sentence_ends(ends: &[bool], owner: &mut [usize]) {
    if owner.is_empty() {
        return;
    }
    // A cut at `c` puts words[..c] before it; runs are [cuts[k], cuts[k + 1]).
    let mut cuts: Vec<usize> = (1..owner.len())
        .filter(|&i| owner[i] != owner[i - 1])
        .collect();
    let runs: Vec<usize> = std::iter::once(owner[0])
        .chain(cuts.iter().map(|&c| owner[c]))
        .collect();
    for k in 0..cuts.len() {
        let b = cuts[k];
        let lo = if k == 0 { 1 } else { cuts[k - 1] + 1 };
        // Never past a neighbouring cut or the last word: an utterance keeps at least one
        // word ("right." of "Side right." when whisper dropped "Side" must stay its own).
        let hi = cuts.get(k + 1).map_or(owner.len(), |&n| n) - 1;
        let best = (0..=SNAP_WORDS)
            .flat_map(|d| [b.checked_sub(d), Some(b + d)])
            .flatten()
            .find(|&c| c >= lo.max(1) && c <= hi && ends[c - 1]);
        if let Some(c) = best {
            cuts[k] = c;
        }
    }
    let mut run = 0;
    for (i, o) in owner.iter_mut().enumerate() {
        while run < cuts.len() && i >= cuts[run] {
            run += 1;
        }
        *o = runs[run];
    }
}

/// Cuts a segment into runs of words with the same owner. The text is cut where the run's
/// first word begins in it, so spacing and punctuation stay whisper's.
fn split_by_owner(d: Decoded, owner: &[usize]) -> Vec<(usize, Decoded)> {
    // Byte offset in `d.text` where each word starts, found in order.
    let mut starts = Vec::with_capacity(d.words.len());
    let mut cursor = 0;
    for w in &d.words {
        let at = d.text[cursor..].find(w.text.as_str()).map(|i| cursor + i);
        starts.push(at);
        if let Some(at) = at {
            cursor = at + w.text.len();
        }
    }
    let mut runs: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (i, &o) in owner.iter().enumerate() {
        match runs.last_mut() {
            Some((last, r)) if *last == o => r.end = i + 1,
            _ => runs.push((o, i..i + 1)),
        }
    }
    let text_found = starts.iter().all(Option::is_some);
    let mut out = Vec::with_capacity(runs.len());
    for (n, (o, r)) in runs.iter().enumerate() {
        let words = d.words[r.clone()].to_vec();
        let text = if text_found {
            let from = if n == 0 { 0 } else { starts[r.start].unwrap() };
            let to = runs
                .get(n + 1)
                .map_or(d.text.len(), |(_, next)| starts[next.start].unwrap());
            d.text[from..to].trim().to_owned()
        } else {
            join_words(&words)
        };
        let confidence = words.iter().map(|w| w.probability).sum::<f32>() / words.len() as f32;
        let start_ms = if n == 0 {
            d.start_ms
        } else {
            words[0].start_ms
        };
        let end_ms = if n + 1 == runs.len() {
            d.end_ms
        } else {
            words[words.len() - 1].end_ms
        };
        out.push((
            *o,
            Decoded {
                text,
                start_ms,
                end_ms: end_ms.max(start_ms),
                confidence,
                no_speech_prob: d.no_speech_prob,
                words,
            },
        ));
    }
    out
}

/// Words back into text when they cannot be found in the segment's (lossy) text, spaced as
/// the rest of the project joins text.
fn join_words(words: &[Word]) -> String {
    let mut texts = words.iter().map(|w| w.text.clone());
    let first = texts.next().unwrap_or_default();
    texts.fold(first, |text, w| join_text(&text, &w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start_ms: u64, end_ms: u64) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            probability: 0.8,
        }
    }

    fn seg(text: &str, start_ms: u64, end_ms: u64, words: Vec<Word>) -> Decoded {
        Decoded {
            text: text.into(),
            start_ms,
            end_ms,
            confidence: 0.8,
            no_speech_prob: 0.1,
            words,
        }
    }

    fn texts(out: &[(usize, Decoded)]) -> Vec<(usize, &str)> {
        out.iter().map(|(i, d)| (*i, d.text.as_str())).collect()
    }

    /// Three utterances of 2 s, 3 s and 23 s with 1 s gaps and a 28 s limit: the first two
    /// share a pack, the third does not fit beside them.
    fn three() -> (Vec<Vec<f32>>, Vec<Pack>) {
        let utts = vec![vec![0.5f32; 32_000], vec![0.25; 48_000], vec![0.1; 368_000]];
        // What follows the first utterance is 0.5 s of background, then the channel ends.
        let after = [vec![0.01f32; 8_000], vec![], vec![]];
        let packs = pack(
            utts.iter()
                .zip(&after)
                .enumerate()
                .map(|(i, (u, a))| (i, u.as_slice(), a.as_slice())),
            PACK_LIMIT,
            PACK_GAP,
        );
        (utts, packs)
    }

    #[test]
    fn consecutive_utterances_share_a_window_with_silence_between() {
        let (_, packs) = three();
        assert_eq!(packs.len(), 2);
        let p = &packs[0];
        assert_eq!(
            p.pieces,
            [
                Piece {
                    index: 0,
                    at: 0,
                    len: 32_000
                },
                Piece {
                    index: 1,
                    at: 48_000,
                    len: 48_000
                }
            ]
        );
        assert_eq!(p.samples.len(), 96_000);
        assert_eq!(p.samples[31_999], 0.5);
        // The gap: the background that followed, then zeros for the rest of the second.
        assert!(p.samples[32_000..40_000].iter().all(|&s| s == 0.01));
        assert!(p.samples[40_000..48_000].iter().all(|&s| s == 0.0));
        assert_eq!(p.samples[48_000], 0.25);
        assert_eq!(packs[1].pieces[0].index, 2);
        assert_eq!(packs[1].samples.len(), 368_000);
    }

    #[test]
    fn zero_limit_gives_each_utterance_its_own_window() {
        let utts = [vec![0.0f32; 10], vec![0.0; 20]];
        let packs = pack(
            utts.iter()
                .enumerate()
                .map(|(i, u)| (i, u.as_slice(), &[][..])),
            0,
            5,
        );
        assert_eq!(packs.len(), 2);
        assert_eq!(packs[1].samples.len(), 20);
        assert_eq!(packs[1].pieces[0].at, 0);
    }

    #[test]
    fn segments_map_back_to_their_utterance() {
        let (_, packs) = three();
        // Pack 0: utterance 0 is 0–2000 ms, utterance 1 is 3000–6000 ms.
        let out = packs[0].split(vec![
            seg("Hello there.", 100, 1900, vec![]),
            seg(
                "How can I help?",
                3200,
                5600,
                vec![word("How", 3200, 3500), word("help?", 5000, 5600)],
            ),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].0, out[0].1.start_ms, out[0].1.end_ms),
            (0, 100, 1900)
        );
        assert_eq!(
            (out[1].0, out[1].1.start_ms, out[1].1.end_ms),
            (1, 200, 2600)
        );
        assert_eq!(out[1].1.words[1].start_ms, 2000);
    }

    #[test]
    fn a_segment_over_the_gap_is_split_by_its_words() {
        let (_, packs) = three();
        let out = packs[0].split(vec![seg(
            " Hello there. How can I help?",
            0,
            5600,
            vec![
                word("Hello", 100, 600),
                word("there.", 600, 1800),
                word("How", 3200, 3500),
                word("can", 3500, 3700),
                word("I", 3700, 3800),
                word("help?", 3800, 5600),
            ],
        )]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 0);
        assert_eq!(out[0].1.text, "Hello there.");
        assert_eq!((out[0].1.start_ms, out[0].1.end_ms), (0, 1800));
        assert_eq!(out[1].0, 1);
        assert_eq!(out[1].1.text, "How can I help?");
        assert_eq!((out[1].1.start_ms, out[1].1.end_ms), (200, 2600));
        assert_eq!(out[1].1.words.len(), 4);
    }

    #[test]
    fn chinese_text_splits_without_spaces() {
        let (_, packs) = three();
        let out = packs[0].split(vec![seg(
            "您好请问",
            0,
            4000,
            vec![
                word("您", 0, 500),
                word("好", 500, 1000),
                word("请", 3100, 3500),
                word("问", 3500, 4000),
            ],
        )]);
        assert_eq!(texts(&out), [(0, "您好"), (1, "请问")]);
        assert_eq!(join_words(&out[1].1.words), "请问");
    }

    #[test]
    fn a_cut_that_drifted_off_the_pause_moves_to_the_sentence_end() {
        let (_, packs) = three();
        // whisper.cpp timed 很 and 抱 before the pause, though they begin the next utterance.
        let out = packs[0].split(vec![seg(
            "您好。很抱歉，我",
            0,
            3600,
            vec![
                word("您", 0, 500),
                word("好。", 500, 1700),
                word("很", 1800, 1900),
                word("抱", 1900, 2400),
                word("歉，", 3100, 3300),
                word("我", 3300, 3600),
            ],
        )]);
        assert_eq!(texts(&out), [(0, "您好。"), (1, "很抱歉，我")]);
        assert_eq!(out[1].1.words[0].text, "很");

        // The last character timed after the pause, its full stop with it: it goes back.
        let out = packs[0].split(vec![seg(
            "扣了两次。谢谢",
            0,
            3800,
            vec![
                word("扣", 0, 500),
                word("了", 500, 800),
                word("两", 800, 1500),
                word("次。", 3050, 3400),
                word("谢", 3400, 3600),
                word("谢", 3600, 3800),
            ],
        )]);
        assert_eq!(texts(&out), [(0, "扣了两次。"), (1, "谢谢")]);

        // But never the only word of an utterance: whisper dropped "Side" of "Side right.".
        let out = packs[0].split(vec![seg(
            "side, left, right.",
            0,
            3400,
            vec![
                word("side,", 500, 1000),
                word("left,", 1000, 1800),
                word("right.", 3050, 3400),
            ],
        )]);
        assert_eq!(texts(&out), [(0, "side, left,"), (1, "right.")]);

        // whisper.cpp ended a segment inside the word, in the pause: the cut still moves to
        // the sentence end, and the fragment joins the rest of its utterance.
        let out = packs[0].split(vec![
            seg(
                "您好。很抱",
                0,
                2400,
                vec![
                    word("您", 0, 500),
                    word("好。", 500, 1700),
                    word("很", 1800, 1900),
                    word("抱", 1900, 2400),
                ],
            ),
            seg(
                "歉，我",
                3100,
                3600,
                vec![word("歉，", 3100, 3300), word("我", 3300, 3600)],
            ),
        ]);
        assert_eq!(texts(&out), [(0, "您好。"), (1, "很抱歉，我")]);
        assert_eq!((out[1].1.start_ms, out[1].1.end_ms), (0, 600));

        // No sentence end near the cut: the times decide.
        let out = packs[0].split(vec![seg(
            "好的 谢谢 你好",
            0,
            4000,
            vec![
                word("好的", 0, 900),
                word("谢谢", 900, 1800),
                word("你好", 3100, 4000),
            ],
        )]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].1.text, "你好");
    }

    #[test]
    fn times_in_the_gap_go_to_the_nearer_utterance_and_clamp_onto_it() {
        let (_, packs) = three();
        // 2300 ms is 300 ms after utterance 0 ends and 700 ms before utterance 1 starts.
        let out = packs[0].split(vec![seg("Bye.", 1500, 2300, vec![])]);
        assert_eq!(
            (out[0].0, out[0].1.start_ms, out[0].1.end_ms),
            (0, 1500, 2000)
        );
        let out = packs[0].split(vec![seg("Yes.", 2800, 3400, vec![])]);
        assert_eq!((out[0].0, out[0].1.start_ms, out[0].1.end_ms), (1, 0, 400));
    }
}
