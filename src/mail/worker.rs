//! The outbox worker: claim due mails, deliver, record the outcome, back off on failure.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::MultiPart};

use super::{Rendered, aad};
use crate::{clock::Millis, state::AppState, store::outbox};

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No SMTP configured: `.eml` files in a directory (development).
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Files(p) => write!(f, "Transport::Files({})", p.display()),
        }
    }
}

impl Transport {
    pub fn from_config(smtp_url: Option<&str>, mail_dir: &std::path::Path) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("LATCHKEY_SMTP_URL: {e}"))?
                    .timeout(Some(Duration::from_secs(15)))
                    .build();
                Ok(Transport::Smtp(t))
            }
            None => {
                crate::crypto::create_private_dir(mail_dir)?;
                Ok(Transport::Files(mail_dir.to_path_buf()))
            }
        }
    }
}

/// Attempts after which a mail the server refuses for good (5xx) is given up.
const MAX_PERMANENT_FAILURES: i64 = 8;
/// A claim lasts this long; a worker that dies mid-send frees the row after it.
const CLAIM_MS: Millis = 120_000;
const BATCH: i64 = 50;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    pub sent: usize,
    pub failed: usize,
}

/// Backoff after the n-th failed attempt: `first` (30 s by default), then doubling, capped at
/// one hour.
pub fn backoff_ms(first: Millis, attempts: i64) -> Millis {
    let exp = attempts.clamp(1, 8) - 1;
    (first.max(1) << exp).min(3_600_000)
}

/// Deliver every mail that is due now. Safe to run on several replicas at once.
pub async fn drain_once(state: &AppState) -> anyhow::Result<DrainStats> {
    let mut stats = DrainStats::default();
    loop {
        let now = state.now();
        let ids = outbox::due_ids(&state.db.pool, now, BATCH).await?;
        if ids.is_empty() {
            break;
        }
        let mut progressed = false;
        for id in ids {
            let now = state.now();
            let Some(row) = outbox::claim(&state.db.pool, &id, now, now + CLAIM_MS).await? else { continue };
            progressed = true;
            let Some(sealed) = row.sealed_message.as_deref() else {
                outbox::mark_undeliverable(&state.db.pool, &row.id, now, "no message body").await?;
                continue;
            };
            let rendered: Rendered = match state
                .master
                .decrypt(sealed, aad(&row.id).as_bytes())
                .and_then(|b| serde_json::from_slice(&b).context("outbox payload"))
            {
                Ok(r) => r,
                Err(e) => {
                    // Wrong master key: leave it for a replica that has the right one; never drop it.
                    tracing::error!(mail = %row.id, error = %e, "cannot open queued mail");
                    outbox::mark_failed(
                        &state.db.pool,
                        &row.id,
                        now + backoff_ms(state.config.mail_retry.ms(), row.attempts),
                        "cannot decrypt",
                    )
                    .await?;
                    stats.failed += 1;
                    continue;
                }
            };
            match deliver(state, &row.id, &rendered).await {
                Ok(()) => {
                    outbox::mark_sent(&state.db.pool, &row.id, state.now()).await?;
                    state.metrics.mail_sent();
                    tracing::info!(mail = %row.id, template = %row.template, attempts = row.attempts, "mail sent");
                    stats.sent += 1;
                }
                Err(SendError { permanent, message }) => {
                    state.metrics.mail_failed();
                    stats.failed += 1;
                    let now = state.now();
                    if permanent && row.attempts >= MAX_PERMANENT_FAILURES {
                        tracing::error!(mail = %row.id, error = %message, "mail refused for good; giving up");
                        outbox::mark_undeliverable(&state.db.pool, &row.id, now, &message).await?;
                    } else {
                        let retry = now + backoff_ms(state.config.mail_retry.ms(), row.attempts);
                        tracing::warn!(mail = %row.id, attempts = row.attempts, error = %message, retry_in_s = (retry - now) / 1000, "mail not sent; will retry");
                        outbox::mark_failed(&state.db.pool, &row.id, retry, &message).await?;
                    }
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(stats)
}

struct SendError {
    permanent: bool,
    message: String,
}

async fn deliver(state: &AppState, id: &str, r: &Rendered) -> Result<(), SendError> {
    let fail = |permanent: bool, message: String| SendError { permanent, message };
    let message =
        build(&state.config.mail_from, id, r).map_err(|e| fail(true, format!("cannot build message: {e}")))?;
    match &state.mail_transport {
        Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| fail(e.is_permanent(), e.to_string())),
        Transport::Files(dir) => {
            let path = dir.join(format!("{id}.eml"));
            let tmp = dir.join(format!(".{id}.eml.tmp"));
            let bytes = message.formatted();
            let write = async {
                tokio::fs::write(&tmp, &bytes).await?;
                tokio::fs::rename(&tmp, &path).await
            };
            write.await.map_err(|e| fail(false, format!("writing {}: {e}", path.display())))?;
            // Development mode only (no SMTP configured): the link is how a person gets in.
            match &r.link {
                Some(link) => tracing::info!(to = %r.to, file = %path.display(), %link, "mail written to file"),
                None => tracing::info!(to = %r.to, file = %path.display(), "mail written to file"),
            }
            Ok(())
        }
    }
}

fn build(from: &str, id: &str, r: &Rendered) -> anyhow::Result<Message> {
    let from: lettre::message::Mailbox = from.parse()?;
    let to: lettre::message::Mailbox = r.to.parse()?;
    let domain = from.email.domain().to_string();
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(&r.subject)
        .message_id(Some(format!("<{id}@{domain}>")))
        .multipart(MultiPart::alternative_plain_html(r.text.clone(), r.html.clone()))?)
}

/// Run until shutdown: drain on wake-up (a commit queued mail) or every second.
pub async fn run_worker(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = drain_once(&state).await {
            tracing::error!(error = ?e, "mail worker");
        }
        tokio::select! {
            _ = state.mail_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_ms(30_000, 1), 30_000);
        assert_eq!(backoff_ms(30_000, 2), 60_000);
        assert_eq!(backoff_ms(30_000, 3), 120_000);
        assert_eq!(backoff_ms(30_000, 50), 3_600_000);
        assert_eq!(backoff_ms(1_000, 2), 2_000);
    }
}
