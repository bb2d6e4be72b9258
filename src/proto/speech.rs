//! What the Google Speech and Riva conversions ([`super::google`], [`super::riva`]) share:
//! a BCP-47 language tag as our language or dialect adapter, speech-context phrases as
//! hotwords, the `model` field as a callscribe model or adapter, the audio encodings both
//! name, and the gRPC metadata a client adds for what neither API has a field for (call id,
//! channel roles, region, call start).
//!
//! Everything here reads the request; it decides nothing a [`crate::plan::CallPlan`] decides:
//! it only fills the same [`CallRequest`] the native API fills.

use crate::audio::codec::Encoding;
use crate::audio::Role;
use crate::engine::Hotword;
use crate::plan::CallRequest;
use crate::stream::{CallFormat, StreamError, MAX_CHANNELS, RATE_RANGE_HZ};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// gRPC metadata a client of the Google or Riva API may add: the call's id (else the server
/// makes one; Riva's request `id` also serves).
pub const CALL_ID_KEY: &str = "callscribe-call-id";
/// The channels' roles in channel order, comma-separated (`agent,customer`); the default is
/// the native API's (one channel: mixed; two: agent, customer).
pub const CHANNEL_ROLES_KEY: &str = "callscribe-channel-roles";
/// The caller's region or telephone number, for the dialect routing table.
pub const REGION_KEY: &str = "callscribe-region";
/// The call's wall-clock start, Unix milliseconds (forwarded with each final).
pub const CALL_STARTED_AT_KEY: &str = "callscribe-call-started-at-unix-ms";

/// What a request's gRPC metadata says of its call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallMetadata {
    pub call_id: Option<String>,
    pub roles: Option<Vec<Role>>,
    pub region: Option<String>,
    pub started_at_unix_ms: Option<i64>,
}

/// Reads [`CallMetadata`]; INVALID_ARGUMENT naming the key for a value that is not one.
pub fn call_metadata(m: &MetadataMap) -> Result<CallMetadata, Status> {
    let text = |key: &str| -> Result<Option<String>, Status> {
        match m.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
                .map_err(|_| Status::invalid_argument(format!("metadata {key} is not text"))),
        }
    };
    let roles = text(CHANNEL_ROLES_KEY)?
        .map(|v| {
            v.split(',')
                .map(|r| {
                    r.trim().parse::<Role>().map_err(|_| {
                        Status::invalid_argument(format!(
                            "metadata {CHANNEL_ROLES_KEY}: '{}' is not a role (agent, customer or mixed)",
                            r.trim()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let started_at_unix_ms = text(CALL_STARTED_AT_KEY)?
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Status::invalid_argument(format!(
                    "metadata {CALL_STARTED_AT_KEY}: '{v}' is not Unix milliseconds"
                ))
            })
        })
        .transpose()?;
    Ok(CallMetadata {
        call_id: text(CALL_ID_KEY)?,
        roles,
        region: text(REGION_KEY)?,
        started_at_unix_ms,
    })
}

/// The language and adapter a BCP-47 tag asks for. Chinese tags name the variety by their
/// language subtag (`cmn` Mandarin, `yue` Cantonese, `wuu` Wu, `nan` Min Nan) or, for `zh`,
/// by region (`zh-HK`, `zh-MO`: Cantonese, as Hong Kong and Macau telephony means it);
/// Mandarin is the language `zh`, which the deployment maps to its adapter (putonghua by
/// default), the other varieties are their adapters, decoded in their profile's language.
/// Any other tag is its primary language subtag (`en-US` → `en`, `fr-CA` → `fr`), which
/// the plan checks against the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageChoice {
    pub language: Option<String>,
    pub dialect: Option<String>,
}

pub fn language_tag(tag: &str) -> LanguageChoice {
    let lower = tag.trim().replace('_', "-").to_ascii_lowercase();
    let mut parts = lower.split('-').filter(|p| !p.is_empty());
    let primary = parts.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = parts.collect();
    let language = |l: &str| LanguageChoice {
        language: Some(l.to_owned()),
        dialect: None,
    };
    let adapter = |a: &str| LanguageChoice {
        language: None,
        dialect: Some(a.to_owned()),
    };
    match primary.as_str() {
        "" => LanguageChoice {
            language: None,
            dialect: None,
        },
        "yue" => adapter("cantonese"),
        "wuu" => adapter("wu"),
        "nan" => adapter("minnan"),
        "zh" if rest.iter().any(|p| *p == "hk" || *p == "mo") => adapter("cantonese"),
        "zh" | "cmn" => language("zh"),
        other => language(other),
    }
}

/// Which of ours a request's `model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Model,
    Adapter,
    /// Neither: one of Google's or Riva's own model names, or a mistake.
    Neither,
}

/// Google's model names (v1), which callscribe takes as "the deployment's default": a client
/// written for Google keeps working unchanged.
pub const GOOGLE_MODELS: &[&str] = &[
    "default",
    "latest_long",
    "latest_short",
    "command_and_search",
    "phone_call",
    "video",
    "telephony",
    "telephony_short",
    "medical_dictation",
    "medical_conversation",
];

/// Puts a request's `model` into `choices`: a callscribe model, else a dialect adapter id,
/// else (one of `ignored`, Google's or Riva's own names) nothing; anything else is
/// INVALID_ARGUMENT listing what `model` may be.
pub fn model_field(
    choices: &mut CallRequest,
    model: &str,
    classify: &dyn Fn(&str) -> Named,
    ignored: &dyn Fn(&str) -> bool,
) -> Result<(), Status> {
    let model = model.trim();
    if model.is_empty() || ignored(model) {
        return Ok(());
    }
    match classify(model) {
        Named::Model => choices.model = Some(model.to_owned()),
        Named::Adapter => choices.dialect = Some(model.to_owned()),
        Named::Neither => {
            return Err(Status::invalid_argument(format!(
                "model '{model}' is neither a model this server loaded nor a dialect adapter \
                 (ListModels and ListDialects of callscribe.v1.Transcription list them)"
            )))
        }
    }
    Ok(())
}

/// Speech-context phrases as hotwords. `boost` follows Google's scale (0 = unset, useful
/// 1–20): it is divided by 5 into our logit weight and clamped to 0.5–4, so boost 10 is our
/// default weight 2; a negative boost (Google's "avoid this phrase") has no counterpart and
/// is INVALID_ARGUMENT.
pub fn hotwords<'a>(
    contexts: impl IntoIterator<Item = (&'a [String], f32)>,
    field: &str,
) -> Result<Vec<Hotword>, Status> {
    let mut out = Vec::new();
    for (i, (phrases, boost)) in contexts.into_iter().enumerate() {
        if !boost.is_finite() || boost < 0.0 {
            return Err(Status::invalid_argument(format!(
                "{field}[{i}].boost {boost}: only a positive boost is supported"
            )));
        }
        let weight = if boost == 0.0 {
            2.0
        } else {
            (boost / 5.0).clamp(0.5, 4.0)
        };
        for p in phrases.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            if p.contains('\0') {
                return Err(Status::invalid_argument(format!(
                    "{field}[{i}].phrases: a phrase contains a NUL character"
                )));
            }
            out.push(Hotword {
                term: p.to_owned(),
                weight,
            });
        }
    }
    Ok(out)
}

/// A raw audio stream's format: encoding, rate and channel count as the request declares
/// them (`channels` 0 = 1), with the roles from the metadata or the native defaults.
pub fn raw_format(
    encoding: Encoding,
    sample_rate_hertz: i32,
    channels: i32,
    roles: Option<&[Role]>,
) -> Result<CallFormat, Status> {
    let rate = u32::try_from(sample_rate_hertz).unwrap_or(0);
    if !RATE_RANGE_HZ.contains(&rate) {
        return Err(Status::invalid_argument(format!(
            "sample_rate_hertz {sample_rate_hertz}: {}",
            StreamError::SampleRate(rate)
        )));
    }
    let n = usize::try_from(channels.max(1)).unwrap_or(1);
    if n > MAX_CHANNELS {
        return Err(Status::invalid_argument(format!(
            "audio_channel_count {channels}: at most {MAX_CHANNELS} channels (a call's two sides)"
        )));
    }
    let roles = match roles {
        Some(r) if r.len() != n => {
            return Err(Status::invalid_argument(format!(
                "metadata {CHANNEL_ROLES_KEY} names {} role(s) for {n} channel(s)",
                r.len()
            )))
        }
        Some(r) => r.to_vec(),
        None if n == 1 => vec![Role::Mixed],
        None => vec![Role::Agent, Role::Customer],
    };
    Ok(CallFormat {
        encoding,
        sample_rate_hz: rate,
        roles,
    })
}

/// A request's audio as it will be read.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSpec {
    /// Raw samples in this format.
    Raw(CallFormat),
    /// A recording container (WAV, FLAC, Ogg Opus, WebM…), decoded as a file; the roles
    /// from the metadata, if any.
    Container(Option<Vec<Role>>),
}

/// Whether `content` begins like a recording container (WAV, FLAC, Ogg, WebM/Matroska, MP4,
/// MP3) rather than raw samples: such content is decoded as a file, whatever its header says.
pub fn is_container(content: &[u8]) -> bool {
    let starts = |magic: &[u8]| content.starts_with(magic);
    starts(b"RIFF")
        || starts(b"fLaC")
        || starts(b"OggS")
        || starts(&[0x1A, 0x45, 0xDF, 0xA3])
        || starts(b"ID3")
        || content.get(4..8) == Some(b"ftyp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcp47_tags_name_our_languages_and_adapters() {
        let lang = |l: &str| LanguageChoice {
            language: Some(l.into()),
            dialect: None,
        };
        let adapter = |a: &str| LanguageChoice {
            language: None,
            dialect: Some(a.into()),
        };
        for (tag, want) in [
            ("en-US", lang("en")),
            ("en_GB", lang("en")),
            ("cmn-Hans-CN", lang("zh")),
            ("zh", lang("zh")),
            ("zh-CN", lang("zh")),
            ("zh-TW", lang("zh")),
            ("yue-Hant-HK", adapter("cantonese")),
            ("zh-HK", adapter("cantonese")),
            ("wuu-Hans-CN", adapter("wu")),
            ("nan-TW", adapter("minnan")),
            ("fr-CA", lang("fr")),
        ] {
            assert_eq!(language_tag(tag), want, "{tag}");
        }
        assert_eq!(language_tag("  ").language, None);
    }

    #[test]
    fn boost_scales_into_weights_and_a_negative_one_is_refused() {
        let phrases = vec!["Zentrix".to_owned(), " ".to_owned()];
        let h = hotwords([(phrases.as_slice(), 10.0)], "speech_contexts").unwrap();
        assert_eq!(h.len(), 1, "blank phrases are skipped");
        assert_eq!((h[0].term.as_str(), h[0].weight), ("Zentrix", 2.0));
        let h = hotwords([(phrases.as_slice(), 0.0)], "speech_contexts").unwrap();
        assert_eq!(h[0].weight, 2.0, "unset boost: the default weight");
        let h = hotwords([(phrases.as_slice(), 100.0)], "speech_contexts").unwrap();
        assert_eq!(h[0].weight, 4.0);
        let e = hotwords([(phrases.as_slice(), -5.0)], "speech_contexts").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("speech_contexts[0].boost"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn metadata_gives_call_id_roles_and_start() {
        let mut m = MetadataMap::new();
        m.insert(CALL_ID_KEY, "c-7".parse().unwrap());
        m.insert(CHANNEL_ROLES_KEY, "customer, agent".parse().unwrap());
        m.insert(CALL_STARTED_AT_KEY, "1700000000000".parse().unwrap());
        let md = call_metadata(&m).unwrap();
        assert_eq!(md.call_id.as_deref(), Some("c-7"));
        assert_eq!(md.roles, Some(vec![Role::Customer, Role::Agent]));
        assert_eq!(md.started_at_unix_ms, Some(1_700_000_000_000));
        m.insert(CHANNEL_ROLES_KEY, "boss".parse().unwrap());
        let e = call_metadata(&m).unwrap_err();
        assert!(e.message().contains("'boss'"), "{}", e.message());
    }

    #[test]
    fn formats_check_rate_and_channels_and_default_roles() {
        let f = raw_format(Encoding::Mulaw, 8000, 2, None).unwrap();
        assert_eq!(f.roles, vec![Role::Agent, Role::Customer]);
        assert_eq!(
            raw_format(Encoding::Linear16, 16000, 0, None)
                .unwrap()
                .roles,
            vec![Role::Mixed]
        );
        let e = raw_format(Encoding::Linear16, 0, 1, None).unwrap_err();
        assert!(e.message().contains("sample_rate_hertz"), "{}", e.message());
        let e = raw_format(Encoding::Linear16, 8000, 3, None).unwrap_err();
        assert!(
            e.message().contains("audio_channel_count"),
            "{}",
            e.message()
        );
    }
}
