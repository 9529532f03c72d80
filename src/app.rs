//! Assembly: builds the state (database, keys, hasher, mail), merges each area's `router()`, adds
//! the middleware (request id, tracing, metrics, body limit, security headers) and runs the server
//! loop (HTTP or HTTPS, graceful shutdown) with the background workers.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::{net::TcpListener, sync::Notify};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::{
    accounts::password::Hasher,
    clock::Clock,
    config::Config,
    crypto::MasterKey,
    error::REQUEST_ID,
    mail::Transport,
    metrics::Metrics,
    state::{AppState, Inner},
    store::Db,
    tokens::keys::KeyRing,
};

pub struct App {
    pub state: AppState,
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<openssl::ssl::SslAcceptor>,
}

impl App {
    /// Connect and migrate the database, load keys, bind the listener. Nothing is served yet.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        config.validate()?;
        let master = MasterKey::load_or_create(&config.master_key_file)?;
        let db = Db::connect(&config.database_url, config.database_max_connections, config.database_acquire_timeout.0)
            .await?;
        db.migrate().await?;
        let now = clock.now();
        crate::tokens::keys::ensure_key(&db, &master, now).await?;
        crate::tokens::license_keys::ensure_key(&db, &master, now).await?;
        let onprem = crate::onprem::Local::load(&config, &db, &master, now).await?;
        // Keys stay published as long as the longest-lived token they sign (access or lease token);
        // those that signed audit checkpoints, as long as audit events are kept.
        let retention = config.access_token_ttl.ms().max(config.offline_grace.ms());
        let keys = KeyRing::load(db.clone(), master.clone(), retention, config.audit_retention.ms(), now).await?;
        let listener =
            TcpListener::bind(config.listen_addr()?).await.with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        let mail_transport = Transport::from_config(config.smtp_url.as_deref(), &config.mail_dir)?;
        let hasher = Hasher::new(config.hash_permits())?;
        // libxml2/xmlsec start lazily under a global lock: pay for it now, not in the first sign-in.
        match tokio::task::spawn_blocking(crate::saml::warm_up).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "SAML signature checking is unavailable"),
            Err(e) => tracing::error!(error = %e, "SAML warm-up task"),
        }
        let base_url = config.public_base(addr);
        let openapi = crate::api_doc::json(&base_url)?.into();
        let state = AppState::new(Inner {
            config,
            db,
            clock,
            master,
            keys,
            hasher,
            mail_transport,
            mail_wake: Notify::new(),
            background: Default::default(),
            metrics: Metrics::default(),
            heartbeats: Default::default(),
            audit: Default::default(),
            known_clients: Default::default(),
            base_url,
            openapi,
            onprem,
        });
        Ok(App { state, listener, addr, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until `shutdown` resolves, then stop accepting, let requests in flight finish, and stop
    /// the background workers.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App { state, listener, addr, tls } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(crate::mail::run_worker(state.clone(), stop_rx.clone()));
        workers.spawn(housekeeping(state.clone(), stop_rx.clone()));
        workers.spawn(crate::audit::sealer::run(state.clone(), stop_rx.clone()));
        let router = router(state.clone());
        tracing::info!(%addr, public_url = %state.base_url, tls = tls.is_some(), "latchkey listening");
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
        };
        match tls {
            None => {
                axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
            Some(acceptor) => crate::tls::serve(listener, acceptor, router, shutdown).await?,
        }
        // Requests answered before the shutdown may have left work behind (a reset mail to queue).
        state.background.settled().await;
        let _ = stop_tx.send(true);
        while workers.join_next().await.is_some() {}
        state.db.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<openssl::ssl::SslAcceptor> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVersion};
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_private_key_file(key, SslFiletype::PEM).with_context(|| format!("TLS key {}", key.display()))?;
    b.set_certificate_chain_file(cert).with_context(|| format!("TLS certificate {}", cert.display()))?;
    b.check_private_key().context("TLS key does not match the certificate")?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(b.build())
}

/// Periodic chores that keep tables small and caches fresh. Correctness never depends on them.
async fn housekeeping(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut minutes: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        // At start and then hourly: the planner's statistics (SQLite only; cheap when nothing
        // changed much).
        if minutes.is_multiple_of(60)
            && let Err(e) = state.db.optimize().await
        {
            tracing::warn!(error = %e, "updating the query planner's statistics");
        }
        minutes += 1;
        let now = state.now();
        if let Err(e) = state.keys.reload(now).await {
            tracing::warn!(error = %e, "reloading signing keys");
        }
        if let Err(e) = crate::store::tokens::purge_expired(&state.db.pool, now).await {
            tracing::warn!(error = %e, "purging expired tokens");
        }
        if let Err(e) = crate::store::throttle::purge(&state.db.pool, now - 86_400_000).await {
            tracing::warn!(error = %e, "purging throttle counters");
        }
        if let Err(e) = crate::store::sessions::purge(&state.db.pool, now).await {
            tracing::warn!(error = %e, "purging sessions and codes");
        }
        if let Err(e) = crate::store::sso::purge(&state.db.pool, now).await {
            tracing::warn!(error = %e, "purging SAML requests and replay cache");
        }
        if let Err(e) = crate::saml::refresh::refresh_due(&state).await {
            tracing::warn!(error = ?e, "refreshing IdP metadata");
        }
    }
}

pub fn router(state: AppState) -> Router {
    let static_headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    let mut r = Router::new()
        .merge(crate::ops::router())
        .merge(crate::oauth::router())
        .merge(crate::accounts::router())
        .merge(crate::licenses::router())
        .merge(crate::onprem::router())
        .merge(crate::saml::router())
        .merge(crate::scim::router())
        .merge(crate::web::router())
        .merge(crate::portal::router())
        .merge(crate::audit::api::router());
    for (name, value) in static_headers {
        r = r.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    if state.is_https() {
        r = r.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    r.method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), crate::onprem::everyone::layer))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (see the Allow header)",
    )
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request id (kept from the client when sane, else made), tracing span, metrics, `x-request-id`.
async fn observe(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // No NUL anywhere in the path or query: no store can hold it, and nothing legitimate sends it.
    let nul = req.uri().to_string().to_ascii_lowercase().contains("%00");
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = std::time::Instant::now();
    let mut resp = if nul {
        crate::error::ApiError::bad_request("invalid_request", "the address holds a NUL character").into_response()
    } else {
        REQUEST_ID.scope(id.clone(), next.run(req)).instrument(span).await
    };
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    // One line a request, outside the span so that JSON lines carry each field once. The route is
    // the template (`/share/{token}`), never the path: paths and queries may hold secrets.
    tracing::info!(
        target: "latchkey::http",
        request_id = %id,
        %method,
        %route,
        status,
        latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        entity = entity_slug(&route, &path),
        "request"
    );
    state.metrics.observe_request(&route, method.as_str(), status, elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}

/// The entity a request addresses: the `{slug}` segment of its route, when the route has one.
fn entity_slug<'p>(route: &str, path: &'p str) -> Option<&'p str> {
    let (_, slug) = route.split('/').zip(path.split('/')).find(|(t, _)| *t == "{slug}")?;
    // Slugs are short and URL-safe; anything else is not an entity's and is not worth a log field.
    (slug.len() <= 64 && slug.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))).then_some(slug)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_entity_is_the_slug_segment_of_the_route() {
        use super::entity_slug;
        assert_eq!(entity_slug("/api/v1/entities/{slug}/licenses", "/api/v1/entities/acme/licenses"), Some("acme"));
        assert_eq!(entity_slug("/saml/{slug}/acs", "/saml/acme-eu/acs"), Some("acme-eu"));
        assert_eq!(entity_slug("/api/v1/licenses/{id}", "/api/v1/licenses/0191"), None);
        assert_eq!(entity_slug("unmatched", "/nowhere"), None);
        assert_eq!(entity_slug("/saml/{slug}/acs", "/saml/a%22b/acs"), None);
    }
}
