//! `eyrie devices`: the V4L2 capture devices and M2M encoders of this machine as JSON, and with
//! `--capture N` what N frames from each (or from one `--source`) looked like.

use std::process::ExitCode;

use eyrie::capture::v4l2;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    capture: Option<u32>,
    /// With --capture: only this camera source (v4l2:///dev/videoN?width=&height=&fps=&format=),
    /// and no listing.
    #[arg(long, requires = "capture")]
    source: Option<String>,
}

pub fn main(Args { capture, source }: Args) -> ExitCode {
    let devices = v4l2::list::list();
    let requests = match &source {
        Some(s) => match super::v4l2_source(s) {
            Ok(r) => vec![r],
            Err(e) => {
                eprintln!("eyrie: --source: {e}");
                return super::usage_error();
            }
        },
        None => devices
            .iter()
            .map(|d| v4l2::Request::any(&d.path))
            .collect(),
    };
    let trials: Vec<_> = capture
        .map(|n| requests.iter().map(|r| v4l2::trial::trial(r, n)).collect())
        .unwrap_or_default();
    // With --source, just that source's trial: the listing is for finding one.
    let out = match source {
        Some(_) => serde_json::json!({ "captures": trials }),
        None => serde_json::json!({
            "devices": devices,
            "encoders": v4l2::list::m2m_encoders(),
            "captures": trials,
        }),
    };
    println!("{out:#}");
    ExitCode::SUCCESS
}
