//! Mail: rendering (askama text + HTML pairs in `templates/mail/`), the durable outbox (a row
//! written in the transaction of the change that causes it, body sealed with the master key), and
//! the worker that delivers it over SMTP or into `.eml` files, with retries and backoff. An SMTP
//! outage makes mail late, never lost; a retry reuses the same Message-ID so it is never doubled.

mod worker;

pub use worker::{DrainStats, Transport, drain_once, run_worker};

use askama::Template;
use serde::{Deserialize, Serialize};

use crate::{
    clock::Millis,
    crypto::MasterKey,
    store::{self, Tx},
};

/// What a queued mail holds until it is sent (sealed in `outbox.sealed_message`).
#[derive(Serialize, Deserialize)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The action link, logged only when mail goes to files (development without SMTP).
    pub link: Option<String>,
}

pub enum Mail<'a> {
    Setup { email: &'a str, inviter: &'a str, link: &'a str, hours: i64 },
    Reset { email: &'a str, link: &'a str, hours: i64 },
    Assigned { email: &'a str, inviter: &'a str, product: &'a str, login_url: Option<&'a str> },
    Admin { email: &'a str, inviter: &'a str, login_url: &'a str },
    SsoWelcome { email: &'a str, inviter: &'a str, login_url: &'a str },
    IdpCertificateExpiring { email: &'a str, entity: &'a str, days: i64, not_after: &'a str, sso_url: &'a str },
}

/// A text and an HTML template over the same fields.
macro_rules! pair {
    ($txt:ident = $tp:literal, $html:ident = $hp:literal, { $($f:ident : $t:ty),* }) => {
        #[derive(Template)]
        #[template(path = $tp)]
        struct $txt<'a> { $($f: $t),* }
        #[derive(Template)]
        #[template(path = $hp)]
        struct $html<'a> { $($f: $t),* }
    };
}

pair!(SetupTxt = "mail/setup.txt", SetupHtml = "mail/setup.html", { email: &'a str, inviter: &'a str, link: &'a str, hours: i64 });
pair!(ResetTxt = "mail/reset.txt", ResetHtml = "mail/reset.html", { email: &'a str, link: &'a str, hours: i64 });
pair!(AssignedTxt = "mail/assigned.txt", AssignedHtml = "mail/assigned.html",
    { email: &'a str, inviter: &'a str, product: &'a str, login_url: Option<&'a str> });
pair!(AdminTxt = "mail/admin.txt", AdminHtml = "mail/admin.html", { email: &'a str, inviter: &'a str, login_url: &'a str });
pair!(SsoTxt = "mail/sso_welcome.txt", SsoHtml = "mail/sso_welcome.html", { email: &'a str, inviter: &'a str, login_url: &'a str });
pair!(CertTxt = "mail/idp_certificate.txt", CertHtml = "mail/idp_certificate.html",
    { entity: &'a str, days: i64, not_after: &'a str, sso_url: &'a str });

impl Mail<'_> {
    pub fn template(&self) -> &'static str {
        match self {
            Mail::Setup { .. } => "setup",
            Mail::Reset { .. } => "reset",
            Mail::Assigned { .. } => "assigned",
            Mail::Admin { .. } => "admin",
            Mail::SsoWelcome { .. } => "sso_welcome",
            Mail::IdpCertificateExpiring { .. } => "idp_certificate",
        }
    }

    pub fn render(&self) -> Result<Rendered, askama::Error> {
        let (to, subject, text, html, link) = match *self {
            Mail::Setup { email, inviter, link, hours } => (
                email,
                "Choose your latchkey password".to_string(),
                SetupTxt { email, inviter, link, hours }.render()?,
                SetupHtml { email, inviter, link, hours }.render()?,
                Some(link),
            ),
            Mail::Reset { email, link, hours } => (
                email,
                "Reset your latchkey password".to_string(),
                ResetTxt { email, link, hours }.render()?,
                ResetHtml { email, link, hours }.render()?,
                Some(link),
            ),
            Mail::Assigned { email, inviter, product, login_url } => (
                email,
                format!("You have a license of {product}"),
                AssignedTxt { email, inviter, product, login_url }.render()?,
                AssignedHtml { email, inviter, product, login_url }.render()?,
                None,
            ),
            Mail::Admin { email, inviter, login_url } => (
                email,
                format!("You administer {inviter}'s licenses"),
                AdminTxt { email, inviter, login_url }.render()?,
                AdminHtml { email, inviter, login_url }.render()?,
                None,
            ),
            Mail::SsoWelcome { email, inviter, login_url } => (
                email,
                "Sign in with your company account".to_string(),
                SsoTxt { email, inviter, login_url }.render()?,
                SsoHtml { email, inviter, login_url }.render()?,
                Some(login_url),
            ),
            Mail::IdpCertificateExpiring { email, entity, days, not_after, sso_url } => (
                email,
                format!("Your IdP's signing certificate expires in {days} days"),
                CertTxt { entity, days, not_after, sso_url }.render()?,
                CertHtml { entity, days, not_after, sso_url }.render()?,
                None,
            ),
        };
        Ok(Rendered { to: to.to_string(), subject, text, html, link: link.map(str::to_string) })
    }
}

/// At most this many mails of one kind (template) to one address per hour.
pub const PER_KIND_PER_HOUR: i64 = 3;
/// At most one "you have a license of X" per address and product per day, however often the
/// license is assigned, revoked and assigned again.
pub const ASSIGNED_PER_PRODUCT_PER_DAY: i64 = 1;

const HOUR_MS: Millis = 3_600_000;

impl Mail<'_> {
    fn recipient(&self) -> &str {
        match *self {
            Mail::Setup { email, .. }
            | Mail::Reset { email, .. }
            | Mail::Assigned { email, .. }
            | Mail::Admin { email, .. }
            | Mail::SsoWelcome { email, .. }
            | Mail::IdpCertificateExpiring { email, .. } => email,
        }
    }
}

/// Take the quotas of one mail (counted in the database, inside the caller's transaction, so
/// they hold across replicas and are given back if the change rolls back). False: over a quota,
/// and then none is spent (a savepoint undoes the ones already taken).
async fn take_quota(tx: &mut Tx, master: &MasterKey, mail: &Mail<'_>, now: Millis) -> anyhow::Result<bool> {
    let to = mail.recipient().to_lowercase();
    let mut quotas = vec![(
        master.keyed_hash(&[b"mail-quota", to.as_bytes(), mail.template().as_bytes()]),
        PER_KIND_PER_HOUR,
        HOUR_MS,
    )];
    if let Mail::Assigned { product, .. } = mail {
        let key = master.keyed_hash(&[b"mail-quota-product", to.as_bytes(), product.as_bytes()]);
        quotas.push((key, ASSIGNED_PER_PRODUCT_PER_DAY, 24 * HOUR_MS));
    }
    let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
    for (key, limit, window) in &quotas {
        if !store::throttle::take_quota(&mut *savepoint, &format!("m:{key}"), *limit, *window, now).await? {
            savepoint.rollback().await?;
            return Ok(false);
        }
    }
    savepoint.commit().await?;
    Ok(true)
}

/// Queue a mail inside the caller's transaction: it is sent if and only if the change commits.
/// Call `Mailer::wake` after the commit so the worker does not wait for its next poll.
///
/// Nobody can make latchkey flood an address: a mail over its quota (see the constants above) is
/// dropped, and `false` says so; the change itself goes ahead.
pub async fn enqueue(tx: &mut Tx, master: &MasterKey, mail: Mail<'_>, now: Millis) -> anyhow::Result<bool> {
    if !take_quota(tx, master, &mail, now).await? {
        tracing::info!(template = mail.template(), "mail not sent: the address had its quota");
        return Ok(false);
    }
    let rendered = mail.render()?;
    let id = store::new_id();
    let sealed = master.encrypt(&serde_json::to_vec(&rendered)?, aad(&id).as_bytes())?;
    store::outbox::insert(
        &mut **tx,
        &store::outbox::NewMail {
            id: &id,
            recipient: &rendered.to,
            template: mail.template(),
            sealed_message: &sealed,
            now,
        },
    )
    .await?;
    Ok(true)
}

fn aad(id: &str) -> String {
    format!("outbox:{id}")
}
