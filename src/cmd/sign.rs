//! `eyrie sign`: update keys and signed root images on the machine that builds them
//! (docs/update.md). A signing key is a PKCS#8 Ed25519 private key in PEM (keygen writes v2;
//! v1 keys from `openssl genpkey -algorithm ed25519` are read too); its public key is the 44-character base64 line an
//! appliance trusts. Signing appends the trailer of `system::signature` to the image in place.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{Context, SHA256};
use ring::signature::Ed25519KeyPair;

use eyrie::system::signature::{self, TRAILER, Trust};
use eyrie::system::update::superblock;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Make a new signing key: KEY (the private key, mode 0600; an existing file is never
    /// overwritten) and KEY.pub (its public key). Prints the public key.
    Keygen { key: PathBuf },
    /// Print the public key of the signing key KEY: the line an appliance trusts.
    PublicKey { key: PathBuf },
    /// Sign the root image IMAGE in place with KEY (a signature trailer is appended).
    Image {
        #[arg(long)]
        key: PathBuf,
        image: PathBuf,
    },
    /// Check IMAGE's signature against the public keys in KEYS (one a line, as the boot
    /// partition's update-keys.txt). Exit status 0 and the signer's key when it passes.
    Verify {
        #[arg(long)]
        keys: PathBuf,
        image: PathBuf,
    },
}

/// Longest key file read.
const MAX_KEY_FILE: u64 = 16 * 1024;
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

pub fn main(args: Args) -> ExitCode {
    let out = match args.what {
        What::Keygen { key } => keygen(&key),
        What::PublicKey { key } => load_key(&key).map(|k| signature::public_key(&k).to_string()),
        What::Image { key, image } => sign_image(&key, &image),
        What::Verify { keys, image } => verify(&keys, &image),
    };
    match out {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eyrie sign: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("the system's random generator failed"))?;
    let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("a key ring just made");
    let public = signature::public_key(&key).to_string();
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    let encoded = B64.encode(doc.as_ref());
    let mut pem = format!("{PEM_BEGIN}\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    let create = |p: &Path, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
            .with_context(|| format!("{}", p.display()))
    };
    // The public key first: if its file is in the way, no private key is left without it.
    create(&pub_path, 0o644)?.write_all(format!("{public}\n").as_bytes())?;
    let mut f = create(path, 0o600)?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    Ok(public)
}

fn load_key(path: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let mut text = String::new();
    File::open(path)
        .with_context(|| format!("{}", path.display()))?
        .take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .with_context(|| format!("{}", path.display()))?;
    let body = text
        .split_once(PEM_BEGIN)
        .and_then(|(_, rest)| rest.split_once(PEM_END))
        .map(|(b64, _)| b64.split_whitespace().collect::<String>())
        .with_context(|| {
            format!(
                "{}: not a PEM private key (\"{PEM_BEGIN}\")",
                path.display()
            )
        })?;
    let der = B64
        .decode(body)
        .with_context(|| format!("{}: bad base64", path.display()))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 private key: {e}", path.display()))
}

/// The SHA-256 of the first `n` bytes of `f`.
fn hash_prefix(f: &mut File, n: u64) -> anyhow::Result<[u8; 32]> {
    f.seek(SeekFrom::Start(0))?;
    let mut hash = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut src = (&mut *f).take(n);
    loop {
        let got = src.read(&mut buf)?;
        if got == 0 {
            break;
        }
        hash.update(&buf[..got]);
    }
    Ok(hash.finish().as_ref().try_into().expect("32 bytes"))
}

/// The last [`TRAILER`] bytes of `f` (all of it when shorter), and where they start.
fn tail(f: &mut File) -> anyhow::Result<(u64, Vec<u8>)> {
    let len = f.metadata()?.len();
    let at = len.saturating_sub(TRAILER as u64);
    f.seek(SeekFrom::Start(at))?;
    let mut tail = Vec::with_capacity(TRAILER);
    f.read_to_end(&mut tail)?;
    Ok((at, tail))
}

fn sign_image(key: &Path, image: &Path) -> anyhow::Result<String> {
    let key = load_key(key)?;
    let name = image.display();
    let mut f = File::options()
        .read(true)
        .append(true)
        .open(image)
        .with_context(|| format!("{name}"))?;
    let mut head = [0u8; 96];
    f.read_exact(&mut head)
        .with_context(|| format!("{name}: not a root image"))?;
    superblock(&head).with_context(|| format!("{name}: not a root image"))?;
    if signature::trailer(&tail(&mut f)?.1).is_some() {
        bail!("{name} is signed already");
    }
    // Unsigned: all of it is the image.
    let len = f.metadata()?.len();
    let sum = hash_prefix(&mut f, len)?;
    f.write_all(&signature::sign(&key, &sum))
        .with_context(|| format!("{name}"))?;
    f.sync_all()?;
    Ok(format!(
        "{name}: signed with key {}",
        signature::public_key(&key)
    ))
}

fn verify(keys: &Path, image: &Path) -> anyhow::Result<String> {
    let keys = signature::load_keys(keys).map_err(anyhow::Error::msg)?;
    let mut f = File::open(image).with_context(|| format!("{}", image.display()))?;
    let (at, tail) = tail(&mut f)?;
    let sum = hash_prefix(&mut f, at)?;
    let trust = Trust {
        keys,
        allow_unsigned: false,
        file: "the keys file".into(),
    };
    let key = trust
        .check(&sum, &tail)
        .with_context(|| format!("{}", image.display()))?
        .expect("no unsigned image passes");
    Ok(key.to_string())
}
