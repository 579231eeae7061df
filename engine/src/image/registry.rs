//! Pulling images from, and pushing them to, registries that speak the OCI
//! distribution API (Docker Hub, a `docker-registry` on loopback, …), through
//! `oci-client`: anonymous and basic credentials, Docker Hub's bearer-token
//! flow, image indexes resolved to this host's platform, Docker schema 2 and
//! OCI manifests, gzip and zstd layers.
//!
//! Layers are fetched concurrently, each streamed to a file in the store
//! with its digest computed on the way (never whole in memory) and, at the
//! same time, unpacked by a thread of its own into a temporary directory;
//! blob and layer are moved into place once the digest and the diff ID are
//! the expected ones. A blob already in the store is not fetched again, so
//! an interrupted pull resumes where it stopped.

use std::fs::File;
use std::path::PathBuf;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::config::Descriptor;
use super::digest::Digest;
use super::reference::Reference;
use super::store::{ImageRecord, ImageStore};
use crate::error::{Error, Result};

/// Where Docker keeps credentials, and so does `berth login`.
fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker/config.json"),
    }
}

/// The key of a registry in `config.json`'s `auths` (Docker Hub's is
/// historical).
fn auth_key(domain: &str) -> String {
    if domain == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        domain.to_string()
    }
}

/// The credentials `berth login` (or `docker login`) stored for `domain`.
pub fn credentials(domain: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(docker_config_path()).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auth = doc["auths"][auth_key(domain)]["auth"].as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let (user, pass) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, pass))
}

/// Stores credentials for `domain` in Docker's `config.json` format,
/// keeping whatever else the file holds.
pub fn store_credentials(domain: &str, user: &str, password: &str) -> Result<PathBuf> {
    use base64::Engine as _;
    let path = docker_config_path();
    let mut doc: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if !doc["auths"].is_object() {
        doc["auths"] = serde_json::json!({});
    }
    doc["auths"][auth_key(domain)] = serde_json::json!({
        "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Archive(e.to_string()))?;
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Checks credentials with the registry before they are stored, as `docker
/// login` does: a token service (Docker Hub) checks them when it issues a
/// token; a registry with basic authentication when it is asked for a
/// manifest (one that need not exist: a refusal is 401, a miss 404).
pub fn check_credentials(domain: &str, user: &str, password: &str) -> Result<()> {
    use oci_client::errors::OciDistributionError as E;
    let client = client_for(domain);
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    let probe: oci_client::Reference = format!("{domain}/berth/login-check:latest")
        .parse()
        .map_err(|e| Error::Conflict(format!("registry {domain}: {e}")))?;
    let refused = || Error::Registry {
        registry: domain.to_string(),
        msg: "unauthorized: incorrect username or password".into(),
    };
    runtime()?.block_on(async {
        match client.auth(&probe, &auth, RegistryOperation::Pull).await {
            Ok(Some(_token)) => return Ok(()),
            Ok(None) => {}
            Err(E::AuthenticationFailure(_) | E::UnauthorizedError { .. }) => return Err(refused()),
            Err(e) => return Err(registry_error(domain)(e)),
        }
        match client.fetch_manifest_digest(&probe, &auth).await {
            Err(E::AuthenticationFailure(_) | E::UnauthorizedError { .. }) => Err(refused()),
            Err(E::RequestError(e)) => Err(registry_error(domain)(E::RequestError(e))),
            _ => Ok(()),
        }
    })
}

/// Whether `domain` may be spoken to in plain HTTP: registries on loopback,
/// and those named in `BERTH_INSECURE_REGISTRIES` (comma-separated), as
/// Docker's `insecure-registries`.
fn insecure(domain: &str) -> bool {
    let host = domain
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(domain, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || std::env::var("BERTH_INSECURE_REGISTRIES")
            .is_ok_and(|v| v.split(',').any(|r| r.trim() == domain))
}

fn client_for(domain: &str) -> Client {
    // One process-wide TLS provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if insecure(domain) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(std::time::Duration::from_secs(15)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..ClientConfig::default()
    })
}

fn auth_for(domain: &str) -> RegistryAuth {
    match credentials(domain) {
        Some((user, pass)) => RegistryAuth::Basic(user, pass),
        None => RegistryAuth::Anonymous,
    }
}

fn remote(r: &Reference) -> Result<oci_client::Reference> {
    let text = match &r.digest {
        Some(d) => format!("{}/{}@{d}", r.domain, r.path),
        None => format!(
            "{}/{}:{}",
            r.domain,
            r.path,
            r.tag.as_deref().unwrap_or("latest")
        ),
    };
    text.parse()
        .map_err(|e| Error::Conflict(format!("reference {text}: {e}")))
}

/// The error and every cause under it: "error sending request" alone does
/// not say that the connection was refused.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

fn registry_error(domain: &str) -> impl Fn(oci_client::errors::OciDistributionError) -> Error {
    let domain = domain.to_string();
    move |e| {
        use oci_client::errors::OciDistributionError as E;
        let refused = match &e {
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => true,
            E::RequestError(r) => r.status().is_some_and(|s| s.as_u16() == 401),
            _ => false,
        };
        let msg = if refused {
            let who = if credentials(&domain).is_some() {
                "the stored credentials were refused"
            } else {
                "authentication required"
            };
            format!("{who} (berth login {domain}): {}", chain(&e))
        } else {
            chain(&e)
        };
        Error::Registry {
            registry: domain.clone(),
            msg,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Conflict(format!("starting the registry client: {e}")))
}

/// Short form of a digest for progress lines, as Docker prints them.
fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// `reference` pinned to the digest its registry serves for it now (an
/// index's, for a multi-platform image), as Docker Compose's
/// `--resolve-image-digests` pins it: `domain/path:tag@sha256:…`. A
/// reference with a digest is returned as it is.
pub fn pin(reference: &Reference) -> Result<Reference> {
    if reference.digest.is_some() {
        return Ok(reference.clone());
    }
    let domain = reference.domain.clone();
    let client = client_for(&domain);
    let digest = runtime()?.block_on(async {
        client
            .fetch_manifest_digest(&remote(reference)?, &auth_for(&domain))
            .await
            .map_err(registry_error(&domain))
    })?;
    Ok(Reference {
        digest: Some(super::digest::Digest::parse(&digest)?),
        ..reference.clone()
    })
}

/// One step of a pull or a push, for whoever shows progress.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// What it is about: a layer's short digest, or the image reference.
    pub id: &'a str,
    /// Docker's words for the step (`pulling fs layer`, `pull complete` …).
    pub status: &'a str,
    /// How far a transfer is, in bytes (done, total); `None` for a step
    /// worth a line of its own.
    pub bytes: Option<(u64, u64)>,
}

impl Step<'_> {
    fn milestone<'a>(id: &'a str, status: &'a str) -> Step<'a> {
        Step {
            id,
            status,
            bytes: None,
        }
    }
}

impl std::fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.status)
    }
}

/// Pulls `reference` into `store`; `progress` hears of every step.
pub fn pull(
    store: &ImageStore,
    reference: &Reference,
    progress: &(dyn Fn(&Step<'_>) + Sync),
) -> Result<ImageRecord> {
    let domain = reference.domain.clone();
    let err = registry_error(&domain);
    let client = client_for(&domain);
    let auth = auth_for(&domain);
    let image = remote(reference)?;
    runtime()?.block_on(async {
        let (manifest, digest) = client
            .pull_image_manifest(&image, &auth)
            .await
            .map_err(&err)?;
        let what = reference.to_string();
        progress(&Step::milestone(&what, &format!("manifest {digest}")));
        let mut config = Vec::new();
        client
            .pull_blob(&image, &manifest.config, &mut config)
            .await
            .map_err(&err)?;
        let diff_ids =
            super::config::ImageConfig::parse(&config, "image configuration")?.diff_ids()?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::Archive(format!(
                "{reference}: the configuration lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let fetches = manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(layer, diff_id)| fetch_layer(store, &client, &image, layer, diff_id, progress));
        // A handful at a time, as Docker does: enough to fill the link.
        let results: Vec<Result<()>> = futures::stream::iter(fetches)
            .buffer_unordered(3)
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
        finish(store, reference, &manifest, &config, progress)
    })
}

/// Downloads one layer blob unless the store has it, unpacking it on the
/// way unless the store has that layer.
async fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    image: &oci_client::Reference,
    layer: &OciDescriptor,
    diff_id: &Digest,
    progress: &(dyn Fn(&Step<'_>) + Sync),
) -> Result<()> {
    let digest = Digest::parse(&layer.digest)?;
    let id = short(&layer.digest);
    if store.blob_path(&digest).is_file() {
        progress(&Step::milestone(id, "already exists"));
        return Ok(());
    }
    let total = u64::try_from(layer.size).unwrap_or(0);
    progress(&Step::milestone(
        id,
        &format!("pulling fs layer ({total} bytes)"),
    ));
    let what = format!("layer {digest}");
    let tmp = store.temp_path("download");
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
    let unpacking = (!store.layer_path(diff_id).is_dir()).then(|| {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.unpack_pending(ChannelReader {
                rx,
                chunk: bytes::Bytes::new(),
            })
        })
    });
    let to_unpack = unpacking.is_some().then_some(tx);
    let fetched = async {
        use std::io::Write as _;
        let failed = |msg: String| Error::Registry {
            registry: image.resolve_registry().to_string(),
            msg: format!("layer {digest}: {msg}"),
        };
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = super::store::HashingWriter::new(file);
        let mut blob = client
            .pull_blob_stream(image, layer)
            .await
            .map_err(|e| failed(chain(&e)))?;
        let mut told = std::time::Instant::now();
        let mut done = 0u64;
        while let Some(chunk) = blob.stream.next().await {
            let chunk = chunk.map_err(|e| failed(e.to_string()))?;
            out.write_all(&chunk).map_err(|e| Error::io(&tmp, e))?;
            done += chunk.len() as u64;
            if let Some(tx) = &to_unpack
                && tx.send(chunk).await.is_err()
            {
                // The unpacking stopped: its error says why.
                break;
            }
            if told.elapsed() > std::time::Duration::from_millis(100) {
                told = std::time::Instant::now();
                progress(&Step {
                    id,
                    status: "downloading",
                    bytes: Some((done, total)),
                });
            }
        }
        out.finish()
    }
    .await;
    // Whatever ended the download, the unpacking sees the end of it.
    drop(to_unpack);
    let pending = match unpacking {
        Some(task) => Some(
            task.await
                .map_err(|e| Error::Archive(format!("{what}: unpacking stopped: {e}")))
                .and_then(|r| r),
        ),
        None => None,
    };
    // The unpacking's error explains a stopped download best.
    let (hashed, pending) = match (fetched, pending) {
        (_, Some(Err(e))) | (Err(e), _) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        (Ok(hashed), pending) => (hashed, pending.and_then(Result::ok)),
    };
    store.adopt_hashed_blob(&tmp, hashed, &digest, &what)?;
    if let Some(pending) = pending {
        store.place_pending(pending, &digest, diff_id, &what)?;
    }
    progress(&Step::milestone(id, "download complete"));
    Ok(())
}

/// A layer blob arriving from the download, read by the thread that
/// unpacks it.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Unpacks the downloaded layers (each once) and records the image.
fn finish(
    store: &ImageStore,
    reference: &Reference,
    manifest: &OciImageManifest,
    config: &[u8],
    progress: &(dyn Fn(&Step<'_>) + Sync),
) -> Result<ImageRecord> {
    let cfg = super::config::ImageConfig::parse(config, "image configuration")?;
    let diff_ids = cfg.diff_ids()?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Archive(format!(
            "{reference}: the configuration lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
        let digest = Digest::parse(&layer.digest)?;
        let path = store.blob_path(&digest);
        let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        store.put_layer(f, Some(diff_id), &format!("layer {digest}"))?;
        progress(&Step::milestone(short(&layer.digest), "pull complete"));
        layers.push(Descriptor {
            media_type: layer.media_type.clone(),
            digest: digest.to_string(),
            size: u64::try_from(layer.size).unwrap_or(0),
            annotations: None,
            platform: None,
        });
    }
    store.add_image(config, layers, std::slice::from_ref(reference))
}

/// Pushes the local image `name` as `target`, uploading only the blobs the
/// registry lacks.
pub fn push(
    store: &ImageStore,
    name: &str,
    target: &Reference,
    progress: &(dyn Fn(&Step<'_>) + Sync),
) -> Result<String> {
    let rec = store.resolve(name)?;
    let manifest = store.manifest(&rec)?;
    let domain = target.domain.clone();
    let err = registry_error(&domain);
    let client = client_for(&domain);
    let auth = auth_for(&domain);
    let image = remote(target)?;
    runtime()?.block_on(async {
        client
            .auth(&image, &auth, RegistryOperation::Push)
            .await
            .map_err(&err)?;
        let blobs = manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config));
        for blob in blobs {
            let id = short(&blob.digest);
            if client
                .blob_exists(&image, &blob.digest)
                .await
                .map_err(&err)?
            {
                progress(&Step::milestone(id, "layer already exists"));
                continue;
            }
            let path = store.blob_path(&Digest::parse(&blob.digest)?);
            progress(&Step::milestone(
                id,
                &format!("pushing ({} bytes)", blob.size),
            ));
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            client
                .push_blob_stream(&image, file_chunks(file), &blob.digest, Some(blob.size))
                .await
                .map_err(&err)?;
            progress(&Step::milestone(id, "pushed"));
        }
        let descriptor = |d: &Descriptor| OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: i64::try_from(d.size).unwrap_or(i64::MAX),
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        let remote_manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(super::config::media::MANIFEST.to_string()),
            config: descriptor(&manifest.config),
            layers: manifest.layers.iter().map(descriptor).collect(),
            subject: None,
            artifact_type: None,
            annotations: None,
        };
        let url = client
            .push_manifest(&image, &OciManifest::Image(remote_manifest))
            .await
            .map_err(&err)?;
        Ok(url)
    })
}

/// A blob file as a stream of 1 MiB chunks: pushed without holding it
/// whole in memory.
fn file_chunks(
    file: File,
) -> impl futures::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(Some(file), |state| async move {
        use std::io::Read as _;
        let mut file = state?;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((
                Err(oci_client::errors::OciDistributionError::IoError(e)),
                None,
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_named_registries_go_without_tls() {
        assert!(insecure("localhost:5000"));
        assert!(insecure("127.0.0.1:5000"));
        assert!(insecure("[::1]:5000"));
        assert!(!insecure("docker.io"));
        assert!(!insecure("registry.example.com:5000"));
        assert!(!insecure("127.0.0.1.nip.io"));
    }

    #[test]
    fn docker_hub_credentials_live_under_their_historical_key() {
        assert_eq!(auth_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(auth_key("ghcr.io"), "ghcr.io");
    }
}
