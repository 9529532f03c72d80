//! Single sign-on set-up for an entity's administrators: pick the IdP vendor (with help on where
//! that IdP's console keeps each value), paste its metadata, copy the SP values or download the SP
//! metadata, claim email domains, run **Test sign-in** and read what the IdP sent, enable or
//! disable, and read the refused sign-ins of the last week in plain words.
//!
//! Saving goes through `saml::config::change`, the function behind `PUT`/`PATCH .../sso`, so the
//! page and the JSON API validate and enforce exactly the same rules (an untested IdP cannot be
//! enabled by an administrator; verified domains stay the operator's word).

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine;
use serde::Deserialize;

use super::{Posted, Shell, TokenForm, Viewer, admin::entity_of, fail, see_other, show, view};
use crate::{
    error::ApiError,
    error::ApiPath,
    saml::{
        config::{self, Mode, SsoBody},
        policy, sp,
        vendors::Vendor,
    },
    state::AppState,
    store::{self, entities::Entity},
};

/// How each vendor is named on the page, and where in its console the values are.
pub struct VendorHelp {
    pub id: &'static str,
    pub name: &'static str,
    /// Steps in that IdP's console, in order.
    pub steps: &'static [&'static str],
}

pub const VENDORS: &[VendorHelp] = &[
    VendorHelp {
        id: "azure-ad",
        name: "Microsoft Entra ID",
        steps: &[
            "In the Microsoft Entra admin center open Enterprise applications, choose New application, then Create your own application (not from the gallery).",
            "In the new application open Single sign-on and choose SAML.",
            "Under Basic SAML Configuration, set Identifier (Entity ID) to the SP entity ID below and Reply URL (Assertion Consumer Service URL) to the ACS URL below. Sign on URL may be the sign-in URL below.",
            "Under SAML Certificates, download Federation Metadata XML and paste the whole file into the metadata field.",
            "Under Users and groups, assign the people who may sign in. Entra sends their email in the emailaddress claim, which latchkey reads by default.",
        ],
    },
    VendorHelp {
        id: "okta",
        name: "Okta",
        steps: &[
            "In the Okta Admin Console open Applications, choose Create App Integration, then SAML 2.0.",
            "Set Single sign-on URL to the ACS URL below (keep “Use this for Recipient URL and Destination URL” ticked) and Audience URI (SP Entity ID) to the SP entity ID below.",
            "Set Name ID format to EmailAddress and Application username to Email.",
            "Finish, then on the application's Sign On tab open the SAML metadata (View SAML setup instructions, or the Metadata URL) and paste the XML document into the metadata field.",
            "On the Assignments tab, assign the people or groups who may sign in.",
        ],
    },
    VendorHelp {
        id: "onelogin",
        name: "OneLogin",
        steps: &[
            "In OneLogin Administration open Applications, choose Add App and pick SAML Custom Connector (Advanced).",
            "On the Configuration tab set Audience (EntityID) to the SP entity ID below, and Recipient and ACS (Consumer) URL to the ACS URL below; ACS (Consumer) URL Validator may be the same address.",
            "Set SAML signature element to Assertion or Both, and SAML nameID format to Email.",
            "On the SSO tab choose More Actions, then SAML Metadata, and paste the downloaded XML into the metadata field.",
            "On the Users tab (or through roles), give the people who may sign in access to the application.",
        ],
    },
    VendorHelp {
        id: "pingfederate",
        name: "PingFederate",
        steps: &[
            "In the PingFederate administrative console open Applications, SP Connections, and create a connection with the Browser SSO profile for SAML 2.0.",
            "Import the SP metadata you download below, or enter the SP entity ID below as the partner's entity ID and the ACS URL below as its HTTP-POST assertion consumer service endpoint.",
            "In the attribute contract, send the email as the SAML subject (email address format) or as an attribute named mail.",
            "Sign the assertion or the response with RSA-SHA256 and activate the connection.",
            "Under System, Protocol Metadata, Metadata Export, export the metadata with your signing certificate and paste the XML into the metadata field.",
        ],
    },
    VendorHelp {
        id: "generic",
        name: "Another SAML 2.0 identity provider",
        steps: &[
            "Create a SAML 2.0 application for latchkey in your identity provider.",
            "Give it the SP entity ID below as the audience (entity ID) and the ACS URL below as the assertion consumer service, HTTP-POST binding; or import the SP metadata you download below.",
            "Have it sign the response or the assertion with SHA-256 or stronger, and send the email as the NameID (or as an attribute you name under Email attribute).",
            "Paste its IdP metadata XML (with its signing certificate) into the metadata field.",
        ],
    },
];

fn vendor_name(id: &str) -> &'static str {
    VENDORS.iter().find(|v| v.id == id).map_or("Another SAML 2.0 identity provider", |v| v.name)
}

/// A refused sign-in of the failure log, in words an administrator can act on.
pub fn plain(code: &str) -> &'static str {
    match code {
        "too_large" | "malformed" => "The answer was not a SAML 2.0 response latchkey can read.",
        "dtd_forbidden" | "comment_in_value" | "comment_in_nameid" | "signature_wrapping" | "entity_expansion" => {
            "The answer had the shape of a known attack and was refused. If this was your own identity provider, contact your vendor."
        }
        "unsupported_algorithm" => {
            "The identity provider signed with SHA-1 (or an unusual transform). Set it to sign with SHA-256."
        }
        "missing_signature" => {
            "The answer was not signed. Have the identity provider sign the response or the assertion."
        }
        "invalid_signature" => {
            "The signature is not from a certificate in the metadata you pasted. If the identity provider changed its certificate, paste its current metadata."
        }
        "no_idp_certificate" | "bad_idp_certificate" | "no_certificate" => {
            "The saved metadata has no usable signing certificate. Paste the metadata again."
        }
        "encrypted_assertion" => {
            "The identity provider encrypts assertions. Turn assertion encryption off for this application."
        }
        "missing_assertion" | "missing_authn_statement" => "The answer carried no sign-in statement.",
        "status_not_success" => {
            "The identity provider answered with an error, most often because the person is not assigned to the application there."
        }
        "wrong_issuer" => {
            "The answer came from another identity provider than the metadata names. Paste the right metadata."
        }
        "wrong_destination" | "wrong_recipient" => {
            "The identity provider sent the answer to another address. Set its ACS (reply) URL to the one shown above."
        }
        "missing_audience" | "wrong_audience" => {
            "The answer was meant for another application. Set the identity provider's audience (entity ID) to the SP entity ID shown above."
        }
        "no_bearer_confirmation" | "unsupported_condition" => "The answer has conditions latchkey cannot accept.",
        "expired" | "not_yet_valid" => {
            "The answer was outside its validity window: the clocks of the identity provider and latchkey differ too much, or it was sent late."
        }
        "in_response_to_mismatch" | "unknown_request" | "wrong_browser" | "wrong_relay_state" => {
            "The answer did not match a sign-in started in that browser (it expired, came from another browser, or was started elsewhere)."
        }
        "idp_initiated_disabled" => {
            "A sign-in started at the identity provider, which this organisation does not accept."
        }
        "replayed" => "The same answer was presented a second time and refused.",
        "no_email" => {
            "No email address was found in the answer. Have the identity provider send it, or name the attribute that holds it under Email attribute."
        }
        "domain_not_verified" => {
            "The person's email domain is not verified for this organisation. Ask your vendor to verify the domain."
        }
        "no_access" => {
            "The person has no account here. Assign them a license first, or turn on accounts made at first sign-in."
        }
        "sso_disabled" => "Single sign-on was off.",
        _ => "The answer was refused.",
    }
}

pub struct FailureView {
    pub at: view::When,
    pub code: String,
    pub plain: &'static str,
    pub detail: String,
    pub issuer: String,
    pub name_id: String,
}

pub struct Current {
    pub vendor: String,
    pub vendor_name: &'static str,
    pub enabled: bool,
    pub tested: bool,
    pub tested_at: Option<view::When>,
    pub idp_entity_id: String,
    pub idp_sso_url: String,
    pub email_attribute: String,
    pub allow_idp_initiated: bool,
    pub jit_accounts: bool,
    pub allow_sha1: bool,
    pub updated: view::When,
}

#[derive(Template)]
#[template(path = "portal/sso.html")]
struct SsoPage {
    shell: Shell,
    entity: Entity,
    current: Option<Current>,
    vendor: String,
    vendors: &'static [VendorHelp],
    sp_entity_id: String,
    acs_url: String,
    login_url: String,
    domains: Vec<(String, bool)>,
    domains_text: String,
    failures: Vec<FailureView>,
}

/// `?vendor=` chooses whose help to show before anything is saved.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    vendor: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    crate::error::ApiQuery(q): crate::error::ApiQuery<PageQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = &state.db.pool;
    let now = state.now();
    let result = async {
        let c = store::sso::config(pool, &e.id).await?;
        let claimed = store::sso::domains(pool, &e.id).await?;
        let verified = store::sso::verified_domains(pool, &e.id).await?;
        let failures = store::sso::failures(pool, &e.id, now - store::sso::FAILURE_RETENTION_MS).await?;
        Ok::<_, sqlx::Error>((c, claimed, verified, failures))
    }
    .await;
    let (c, claimed, verified, failures) = match result {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let current = c.as_ref().map(|c| Current {
        vendor: c.vendor.clone(),
        vendor_name: vendor_name(&c.vendor),
        enabled: c.enabled == 1,
        tested: config::is_tested(c),
        tested_at: c.tested_at.filter(|_| config::is_tested(c)).map(view::when),
        idp_entity_id: c.idp_entity_id.clone(),
        idp_sso_url: c.idp_sso_redirect_url.clone().or(c.idp_sso_post_url.clone()).unwrap_or_default(),
        email_attribute: c.email_attribute.clone().unwrap_or_default(),
        allow_idp_initiated: c.allow_idp_initiated == 1,
        jit_accounts: c.jit_accounts == 1,
        allow_sha1: c.allow_sha1 == 1,
        updated: view::when(c.updated_at),
    });
    let vendor = q
        .vendor
        .filter(|v| v.parse::<Vendor>().is_ok())
        .or_else(|| current.as_ref().map(|c| c.vendor.clone()))
        .unwrap_or_else(|| "azure-ad".into());
    let page = SsoPage {
        shell: Shell::new(&state, &headers, &v, "sso", Some(&e.slug)),
        current,
        vendor,
        vendors: VENDORS,
        sp_entity_id: config::sp_entity_id(&state, &e.slug),
        acs_url: config::acs_url(&state, &e.slug),
        login_url: policy::login_url(&state, &e.slug),
        domains_text: claimed.join("\n"),
        domains: claimed.into_iter().map(|d| (d.clone(), verified.contains(&d))).collect(),
        failures: failures
            .into_iter()
            .take(50)
            .map(|f| FailureView {
                at: view::when(f.at),
                plain: plain(&f.code),
                code: f.code,
                detail: f.detail,
                issuer: f.issuer.unwrap_or_default(),
                name_id: f.name_id.unwrap_or_default(),
            })
            .collect(),
        entity: e,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: Option<String>,
    vendor: Option<String>,
    #[serde(default)]
    metadata_xml: String,
    #[serde(default)]
    metadata_url: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    email_attribute: String,
    /// Checkboxes: present when ticked.
    allow_idp_initiated: Option<String>,
    jit_accounts: Option<String>,
    allow_sha1: Option<String>,
}

fn sso_path(e: &Entity) -> String {
    format!("/portal/entities/{}/sso", e.slug)
}

/// A refusal of the configuration functions as a message on the page.
fn refused(state: &AppState, to: &str, e: ApiError) -> Response {
    match e {
        ApiError::Problem(p) if p.code == "sso_untested" => see_other(
            state,
            to,
            false,
            "Run Test sign-in with these identity provider settings first; once it passes you can enable single sign-on.",
        ),
        ApiError::Problem(p) if p.code == "invalid_metadata" => {
            see_other(state, to, false, &format!("That metadata cannot be used: {}", p.detail))
        }
        e => super::refused(state, to, e),
    }
}

/// Save the IdP settings: the first save makes the configuration (off), later ones change what
/// the form holds and keep the saved metadata when the field is left empty.
pub async fn save(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<SettingsForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = sso_path(&e);
    let Some(f) = f else { return see_other(&state, &back, false, "The form was incomplete; try again.") };
    let existing = match store::sso::config(&state.db.pool, &e.id).await {
        Ok(c) => c,
        Err(err) => return fail(err),
    };
    let xml = f.metadata_xml.trim();
    let url = f.metadata_url.trim();
    if existing.is_none() && xml.is_empty() && url.is_empty() {
        return see_other(
            &state,
            &back,
            false,
            "Paste your identity provider's metadata XML to set up single sign-on.",
        );
    }
    if !xml.is_empty() && !url.is_empty() {
        return see_other(&state, &back, false, "Give either the metadata XML or its URL, not both.");
    }
    let body = SsoBody {
        vendor: f.vendor,
        idp_metadata_xml: (!xml.is_empty()).then(|| xml.to_string()),
        idp_metadata_url: (!url.is_empty()).then(|| url.to_string()),
        email_domains: Some(
            f.domains
                .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        email_attribute: Some(Some(f.email_attribute)),
        allow_idp_initiated: Some(f.allow_idp_initiated.is_some()),
        jit_accounts: Some(f.jit_accounts.is_some()),
        allow_sha1: Some(f.allow_sha1.is_some()),
        ..SsoBody::default()
    };
    let mode = if existing.is_some() { Mode::Patch } else { Mode::Replace };
    match config::change(&state, &ctx.by(v.actor()), false, &e, body, mode).await {
        Ok(_) => {
            let text = if existing.is_some() {
                "Settings saved."
            } else {
                "Single sign-on is set up but off. Run Test sign-in next."
            };
            see_other(&state, &back, true, text)
        }
        Err(err) => refused(&state, &back, err),
    }
}

#[derive(Deserialize)]
pub struct SwitchForm {
    csrf: Option<String>,
    enabled: Option<String>,
}

/// Turn single sign-on on or off (`enabled` = `true` | `false`).
pub async fn switch(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<SwitchForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = sso_path(&e);
    let on = match f.and_then(|f| f.enabled).as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => return see_other(&state, &back, false, "Choose to enable or disable."),
    };
    let body = SsoBody { enabled: Some(on), ..SsoBody::default() };
    match config::change(&state, &ctx.by(v.actor()), false, &e, body, Mode::Patch).await {
        Ok(_) if on => see_other(
            &state,
            &back,
            true,
            "Single sign-on is on: people of your verified domains now sign in with your identity provider.",
        ),
        Ok(_) => see_other(&state, &back, true, "Single sign-on is off: people sign in with their passwords again."),
        Err(err) => refused(&state, &back, err),
    }
}

/// Start a test sign-in from the page's link. A link, not a form: browsers hold a form's
/// redirects to the page's `form-action` (this site only), and the test goes on to the IdP.
/// It changes nothing: the signed test link only runs a sign-in that signs no one in.
pub async fn test_link(State(state): State<AppState>, v: Viewer, ApiPath(slug): ApiPath<String>) -> Response {
    start_test(&state, &v, &slug).await
}

/// Start a test sign-in: off to the signed test link, which runs a real sign-in at the IdP and
/// ends on a page of what the IdP sent.
pub async fn test(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    start_test(&state, &v, &slug).await
}

async fn start_test(state: &AppState, v: &Viewer, slug: &str) -> Response {
    let e = match entity_of(state, v, slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    match store::sso::config(&state.db.pool, &e.id).await {
        Ok(Some(_)) => {}
        Ok(None) => return see_other(state, &sso_path(&e), false, "Save your identity provider's metadata first."),
        Err(err) => return fail(err),
    }
    let (path, _) = config::test_link(state, &e, state.now());
    Redirect::to(&path).into_response()
}

/// The SP metadata as a file to hand to the IdP.
pub async fn sp_metadata(State(state): State<AppState>, v: Viewer, ApiPath(slug): ApiPath<String>) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let c = match store::sso::config(&state.db.pool, &e.id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return see_other(
                &state,
                &sso_path(&e),
                false,
                "The SP metadata exists once the settings are saved; until then give your identity provider the values shown.",
            );
        }
        Err(err) => return fail(err),
    };
    let Ok(cert) = base64::engine::general_purpose::STANDARD.decode(&c.sp_cert) else {
        return fail(ApiError::internal("stored SP certificate is not base64"));
    };
    let xml = sp::sp_metadata_xml(&config::sp_entity_id(&state, &e.slug), &config::acs_url(&state, &e.slug), &cert);
    let mut r = xml.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"latchkey-sp-{}.xml\"", e.slug)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// "Remove single sign-on?" before the API's `DELETE .../sso`.
pub async fn remove_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = &state.db.pool;
    let (c, domains) = match async {
        Ok::<_, sqlx::Error>((store::sso::config(pool, &e.id).await?, store::sso::domains(pool, &e.id).await?))
    }
    .await
    {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let Some(c) = c else { return see_other(&state, &sso_path(&e), false, "Single sign-on is not set up.") };
    let domains = if domains.is_empty() { "none".to_string() } else { domains.join(", ") };
    let page = super::admin::Confirm {
        shell: Shell::new(&state, &headers, &v, "sso", Some(&e.slug)),
        heading: format!("Remove single sign-on of {}?", e.name),
        text: format!(
            "The settings of {} and the email domains ({domains}, verified ones included) are removed. People sign in with passwords again (someone without one uses “Forgot password”).",
            vendor_name(&c.vendor)
        ),
        note: if c.enabled == 1 {
            "Single sign-on is on: it goes off at once, and everyone signed in through your identity provider is signed out. To set it up again you paste the metadata, test and ask your vendor to verify the domains again.".into()
        } else {
            "To set it up again you paste the metadata, test and ask your vendor to verify the domains again.".into()
        },
        action: format!("{}/remove", sso_path(&e)),
        fields: vec![],
        button: "Remove single sign-on",
        cancel: sso_path(&e),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

/// Remove the configuration, as `DELETE /api/v1/entities/{slug}/sso`.
pub async fn remove(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = sso_path(&e);
    match config::remove(&state, &ctx.by(v.actor()), &e).await {
        Ok(()) => {
            see_other(&state, &back, true, "Single sign-on is removed: people sign in with their passwords again.")
        }
        Err(err) => super::refused_with_code(&state, &back, err),
    }
}

super::csrf_forms!(SettingsForm, SwitchForm);
