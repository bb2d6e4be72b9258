//! The sample types every stage shares.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whisper's input rate; the resampler brings every source here so that one sample counter
/// is the clock of the whole pipeline.
pub const PIPELINE_RATE_HZ: u32 = 16_000;

/// A point on the call timeline, as a count of samples at [`PIPELINE_RATE_HZ`] since the start
/// of the call (per channel). Integer samples, not float seconds, so that a 30-minute call
/// accumulates no rounding drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CallTime(pub u64);

impl CallTime {
    pub const ZERO: CallTime = CallTime(0);

    pub fn from_samples(samples: u64) -> Self {
        CallTime(samples)
    }

    pub fn from_ms(ms: u64) -> Self {
        CallTime(ms * u64::from(PIPELINE_RATE_HZ) / 1000)
    }

    pub fn samples(self) -> u64 {
        self.0
    }

    /// Milliseconds, rounded to nearest: the unit on the wire and in every output format.
    pub fn as_ms(self) -> u64 {
        (self.0 * 1000 + u64::from(PIPELINE_RATE_HZ) / 2) / u64::from(PIPELINE_RATE_HZ)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / f64::from(PIPELINE_RATE_HZ)
    }

    pub fn saturating_sub(self, samples: u64) -> Self {
        CallTime(self.0.saturating_sub(samples))
    }
}

impl std::ops::Add<u64> for CallTime {
    type Output = CallTime;
    fn add(self, samples: u64) -> CallTime {
        CallTime(self.0 + samples)
    }
}

/// Makes samples from outside safe for every stage after: NaN and ±∞ become silence (0.0)
/// and finite samples are clipped to [-1, 1], as a converter to integer PCM would. Returns
/// how many were not finite.
///
/// Float WAVs, decoders fed damaged packets and sound cards can all deliver them. Left in,
/// one NaN panics the resampler (rubato's FFT) or turns whisper's log-mel spectrogram into
/// NaN, which decodes as a line of "!!!!" — so every float source passes through here, at the
/// edge: the recording pipeline and a live call's sample entry.
pub fn sanitise(samples: &mut [f32]) -> usize {
    let mut non_finite = 0;
    for s in samples {
        if s.is_finite() {
            *s = s.clamp(-1.0, 1.0);
        } else {
            *s = 0.0;
            non_finite += 1;
        }
    }
    non_finite
}

/// Who speaks on a channel. Call recordings put the agent and the customer on separate
/// channels; a mono recording or a mix-down holds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Customer,
    /// Both parties on one channel (mono recording or mix-down).
    Mixed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
            Role::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agent" => Ok(Role::Agent),
            "customer" | "caller" => Ok(Role::Customer),
            "mixed" | "mono" => Ok(Role::Mixed),
            other => Err(format!(
                "unknown role '{other}' (expected agent, customer or mixed)"
            )),
        }
    }
}

/// How the channels of a recording map to parties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMode {
    /// Each channel transcribed on its own, with these roles in channel order.
    Separate(Vec<Role>),
    /// Channels averaged into one before transcription.
    Mix,
}

impl Default for ChannelMode {
    fn default() -> Self {
        ChannelMode::Separate(vec![Role::Agent, Role::Customer])
    }
}

impl std::str::FromStr for ChannelMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("mix") {
            return Ok(ChannelMode::Mix);
        }
        let roles = s
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Role>, _>>()?;
        if roles.is_empty() || roles.len() > 2 {
            return Err(format!(
                "'{s}': give one or two roles (e.g. agent,customer) or 'mix'"
            ));
        }
        Ok(ChannelMode::Separate(roles))
    }
}

impl std::fmt::Display for ChannelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelMode::Mix => f.write_str("mix"),
            ChannelMode::Separate(roles) => {
                let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl Serialize for ChannelMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ChannelMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One channel of a call at the pipeline rate, labelled with its speaker role.
#[derive(Debug, Clone)]
pub struct ChannelAudio {
    /// Index of the channel in the source (0-based); a mix-down is channel 0.
    pub channel: u32,
    pub role: Role,
    pub samples: Vec<f32>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_finite_samples_become_silence_and_loud_ones_are_clipped() {
        let mut s = [
            0.5,
            f32::NAN,
            -2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.5,
            -0.25,
        ];
        assert_eq!(super::sanitise(&mut s), 3);
        assert_eq!(s, [0.5, 0.0, -1.0, 0.0, 0.0, 1.0, -0.25]);
    }

    use super::*;

    #[test]
    fn channel_modes_parse() {
        assert_eq!("mix".parse::<ChannelMode>(), Ok(ChannelMode::Mix));
        assert_eq!(
            "customer,agent".parse::<ChannelMode>(),
            Ok(ChannelMode::Separate(vec![Role::Customer, Role::Agent]))
        );
        assert!("agent,customer,agent".parse::<ChannelMode>().is_err());
        assert!("robot".parse::<ChannelMode>().is_err());
    }

    #[test]
    fn call_time_converts_samples_to_rounded_ms() {
        assert_eq!(CallTime(16_000).as_ms(), 1000);
        assert_eq!(CallTime(8).as_ms(), 1); // 0.5 ms rounds up
        assert_eq!(CallTime(7).as_ms(), 0);
        assert_eq!(CallTime::from_ms(1500), CallTime(24_000));
    }

    #[test]
    fn call_time_does_not_drift_over_thirty_minutes() {
        // 30 minutes of 20 ms chunks added one by one land exactly on 1_800_000 ms.
        let mut t = CallTime::ZERO;
        for _ in 0..(30 * 60 * 50) {
            t = t + 320;
        }
        assert_eq!(t.as_ms(), 1_800_000);
    }

    #[test]
    fn role_parses_known_names_and_rejects_others() {
        assert_eq!("Agent".parse::<Role>(), Ok(Role::Agent));
        assert_eq!("caller".parse::<Role>(), Ok(Role::Customer));
        assert!("boss".parse::<Role>().is_err());
    }
}
