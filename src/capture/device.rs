//! Input devices as cpal sees them, named by their host id (ALSA: the PCM name, e.g.
//! `default`, `hw:CARD=0,DEV=0`, or one defined in an asoundrc) so that a name given on the
//! command line is the name ALSA would open.

use super::CaptureError;
use cpal::traits::{DeviceTrait, HostTrait};
use cpal::SampleFormat;

/// What a device offers for capture.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    pub description: String,
    /// Channels, rate and format the device picks when asked for nothing in particular.
    pub default: Option<(u16, u32, SampleFormat)>,
    /// Each supported combination: channels, rate range in Hz, sample format.
    pub supported: Vec<(u16, u32, u32, SampleFormat)>,
}

fn device_name(d: &cpal::Device) -> Option<String> {
    d.id().ok().map(|id| id.id().to_owned())
}

fn inputs() -> Result<Vec<cpal::Device>, CaptureError> {
    let host = cpal::default_host();
    let devices = host
        .input_devices()
        .map_err(|e| CaptureError::Enumerate(e.to_string()))?;
    Ok(devices.collect())
}

/// Every input device with its configurations; a device that cannot be opened just now is
/// listed with none.
pub fn list_inputs() -> Result<Vec<DeviceInfo>, CaptureError> {
    Ok(inputs()?
        .iter()
        .filter_map(|d| {
            let name = device_name(d)?;
            let description = d
                .description()
                .map(|desc| desc.name().to_owned())
                .unwrap_or_default();
            let default = d
                .default_input_config()
                .ok()
                .map(|c| (c.channels(), c.sample_rate(), c.sample_format()));
            let supported = d
                .supported_input_configs()
                .map(|cs| {
                    cs.map(|c| {
                        (
                            c.channels(),
                            c.min_sample_rate(),
                            c.max_sample_rate(),
                            c.sample_format(),
                        )
                    })
                    .collect()
                })
                .unwrap_or_default();
            Some(DeviceInfo {
                name,
                description,
                default,
                supported,
            })
        })
        .collect())
}

/// The input device called `name` (its host id or its description), or the host's default
/// input device.
pub fn find_input(name: Option<&str>) -> Result<(String, cpal::Device), CaptureError> {
    let devices = inputs()?;
    let available = || -> Vec<String> { devices.iter().filter_map(device_name).collect() };
    let Some(wanted) = name else {
        let d =
            cpal::default_host()
                .default_input_device()
                .ok_or_else(|| CaptureError::NoDefault {
                    available: available(),
                })?;
        let name = device_name(&d).unwrap_or_else(|| "default".into());
        return Ok((name, d));
    };
    for d in &devices {
        let id = device_name(d);
        let desc = d.description().ok().map(|desc| desc.name().to_owned());
        if id.as_deref() == Some(wanted) || desc.as_deref() == Some(wanted) {
            return Ok((wanted.to_owned(), d.clone()));
        }
    }
    Err(CaptureError::UnknownDevice {
        name: wanted.to_owned(),
        available: available(),
    })
}
