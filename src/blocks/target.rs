//! Where blocks go, and how a sealed block is put there: renamed into a directory (a
//! Prometheus data directory, a Cortex filesystem bucket), or uploaded into an object store
//! bucket (S3, GCS, Azure: what `object_store` serves) with `meta.json` last.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{
    Certificate, ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, ObjectStoreScheme,
    PutPayload, WriteMultipart,
};

use super::{Sealed, sync_dir};
use crate::error::{Error, Result};
use crate::outcome::BlockWritten;

/// Where blocks go: a Prometheus data directory, or a Cortex bucket and tenant.
#[derive(Debug, Clone)]
pub struct BlocksTarget {
    /// As the user gave it (`file:///...`, `s3://...`), for messages and the ledger.
    pub url: String,
    /// Cortex's tenant: blocks go under `TENANT/` with `__org_id__` in their meta.json.
    pub tenant: Option<String>,
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    Dir(PathBuf),
    Bucket {
        store: Arc<dyn ObjectStore>,
        /// The URL's path inside the bucket, without slashes at either end.
        prefix: String,
    },
}

/// Parts of blocks go up in pieces of this size, so an upload holds one piece in memory.
const UPLOAD_PART_BYTES: usize = 16 << 20;

const BUCKET_FIX: &str = "the bucket's endpoint, region and credentials come from the usual \
    variables: AWS_ENDPOINT (an S3-compatible server), AWS_REGION, AWS_ACCESS_KEY_ID, \
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (and AWS_ALLOW_HTTP=true for plain http); \
    GOOGLE_SERVICE_ACCOUNT for gs://; AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY \
    for az://";

/// TLS to a bucket's endpoint, as for the other endpoints: the destination's CA bundle
/// (`--dest-ca-file`, or a Job's from a Secret) and `--dest-insecure-skip-verify`.
#[derive(Debug, Default)]
pub struct BucketTls {
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

impl BucketTls {
    fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.insecure_skip_verify
    }

    /// The HTTP client's options with this TLS, or `None` when there is nothing to add. A
    /// builder's `with_client_options` replaces the options it read from the store's
    /// variables (`AWS_ALLOW_HTTP`, ...), so they are read here again, as it reads them: the
    /// variables named `prefix` and a client setting.
    fn client_options(&self, prefix: &str) -> Result<Option<ClientOptions>> {
        if !self.is_set() {
            return Ok(None);
        }
        let mut options = ClientOptions::new();
        for (name, value) in std::env::vars() {
            let name = name.to_ascii_lowercase();
            if let Some(key) = name.strip_prefix(prefix)
                && let Ok(key) = key.parse::<ClientConfigKey>()
            {
                options = options.with_config(key, value);
            }
        }
        if let Some(pem) = &self.ca_pem {
            let certificates = Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    Error::invalid(
                        "--dest-ca-file",
                        "",
                        "holds no PEM certificate: give the CA bundle that signed the bucket \
                         endpoint's certificate",
                    )
                })?;
            for certificate in certificates {
                options = options.with_root_certificate(certificate);
            }
        }
        if self.insecure_skip_verify {
            tracing::warn!(
                "the bucket's TLS certificate is not verified (--dest-insecure-skip-verify)"
            );
            options = options.with_allow_invalid_certificates(true);
        }
        Ok(Some(options))
    }
}

impl BlocksTarget {
    /// `--dest-blocks URL`, `--tenant` and the TLS to reach a bucket.
    pub fn parse(url: &str, tenant: Option<&str>, tls: &BucketTls) -> Result<Self> {
        let url = url.trim();
        let tenant = match tenant.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if t == "." || t == ".." || t.contains('/') || t.len() > 150 => {
                return Err(Error::invalid(
                    "--tenant",
                    t,
                    "a Cortex tenant ID has at most 150 characters, no '/', and is not . or ..",
                ));
            }
            Some(t) => Some(t.to_string()),
        };
        let store = if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::invalid(
                    "--dest-blocks",
                    url,
                    "the path must be absolute: file:///DIR (three slashes)",
                ));
            }
            if tls.is_set() {
                return Err(Error::invalid(
                    "--dest-ca-file",
                    url,
                    "TLS settings go with a bucket (s3://, gs://, az://) or remote write, not a directory",
                ));
            }
            Store::Dir(PathBuf::from(path))
        } else {
            bucket(url, tls)?
        };
        Ok(BlocksTarget {
            url: url.to_string(),
            tenant,
            store,
        })
    }

    pub fn describe(&self) -> String {
        describe(&self.url, self.tenant.as_deref())
    }

    /// When the destination shows a new block, for the summary.
    pub fn visibility(&self) -> &'static str {
        match (&self.tenant, &self.store) {
            (Some(_), _) => {
                "Cortex serves new blocks after its store-gateway's and querier's next bucket \
                 sync (`blocks_storage.bucket_store.sync_interval`, 15m by default): `promimport \
                 verify --wait 30m` checks them then"
            }
            (None, Store::Dir(_)) => {
                "a Prometheus running on this directory loads new blocks at its next block \
                 reload (within a minute), or at its next start"
            }
            (None, Store::Bucket { .. }) => {
                "a store reading this bucket (Thanos, Cortex, Mimir) serves new blocks after its \
                 next sync of it"
            }
        }
    }

    /// The directory blocks go into, for a directory target.
    fn blocks_dir(dir: &Path, tenant: Option<&str>) -> PathBuf {
        match tenant {
            Some(t) => dir.join(t),
            None => dir.to_path_buf(),
        }
    }

    /// Whether a block's staging directory is renamed into place (a directory), rather than
    /// uploaded and deleted (a bucket).
    pub(crate) fn renames_staging(&self) -> bool {
        matches!(self.store, Store::Dir(_))
    }

    /// Where a block is written before it is put in place: beside its place in a directory
    /// (so that the rename is one step, under a name no reader loads), or in this machine's
    /// temporary directory for a bucket.
    pub(crate) fn staging_dir(&self, id: ulid::Ulid) -> PathBuf {
        let name = format!("{id}.tmp-promimport");
        match &self.store {
            Store::Dir(dir) => Self::blocks_dir(dir, self.tenant.as_deref()).join(name),
            Store::Bucket { .. } => std::env::temp_dir().join("promimport-blocks").join(name),
        }
    }

    /// The directory or bucket takes what an import writes.
    pub async fn probe(&self) -> Result<()> {
        match &self.store {
            Store::Dir(dir) => {
                let dir = Self::blocks_dir(dir, self.tenant.as_deref());
                let fail = |source| Error::WriteFile {
                    what: "the --dest-blocks directory",
                    path: dir.clone(),
                    source,
                };
                std::fs::create_dir_all(&dir).map_err(fail)?;
                let probe = dir.join(".promimport-probe");
                std::fs::write(&probe, b"").map_err(fail)?;
                std::fs::remove_file(&probe).map_err(fail)
            }
            Store::Bucket { store, prefix } => {
                let at = ObjectPath::from(prefix.as_str());
                store
                    .list_with_delimiter(Some(&at))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.bucket_error("cannot list the bucket", &e))
            }
        }
    }

    /// Puts a sealed block in place: renamed into the directory, or uploaded with `meta.json`
    /// last. A block whose `meta.json` is there already (this window, written by a run that
    /// stopped before recording it) is kept and the new copy dropped when both hold as many
    /// samples; otherwise the window fails, naming the block (`Sealed::same_as`).
    pub(crate) async fn place(&self, sealed: Sealed) -> Result<BlockWritten> {
        let mut written = BlockWritten {
            id: sealed.id.clone(),
            bytes: sealed.bytes,
            existed: false,
        };
        match &self.store {
            Store::Dir(dir) => {
                let blocks = Self::blocks_dir(dir, self.tenant.as_deref());
                let dest = blocks.join(&sealed.id);
                let io = |what: &'static str| {
                    let path = dest.clone();
                    move |source| Error::WriteFile { what, path, source }
                };
                if let Ok(existing) = std::fs::read(dest.join("meta.json")) {
                    sealed.remove();
                    sealed.same_as(&existing, &dest.display().to_string())?;
                    written.existed = true;
                    return Ok(written);
                }
                if dest.exists() {
                    // A directory with our ID and no meta.json is loaded by no one: replace it.
                    std::fs::remove_dir_all(&dest).map_err(io("an incomplete block"))?;
                }
                std::fs::rename(&sealed.staging, &dest).map_err(io("a block's directory"))?;
                sync_dir(&blocks).map_err(io("the blocks directory"))?;
            }
            Store::Bucket { store, prefix } => {
                let base = [
                    prefix.as_str(),
                    self.tenant.as_deref().unwrap_or(""),
                    &sealed.id,
                ]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
                let meta = ObjectPath::from(format!("{base}/meta.json"));
                let existing = match store.get(&meta).await {
                    Ok(found) => Some(found.bytes().await),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(self.bucket_error("cannot look for the block", &e)),
                };
                if let Some(existing) = existing {
                    let existing = existing
                        .map_err(|e| self.bucket_error("cannot read the block's meta.json", &e))?;
                    sealed.remove();
                    sealed.same_as(&existing, &format!("{base} (in {})", self.url))?;
                    written.existed = true;
                    return Ok(written);
                }
                // meta.json is the last of `files`: until it is there, stores take the block
                // for a partial upload and leave it alone.
                for file in &sealed.files {
                    let to = ObjectPath::from(format!("{base}/{file}"));
                    self.upload(store.as_ref(), &sealed.staging.join(file), &to)
                        .await?;
                }
                sealed.remove();
            }
        }
        Ok(written)
    }

    async fn upload(&self, store: &dyn ObjectStore, from: &Path, to: &ObjectPath) -> Result<()> {
        let read_error = |source| Error::ReadFile {
            what: "a block's file",
            path: from.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(from).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        let failed = |e: object_store::Error| self.bucket_error(&format!("cannot upload {to}"), &e);
        if size <= UPLOAD_PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).map_err(read_error)?;
            store
                .put(to, PutPayload::from(bytes))
                .await
                .map_err(failed)?;
            return Ok(());
        }
        let upload = store.put_multipart(to).await.map_err(failed)?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
        let mut buffer = vec![0u8; UPLOAD_PART_BYTES];
        loop {
            let ready = match file.read(&mut buffer).map_err(read_error) {
                Ok(0) => break,
                Ok(n) => parts.wait_for_capacity(2).await.map(|()| n).map_err(failed),
                Err(e) => Err(e),
            };
            match ready {
                Ok(n) => parts.write(&buffer[..n]),
                Err(e) => {
                    // A multipart upload left open is stored (and billed) by some stores
                    // until it is aborted.
                    let _ = parts.abort().await;
                    return Err(e);
                }
            }
        }
        parts.finish().await.map_err(failed)?;
        Ok(())
    }

    fn bucket_error(&self, what: &str, e: &object_store::Error) -> Error {
        if let Some(problem) = crate::tls::certificate_problem(e) {
            return Error::Certificate {
                role: "blocks destination",
                url: self.url.clone(),
                problem,
                fix: "give the CA that signed the bucket endpoint's certificate with \
                      --dest-ca-file (a spec's destination.caSecret), or skip verifying it with \
                      --dest-insecure-skip-verify (unsafe)"
                    .into(),
            };
        }
        let permanent = matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
        Error::BlockStore {
            url: self.url.clone(),
            message: format!("{what}: {e}"),
            transient: !permanent,
        }
    }
}

/// Where blocks go, as people read it: the URL, and the tenant when there is one.
pub fn describe(url: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{url} (tenant {t})"),
        None => url.to_string(),
    }
}

/// A bucket URL (`s3://BUCKET/PREFIX`, `gs://...`, `az://...`), configured from the store's
/// usual environment variables.
fn bucket(url: &str, tls: &BucketTls) -> Result<Store> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        Error::invalid(
            "--dest-blocks",
            url,
            format!("{e}; give file:///DIR, or a bucket such as s3://BUCKET/PREFIX"),
        )
    })?;
    let invalid = |e: &dyn std::fmt::Display| {
        Error::invalid("--dest-blocks", url, format!("{e}; {BUCKET_FIX}"))
    };
    let places = "give file:///DIR, s3://BUCKET[/PREFIX], gs://BUCKET or az://CONTAINER";
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed)
        .map_err(|e| Error::invalid("--dest-blocks", url, format!("{e}; {places}")))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
            if let Some(options) = tls.client_options("aws_")? {
                builder = builder.with_client_options(options);
            }
            Arc::new(builder.build().map_err(|e| invalid(&e))?)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut builder =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url);
            if let Some(options) = tls.client_options("google_")? {
                builder = builder.with_client_options(options);
            }
            Arc::new(builder.build().map_err(|e| invalid(&e))?)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url);
            if let Some(options) = tls.client_options("azure_")? {
                builder = builder.with_client_options(options);
            }
            Arc::new(builder.build().map_err(|e| invalid(&e))?)
        }
        other => {
            return Err(Error::invalid(
                "--dest-blocks",
                url,
                format!("{other:?} is not a place for blocks: {places}"),
            ));
        }
    };
    Ok(Store::Bucket {
        store,
        prefix: prefix.as_ref().trim_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file larger than one part goes up in parts and comes back byte for byte (the tests'
    /// blocks into moto are all smaller than a part).
    #[tokio::test]
    async fn a_file_larger_than_a_part_is_uploaded_in_parts_whole() {
        let dir = std::env::temp_dir().join(format!("promimport-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("chunks-000001");
        let bytes: Vec<u8> = (0..UPLOAD_PART_BYTES + UPLOAD_PART_BYTES / 2)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&file, &bytes).unwrap();
        let store = object_store::memory::InMemory::new();
        let target = BlocksTarget::parse("file:///unused", None, &BucketTls::default()).unwrap();
        let to = ObjectPath::from("t/ULID/chunks/000001");
        target.upload(&store, &file, &to).await.unwrap();
        let back = store.get(&to).await.unwrap().bytes().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            back.as_ref() == bytes.as_slice(),
            "{} bytes back",
            back.len()
        );
    }
}
