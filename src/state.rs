//! The shared application state every handler and worker receives: configuration, the database,
//! the clock, keys, the password hasher, the mail transport and metrics. It sits below every area;
//! `app.rs` only assembles the areas' routers around it.

use std::{ops::Deref, sync::Arc};

use tokio::sync::Notify;

use crate::{
    accounts::password::Hasher, clock::Clock, clock::Millis, config::Config, crypto::MasterKey, mail::Transport,
    metrics::Metrics, store::Db, tokens::keys::KeyRing,
};

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub master: MasterKey,
    pub keys: KeyRing,
    pub hasher: Hasher,
    pub mail_transport: Transport,
    pub mail_wake: Notify,
    /// Work requests started and do not wait for.
    pub background: crate::background::Background,
    pub metrics: Metrics,
    /// Heartbeats queued for the next batch (`store::heartbeats`).
    pub heartbeats: crate::store::heartbeats::Batcher,
    /// This process as the audit sealer.
    pub audit: crate::audit::Sealer,
    /// Client ids known to be registered (products are never deleted).
    pub known_clients: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Public base URL, no trailing slash; also the token issuer.
    pub base_url: String,
    /// The OpenAPI document (`GET /openapi.json`), generated once at start-up for this base URL.
    pub openapi: axum::body::Bytes,
    /// Set on an on-premise license server (`LATCHKEY_LICENSE_PUBLIC_KEY_FILE`).
    pub onprem: Option<crate::onprem::Local>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
    pub fn now(&self) -> Millis {
        self.clock.now()
    }
    pub fn issuer(&self) -> &str {
        &self.base_url
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
    /// A change committed mail: let the worker send it now.
    pub fn wake_mailer(&self) {
        self.mail_wake.notify_one();
    }
    pub fn is_https(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}
