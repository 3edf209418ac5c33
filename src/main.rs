//! The `eyrie` command: argument parsing and dispatch. Each subcommand lives in `src/cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "eyrie",
    version,
    about = "Network video recorder for small ARM boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record every enabled camera and serve the HTTP API.
    Run(cmd::run::Args),
    /// List the V4L2 capture devices and hardware encoders of this machine as JSON (what GET
    /// /api/system/devices answers); with --capture N, also stream N frames from each and report what came.
    Devices(cmd::devices::Args),
    /// Encode pictures from a raw (YUYV/NV12) camera through the first V4L2 memory-to-memory
    /// encoder found that makes CODEC from its format, stop the encoder (drain) and report
    /// the frames that came back as JSON: for checking an encoder against this code.
    M2mTrial(cmd::m2m_trial::Args),
    /// Apply the boot partition's settings (admin password, Wi-Fi, host name) and remove the
    /// secrets from the file; run by the appliance's init at every boot (docs/update.md).
    ApplyBootConfig(cmd::apply_boot_config::Args),
    /// Make update keys and sign root images with them (docs/update.md).
    Sign(cmd::sign::Args),
}

fn main() -> ExitCode {
    return_large_allocations();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Devices(args) => cmd::devices::main(args),
        Command::M2mTrial(args) => cmd::m2m_trial::main(args),
        Command::ApplyBootConfig(args) => cmd::apply_boot_config::main(args),
        Command::Sign(args) => cmd::sign::main(args),
    }
}

/// Makes glibc give every allocation of 1 MiB or more back to the kernel when it is freed.
/// By default glibc raises that threshold each time such a block is freed, so the 19 MiB an
/// argon2 password check borrows would stay in the heap for the life of the process: on a
/// 1 GiB board that is more than everything else Eyrie holds. Nothing on the recording path
/// allocates blocks this large, so this costs it nothing.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
