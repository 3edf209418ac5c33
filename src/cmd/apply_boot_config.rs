//! `eyrie apply-boot-config`: run by the appliance's init at every boot, before `eyrie run`
//! (the work is in `system::apply`).

use std::path::PathBuf;
use std::process::ExitCode;

use eyrie::system::apply::{self, ApplyError};

#[derive(clap::Args)]
pub struct Args {
    /// The boot partition's eyrie.toml.
    #[arg(long)]
    config: PathBuf,
    /// Eyrie's data directory (the account store).
    #[arg(long)]
    data: PathBuf,
    /// Where the Wi-Fi configuration, host name and last error go.
    #[arg(long)]
    state: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    match apply::run(&args.config, &args.data, &args.state) {
        Ok(done) => {
            tracing::info!(
                hostname = %done.hostname,
                wifi = done.wifi,
                admin_password_set = done.password_set,
                removed = ?done.removed,
                "boot configuration applied"
            );
            ExitCode::SUCCESS
        }
        Err(e @ ApplyError::BadFile(_)) => {
            eprintln!("eyrie: configuration error: {e}");
            super::usage_error()
        }
        Err(e) => {
            eprintln!("eyrie: apply-boot-config: {e}");
            ExitCode::FAILURE
        }
    }
}
