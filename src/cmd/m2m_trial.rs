//! `eyrie m2m-trial`: the command-line glue of the M2M encoder trial (the trial itself is in
//! `capture`): parse the source and codec, run it, print what came back as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The camera (v4l2:///dev/videoN?width=&height=&fps=&format=).
    #[arg(long)]
    source: String,
    /// What the encoder makes, as a four-character code (H264; FWHT for the kernel's
    /// virtual codec vicodec).
    #[arg(long, default_value = "H264")]
    codec: String,
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pictures: u32,
    /// Write each coded frame to this directory as frame-NNNN.<codec>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Take all pictures first, then offer them at once (the encoder's bounded queue drops
    /// and counts what it cannot take).
    #[arg(long)]
    burst: bool,
}

pub fn main(args: Args) -> ExitCode {
    let req = match super::v4l2_source(&args.source) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eyrie: --source: {e}");
            return super::usage_error();
        }
    };
    let Some(coded) = fourcc(&args.codec) else {
        eprintln!(
            "eyrie: --codec is a four-character code like H264, not '{}'",
            args.codec
        );
        return super::usage_error();
    };
    let t = eyrie::capture::v4l2::trial::encode_trial(
        &req,
        coded,
        args.pictures,
        args.burst,
        args.out.as_deref(),
    );
    println!("{:#}", serde_json::json!(t));
    if t.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `codec` as a V4L2 four-character code: four ASCII letters or digits, upper-cased.
fn fourcc(codec: &str) -> Option<[u8; 4]> {
    <[u8; 4]>::try_from(codec.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|c| c.iter().all(u8::is_ascii_alphanumeric))
}
