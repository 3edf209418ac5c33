//! The `eyrie` command: `eyrie run` records every enabled camera and serves the API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use eyrie::config::{Config, Overrides};
use eyrie::media::segmenter::SegmenterConfig;
use eyrie::storage::retention::{Retention, RetentionConfig};
use eyrie::storage::{CameraRecord, Index, Layout, Transport};
use eyrie::{http, media, recorder};

/// The demo camera's clip, kept in the repository and built into the binary.
const DEMO_CLIP: &[u8] = include_bytes!("../assets/demo.mp4");

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
    Run {
        /// Data directory (database and recordings). Default: ./eyrie-data
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to serve HTTP on. Default: 0.0.0.0:8080
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Configuration file (TOML); see docs/config.md.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Add a built-in demo camera (a looped clip), to see Eyrie work with no camera.
        #[arg(long)]
        demo: bool,
    },
    /// List the V4L2 capture devices and hardware encoders of this machine as JSON (what GET
    /// /api/system/devices answers); with --capture N, also stream N frames from each and report what came.
    Devices {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        capture: Option<u32>,
        /// With --capture: only this camera source (v4l2:///dev/videoN?width=&height=&fps=&format=),
        /// and no listing.
        #[arg(long, requires = "capture")]
        source: Option<String>,
    },
    /// Encode pictures from a raw (YUYV/NV12) camera through the first V4L2 memory-to-memory
    /// encoder found that makes CODEC from its format, stop the encoder (drain) and report
    /// the frames that came back as JSON: for checking an encoder against this code.
    M2mTrial {
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
    },
    /// Apply the boot partition's settings (admin password, Wi-Fi, host name) and remove the
    /// secrets from the file; run by the appliance's init at every boot (docs/update.md).
    ApplyBootConfig {
        /// The boot partition's eyrie.toml.
        #[arg(long)]
        config: PathBuf,
        /// Eyrie's data directory (the account store).
        #[arg(long)]
        data: PathBuf,
        /// Where the Wi-Fi configuration, host name and last error go.
        #[arg(long)]
        state: PathBuf,
    },
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
        Command::Devices { capture, source } => {
            use eyrie::capture::v4l2;
            let devices = eyrie::capture::v4l2::list::list();
            let requests = match &source {
                Some(s) => match url::Url::parse(s)
                    .map_err(|e| e.to_string())
                    .and_then(|u| v4l2::parse(&u).map_err(|e| e.0))
                {
                    Ok(r) => vec![r],
                    Err(e) => {
                        eprintln!("eyrie: --source: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => devices
                    .iter()
                    .map(|d| v4l2::Request::any(&d.path))
                    .collect(),
            };
            let trials: Vec<_> = capture
                .map(|n| {
                    requests
                        .iter()
                        .map(|r| eyrie::capture::v4l2::trial::trial(r, n))
                        .collect()
                })
                .unwrap_or_default();
            // With --source, just that source's trial: the listing is for finding one.
            let out = match source {
                Some(_) => serde_json::json!({ "captures": trials }),
                None => serde_json::json!({
                    "devices": devices,
                    "encoders": eyrie::capture::v4l2::list::m2m_encoders(),
                    "captures": trials,
                }),
            };
            println!("{out:#}");
            ExitCode::SUCCESS
        }
        Command::M2mTrial {
            source,
            codec,
            pictures,
            out,
            burst,
        } => {
            use eyrie::capture::v4l2;
            let req = match url::Url::parse(&source)
                .map_err(|e| e.to_string())
                .and_then(|u| v4l2::parse(&u).map_err(|e| e.0))
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("eyrie: --source: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(coded) = <[u8; 4]>::try_from(codec.to_ascii_uppercase().as_bytes())
                .ok()
                .filter(|c| c.iter().all(u8::is_ascii_alphanumeric))
            else {
                eprintln!("eyrie: --codec is a four-character code like H264, not '{codec}'");
                return ExitCode::from(2);
            };
            let t = eyrie::capture::v4l2::trial::encode_trial(
                &req,
                coded,
                pictures,
                burst,
                out.as_deref(),
            );
            println!("{:#}", serde_json::json!(t));
            if t.error.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::ApplyBootConfig {
            config,
            data,
            state,
        } => {
            use eyrie::system::apply::{ApplyError, run};
            match run(&config, &data, &state) {
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
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("eyrie: apply-boot-config: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            data,
            listen,
            config,
            demo,
        } => {
            let cfg = match Config::load(config.as_deref(), &Overrides { listen, data, demo }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("eyrie: configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("eyrie: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
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

async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.data)
        .with_context(|| format!("creating data directory {}", cfg.data.display()))?;
    let layout = Layout::new(cfg.data.canonicalize()?);
    let index = Arc::new(
        Index::open(&layout.db_path())
            .with_context(|| format!("opening {}", layout.db_path().display()))?,
    );
    let report = {
        let (index, layout) = (index.clone(), layout.clone());
        tokio::task::spawn_blocking(move || media::recover::reconcile(&index, &layout)).await??
    };
    tracing::info!(?report, "index reconciled with the disk");
    // What the admin changed in the web UI wins over eyrie.toml.
    if let Some(raw) = index.setting(eyrie::config::AdminSettings::KEY)? {
        match serde_json::from_slice::<eyrie::config::AdminSettings>(&raw) {
            Ok(s) if s.validate().is_ok() => s.apply(&mut cfg),
            _ => tracing::warn!("ignoring unreadable stored settings; eyrie.toml applies"),
        }
    }
    // Accounts before cameras: the first start hashes a password (argon2) before anything else
    // competes for the CPU.
    let accounts = http::account::Accounts::load(
        index.clone(),
        http::session::SessionConfig {
            idle: cfg.session_idle,
            max: cfg.max_sessions,
            ..Default::default()
        },
    )?;
    let setup_link = {
        let (accounts, user, pw) = (
            accounts.clone(),
            cfg.admin_user.clone(),
            cfg.admin_password.clone(),
        );
        tokio::task::spawn_blocking(move || {
            accounts.first_start(pw.as_deref().map(|p| (user.as_str(), p)))
        })
        .await??
    };
    let retention = Retention::new(
        index.clone(),
        layout.clone(),
        RetentionConfig {
            budget: cfg.budget,
            min_free: cfg.min_free,
        },
    )?;
    tokio::spawn(retention.clone().run(Duration::from_secs(30)));
    let recorder = recorder::Recorder::new(
        index.clone(),
        layout.clone(),
        SegmenterConfig {
            segment_target: eyrie::media::segmenter::SegmentTarget::new(cfg.segment_target),
            fragment_max: Duration::from_secs(1),
            sync_interval: cfg.sync_interval,
        },
        retention.clone(),
    );
    if cfg.demo {
        add_demo_camera(&index, &layout)?;
    }
    for cam in index.cameras()? {
        recorder.apply(&cam).await;
    }
    let peers = eyrie::federation::peers::Peers::new(
        index.clone(),
        eyrie::federation::peers::PollConfig {
            interval: cfg.poll_interval,
            timeout: cfg.peer_timeout,
        },
    );
    tokio::spawn(peers.clone().run());
    let tls = match cfg.tls_listen {
        Some(addr) => {
            let identity = eyrie::federation::tls::Identity::load_or_create(
                &layout.root().join("tls"),
                &eyrie::config::host_name(),
            )?;
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(identity.server_config()?));
            Some((addr, acceptor, identity.fingerprint))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    // Discovery and pairing: peers reach this node on its HTTPS port when it serves HTTPS.
    // The HTTP port is bound first, so a node that cannot serve never advertises.
    let events = Arc::new(eyrie::discovery::events::Hub::default());
    let reach = match &tls {
        Some((addr, _, fingerprint)) => (*addr, Some(fingerprint.clone())),
        None => (cfg.listen, None),
    };
    let keys = eyrie::federation::keys::KeyStore::load(index.clone())?;
    let link = eyrie::discovery::link::Linker::new(
        keys.clone(),
        index.clone(),
        peers.clone(),
        events.clone(),
        eyrie::discovery::link::Me {
            node_id: index.node_id().to_string(),
            label: cfg.label.clone(),
            https: reach.1.is_some(),
            port: reach.0.port(),
            tls_fingerprint: reach.1.clone(),
        },
        cfg.peer_timeout,
        cfg.pairing_ttl,
    );
    let system = eyrie::system::System::load(cfg.system.clone());
    let discovery = if cfg.discovery {
        let opts = eyrie::discovery::Options {
            // On the appliance Eyrie is the only mDNS responder: it answers the host name the
            // init set (eyrie-xxxx), so the box is reachable as eyrie-xxxx.local.
            host: system.boot.as_ref().and_then(|_| {
                eyrie::discovery::host_label(&rustix::system::uname().nodename().to_string_lossy())
            }),
            interfaces: cfg.discovery_interfaces.clone(),
            listen: reach.0,
            advert: eyrie::discovery::txt::Advert {
                node_id: index.node_id().to_string(),
                label: cfg.label.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                tls_fingerprint: reach.1,
            },
        };
        match eyrie::discovery::Discovery::start(opts, events.clone()) {
            Ok(d) => Some(d),
            // Recording matters more than being found: run on without mDNS.
            Err(e) => {
                tracing::error!("mDNS discovery could not start, running without it: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let state = Arc::new(http::AppState {
        index: index.clone(),
        layout,
        recorder: recorder.clone(),
        retention,
        keys,
        peers: peers.clone(),
        tokens: Arc::new(eyrie::federation::tokens::MediaTokens::new(
            &index.node_secret("media-tokens")?,
            Duration::from_secs(600),
        )),
        accounts,
        session_cookie: http::session::cookie_name(&index.node_id()),
        label: std::sync::RwLock::new(cfg.label.clone()),
        cors_origins: cfg.cors_origins.clone(),
        tls_fingerprint: tls.as_ref().map(|t| t.2.clone()),
        started,
        cpu: Mutex::new(None),
        discovery: discovery.clone(),
        link,
        events,
        onvif: cfg.onvif,
        system: system.clone(),
    });
    let app = http::router(state);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut servers = vec![tokio::spawn(http::serve(
        listener,
        app.clone(),
        stop.clone(),
        None,
    ))];
    tracing::info!(
        node = %index.node_id(),
        "Eyrie {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        cfg.listen
    );
    // Serving HTTP with storage open: an update under trial has come up.
    {
        let system = system.clone();
        match tokio::task::spawn_blocking(move || system.confirm()).await? {
            Ok(_) => {}
            Err(e) => tracing::error!("could not confirm the running slot: {e}"),
        }
    }
    if let Some(secret) = setup_link {
        // The secret is in the fragment, which browsers never send to a server or its logs.
        let host = if cfg.listen.ip().is_unspecified() {
            format!("{}:{}", eyrie::config::host_name(), cfg.listen.port())
        } else {
            cfg.listen.to_string()
        };
        tracing::warn!(
            "no account yet: create the admin account at http://{host}/#/setup/{secret} \
             (works once, until the next start; or set auth.admin_password, docs/config.md)"
        );
    }
    if let Some((addr, acceptor, fingerprint)) = tls {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(%fingerprint, "serving HTTPS on https://{addr}");
        servers.push(tokio::spawn(http::serve(
            l,
            app.layer(axum::Extension(http::session::Https)),
            stop.clone(),
            Some(acceptor),
        )));
    }
    shutdown_signal().await;
    if let Some(d) = discovery {
        // Goodbye first, so peers drop this node from their lists at once.
        d.stop().await;
    }
    stop.cancel();
    for s in servers {
        let _ = s.await;
    }
    tracing::info!("shutting down: closing open segments");
    recorder.stop_all().await;
    Ok(())
}

/// Writes the built-in clip to the data directory and adds (or re-enables) the `demo` camera.
fn add_demo_camera(index: &Index, layout: &Layout) -> anyhow::Result<()> {
    let path = layout.demo_clip_path();
    if std::fs::read(&path).ok().as_deref() != Some(DEMO_CLIP) {
        std::fs::write(&path, DEMO_CLIP).context("writing the demo clip")?;
    }
    let source = url::Url::from_file_path(&path)
        .map_err(|_| anyhow::anyhow!("demo clip path is not absolute"))?
        .to_string();
    let existing = index.camera("demo")?;
    let cam = CameraRecord {
        id: "demo".into(),
        name: existing
            .as_ref()
            .map_or("Demo camera".into(), |c| c.name.clone()),
        source,
        username: None,
        password: None,
        transport: Transport::Tcp,
        enabled: true,
        retention_days: existing.as_ref().and_then(|c| c.retention_days),
        created_ms: existing
            .as_ref()
            .map_or(jiff::Timestamp::now().as_millisecond(), |c| c.created_ms),
    };
    index.put_camera(&cam, false)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
