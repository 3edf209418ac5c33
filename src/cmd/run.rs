//! `eyrie run`: records every enabled camera and serves the API until SIGINT or SIGTERM.
//!
//! [`run`] is a list of steps, each a function below, in this order:
//!
//! 1. [`open_storage`]: the data directory and the index, reconciled with the files on disk
//!    before any camera writes.
//! 2. [`apply_admin_settings`]: what the admin changed in the web UI wins over eyrie.toml.
//! 3. [`open_accounts`]: before the cameras, so a first start hashes its password (argon2)
//!    before anything else competes for the CPU.
//! 4. [`start_recorder`]: retention, the event log, the recorder, the demo camera, every stored camera.
//! 5. [`start_federation`]: the peers' poller, the keys this node issued, its TLS identity.
//! 6. [`bind`] the HTTP port, then [`start_discovery`]: pairing and mDNS, so a node that cannot
//!    serve never advertises.
//! 7. [`serve`]: HTTP and HTTPS, the running slot confirmed, the first-start setup link.
//! 8. [`shutdown`] at a signal: mDNS goodbye, servers stopped, open segments closed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use eyrie::accounts::Accounts;
use eyrie::config::{AdminSettings, Config, Overrides};
use eyrie::discovery::events::Hub;
use eyrie::discovery::link::Linker;
use eyrie::events::EventLog;
use eyrie::federation::keys::KeyStore;
use eyrie::federation::peers::{Peers, PollConfig};
use eyrie::media::segmenter::{SegmentTarget, SegmenterConfig};
use eyrie::recorder::Recorder;
use eyrie::storage::retention::Retention;
use eyrie::storage::{CameraRecord, Index, Layout, Transport};
use eyrie::system::System;
use eyrie::{http, media};

/// The demo camera's clip, kept in the repository and built into the binary.
const DEMO_CLIP: &[u8] = include_bytes!("../../assets/demo.mp4");

/// How often retention runs besides when a segment closes.
const RETENTION_PASS: Duration = Duration::from_secs(30);

/// How long a media token is valid.
const MEDIA_TOKEN_LIFE: Duration = Duration::from_secs(600);

#[derive(clap::Args)]
pub struct Args {
    /// Data directory (database and recordings). Default: ./eyrie-data
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address to serve HTTP on. Default: 0.0.0.0:8080
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Add a built-in demo camera (a looped clip), to see Eyrie work with no camera.
    #[arg(long)]
    demo: bool,
}

pub fn main(args: Args) -> ExitCode {
    let overrides = Overrides {
        listen: args.listen,
        data: args.data,
        demo: args.demo,
    };
    let cfg = match Config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eyrie: configuration error: {e}");
            return super::usage_error();
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

async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let storage = open_storage(&cfg.storage.data).await?;
    apply_admin_settings(&storage.index, &mut cfg)?;
    let (accounts, setup_link) = open_accounts(&cfg, &storage.index).await?;
    let recording = start_recorder(&cfg, &storage).await?;
    let federation = start_federation(&cfg, &storage)?;
    let listener = bind(cfg.http.listen).await?;
    let system = System::load(cfg.system.clone());
    let discovery = start_discovery(&cfg, &storage.index, &federation, &system);
    let state = Arc::new(http::AppState {
        index: storage.index.clone(),
        layout: storage.layout,
        recorder: recording.recorder.clone(),
        retention: recording.retention,
        keys: federation.keys.clone(),
        peers: federation.peers,
        tokens: Arc::new(eyrie::federation::tokens::MediaTokens::new(
            &storage.index.node_secret("media-tokens")?,
            MEDIA_TOKEN_LIFE,
            federation.keys,
        )),
        accounts,
        session_cookie: http::cookie::cookie_name(&storage.index.node_id()),
        label: std::sync::RwLock::new(cfg.node.label.clone()),
        cors_origins: cfg.http.cors_origins.clone(),
        tls_fingerprint: federation.tls.as_ref().map(|t| t.fingerprint.clone()),
        started,
        cpu: Mutex::new(None),
        discovery: discovery.mdns.clone(),
        link: discovery.link,
        notices: discovery.notices,
        events: recording.events,
        onvif: cfg.onvif.clone(),
        system: system.clone(),
    });
    let stop = CancellationToken::new();
    let servers = serve(
        &cfg,
        state,
        listener,
        federation.tls,
        &system,
        setup_link,
        &stop,
    )
    .await?;
    shutdown_signal().await;
    shutdown(discovery.mdns, stop, servers, &recording.recorder).await;
    Ok(())
}

/// The data directory and its index.
struct Storage {
    index: Arc<Index>,
    layout: Layout,
}

/// Creates the data directory, opens the index and makes it agree with the files on disk
/// (docs/storage.md, "Startup reconciliation").
async fn open_storage(data: &Path) -> anyhow::Result<Storage> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("creating data directory {}", data.display()))?;
    let layout = Layout::new(data.canonicalize()?);
    let index = Arc::new(
        Index::open(&layout.db_path())
            .with_context(|| format!("opening {}", layout.db_path().display()))?,
    );
    let report = {
        let (index, layout) = (index.clone(), layout.clone());
        tokio::task::spawn_blocking(move || media::recover::reconcile(&index, &layout)).await??
    };
    tracing::info!(?report, "index reconciled with the disk");
    Ok(Storage { index, layout })
}

/// Runs with the settings the admin stored from the web UI, where there are any: they win over
/// eyrie.toml. Unreadable ones are ignored with a warning.
fn apply_admin_settings(index: &Index, cfg: &mut Config) -> anyhow::Result<()> {
    if let Some(raw) = index.setting(AdminSettings::KEY)? {
        match serde_json::from_slice::<AdminSettings>(&raw) {
            Ok(s) if s.validate().is_ok() => s.apply(cfg),
            _ => tracing::warn!("ignoring unreadable stored settings; eyrie.toml applies"),
        }
    }
    Ok(())
}

/// The account store; at first start also the admin account from `auth.admin_password`, or
/// else the secret of a one-time setup link (returned).
async fn open_accounts(
    cfg: &Config,
    index: &Arc<Index>,
) -> anyhow::Result<(Arc<Accounts>, Option<String>)> {
    let accounts = Accounts::load(
        index.clone(),
        eyrie::accounts::SessionConfig {
            idle: cfg.auth.session_idle,
            max: cfg.auth.max_sessions,
            ..Default::default()
        },
    )?;
    let setup_link = {
        let (accounts, user, pw) = (
            accounts.clone(),
            cfg.auth.admin_user.clone(),
            cfg.auth.admin_password.clone(),
        );
        tokio::task::spawn_blocking(move || {
            accounts.first_start(pw.as_deref().map(|p| (user.as_str(), p)))
        })
        .await??
    };
    Ok((accounts, setup_link))
}

/// What records: the cameras and the retention that keeps their disk from filling.
struct Recording {
    retention: Arc<Retention>,
    events: EventLog,
    recorder: Arc<Recorder>,
}

/// Starts retention and the recorder, adds the demo camera with `--demo`, and starts every
/// stored camera.
async fn start_recorder(cfg: &Config, storage: &Storage) -> anyhow::Result<Recording> {
    let Storage { index, layout } = storage;
    let retention = Retention::new(index.clone(), layout.clone(), cfg.storage.retention())?;
    tokio::spawn(retention.clone().run(RETENTION_PASS));
    // After reconciliation (events a crash left open end at the last recorded time) and
    // before any camera starts.
    let events = EventLog::open(index.clone(), layout.clone(), retention.clone())?;
    let recorder = Recorder::new(
        index.clone(),
        layout.clone(),
        SegmenterConfig {
            segment_target: SegmentTarget::new(cfg.recording.segment_target),
            fragment_max: Duration::from_secs(1),
            sync_interval: cfg.recording.sync_interval,
        },
        retention.clone(),
        Arc::new(events.clone()),
    );
    // Cameras without a PullPoint push their events to this node's HTTPS port if it has one.
    let (scheme, reach) = match cfg.http.tls_listen {
        Some(a) => ("https", a),
        None => ("http", cfg.http.listen),
    };
    recorder
        .onvif_events()
        .take_pushes(eyrie::onvif::push::Endpoint {
            base: cfg.onvif.notify_base_url.clone(),
            scheme,
            port: reach.port(),
        });
    if cfg.demo {
        add_demo_camera(index, layout)?;
    }
    for cam in index.cameras()? {
        recorder.apply(&cam).await;
    }
    Ok(Recording {
        retention,
        events,
        recorder,
    })
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
        event_retention_days: existing.as_ref().and_then(|c| c.event_retention_days),
        pre_roll_s: existing
            .as_ref()
            .map_or(eyrie::storage::DEFAULT_ROLL_S, |c| c.pre_roll_s),
        post_roll_s: existing
            .as_ref()
            .map_or(eyrie::storage::DEFAULT_ROLL_S, |c| c.post_roll_s),
        motion: existing
            .as_ref()
            .map(|c| c.motion.clone())
            .unwrap_or_default(),
        created_ms: existing
            .as_ref()
            .map_or(jiff::Timestamp::now().as_millisecond(), |c| c.created_ms),
        onvif: None,
    };
    index.put_camera(&cam, false)?;
    Ok(())
}

/// This node among its peers: whom it polls, whom it issued keys to, and how it proves itself
/// over HTTPS.
struct Federation {
    peers: Arc<Peers>,
    keys: Arc<KeyStore>,
    tls: Option<Tls>,
}

/// Where and with what certificate HTTPS is served (`http.tls_listen`).
struct Tls {
    addr: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    fingerprint: String,
}

/// Starts polling the remote nodes, loads the issued keys, and with `http.tls_listen` loads
/// (or makes, at first start) this node's certificate.
fn start_federation(cfg: &Config, storage: &Storage) -> anyhow::Result<Federation> {
    let peers = Peers::new(
        storage.index.clone(),
        PollConfig {
            interval: cfg.federation.poll_interval,
            timeout: cfg.federation.peer_timeout,
        },
    );
    tokio::spawn(peers.clone().run());
    let tls = match cfg.http.tls_listen {
        Some(addr) => {
            let identity = eyrie::base::tls::Identity::load_or_create(
                &storage.layout.root().join("tls"),
                &eyrie::config::host_name(),
            )?;
            Some(Tls {
                addr,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(identity.server_config()?)),
                fingerprint: identity.fingerprint,
            })
        }
        None => None,
    };
    let keys = KeyStore::load(storage.index.clone())?;
    Ok(Federation { peers, keys, tls })
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

/// Pairing and mDNS.
struct Discovery {
    notices: Arc<Hub>,
    link: Arc<Linker>,
    /// `None` with `discovery.enabled = false`, or when mDNS could not start.
    mdns: Option<Arc<eyrie::discovery::Discovery>>,
}

/// Starts pairing and, with `discovery.enabled`, mDNS. Peers reach this node on its HTTPS port
/// when it serves HTTPS. Recording matters more than being found: when mDNS cannot start, the
/// node runs on without it.
fn start_discovery(
    cfg: &Config,
    index: &Arc<Index>,
    federation: &Federation,
    system: &System,
) -> Discovery {
    let notices = Arc::new(Hub::default());
    let (reach, fingerprint) = match &federation.tls {
        Some(t) => (t.addr, Some(t.fingerprint.clone())),
        None => (cfg.http.listen, None),
    };
    let link = Linker::new(
        federation.keys.clone(),
        index.clone(),
        federation.peers.clone(),
        notices.clone(),
        eyrie::discovery::link::Me {
            node_id: index.node_id().to_string(),
            label: cfg.node.label.clone(),
            https: fingerprint.is_some(),
            port: reach.port(),
            tls_fingerprint: fingerprint.clone(),
        },
        cfg.federation.peer_timeout,
        cfg.discovery.pairing_ttl,
    );
    let mdns = if cfg.discovery.enabled {
        let opts = eyrie::discovery::Options {
            // On the appliance Eyrie is the only mDNS responder: it answers the host name the
            // init set (eyrie-xxxx), so the box is reachable as eyrie-xxxx.local.
            host: system.boot.as_ref().and_then(|_| {
                eyrie::discovery::host_label(&rustix::system::uname().nodename().to_string_lossy())
            }),
            interfaces: cfg.discovery.interfaces.clone(),
            listen: reach,
            advert: eyrie::discovery::txt::Advert {
                node_id: index.node_id().to_string(),
                label: cfg.node.label.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                tls_fingerprint: fingerprint,
            },
        };
        match eyrie::discovery::Discovery::start(opts, notices.clone()) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!("mDNS discovery could not start, running without it: {e:#}");
                None
            }
        }
    } else {
        None
    };
    Discovery {
        notices,
        link,
        mdns,
    }
}

/// Serves the API on `listener` (and on HTTPS with `tls`) until `stop`; confirms the running
/// slot (an update under trial has come up) and prints the setup link at first start.
async fn serve(
    cfg: &Config,
    state: Arc<http::AppState>,
    listener: TcpListener,
    tls: Option<Tls>,
    system: &Arc<System>,
    setup_link: Option<String>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let node = state.index.node_id();
    let app = http::router(state);
    let mut servers = vec![tokio::spawn(http::serve(
        listener,
        app.clone(),
        stop.clone(),
        None,
    ))];
    tracing::info!(
        %node,
        "Eyrie {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        cfg.http.listen
    );
    // Serving HTTP with storage open: an update under trial has come up.
    {
        let system = system.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || system.confirm()).await? {
            tracing::error!("could not confirm the running slot: {e}");
        }
    }
    if let Some(secret) = setup_link {
        // The secret is in the fragment, which browsers never send to a server or its logs.
        let listen = cfg.http.listen;
        let host = if listen.ip().is_unspecified() {
            format!("{}:{}", eyrie::config::host_name(), listen.port())
        } else {
            listen.to_string()
        };
        tracing::warn!(
            "no account yet: create the admin account at http://{host}/#/setup/{secret} \
             (works once, until the next start; or set auth.admin_password, docs/config.md)"
        );
    }
    if let Some(Tls {
        addr,
        acceptor,
        fingerprint,
    }) = tls
    {
        let l = bind(addr).await?;
        tracing::info!(%fingerprint, "serving HTTPS on https://{addr}");
        servers.push(tokio::spawn(http::serve(
            l,
            app.layer(axum::Extension(http::cookie::Https)),
            stop.clone(),
            Some(acceptor),
        )));
    }
    Ok(servers)
}

/// Stops in the order that loses least: mDNS goodbye first (peers drop this node from their
/// lists at once), then the servers, then the cameras, whose open segments are closed.
async fn shutdown(
    mdns: Option<Arc<eyrie::discovery::Discovery>>,
    stop: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    recorder: &Recorder,
) {
    if let Some(d) = mdns {
        d.stop().await;
    }
    stop.cancel();
    for s in servers {
        let _ = s.await;
    }
    tracing::info!("shutting down: closing open segments");
    recorder.stop_all().await;
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
