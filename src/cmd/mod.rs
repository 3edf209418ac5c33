//! The subcommands, one file each. Each has its clap `Args` and a `main` that returns the
//! process's exit status: 0 done, 1 failed, 2 a bad argument or configuration.

use std::process::ExitCode;

pub mod apply_boot_config;
pub mod devices;
pub mod m2m_trial;
pub mod run;
pub mod sign;

/// Exit status for a bad argument or configuration file.
fn usage_error() -> ExitCode {
    ExitCode::from(2)
}

/// Parses a `v4l2://` camera source given with `--source`.
fn v4l2_source(source: &str) -> anyhow::Result<eyrie::capture::v4l2::Request> {
    Ok(eyrie::capture::v4l2::parse(&url::Url::parse(source)?)?)
}
