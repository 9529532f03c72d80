//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! still build these bodies with `json!`: moving them onto these types (so the compiler keeps the
//! two equal) is open work of issue 9.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct SsoConfigIdpCertificatesItem {
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub subject: Option<String>,
    #[schema(format = DateTime)]
    pub not_after: String,
}

#[derive(Serialize, ToSchema)]
pub struct SsoConfigWarningsItem {
    /// one of: `certificate_expires_soon`, `certificate_expired`, `metadata_refresh_failed`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// The stored configuration (without the metadata XML) and what to give the IdP.
#[derive(Serialize, ToSchema)]
pub struct SsoConfig {
    /// one of: `azure-ad`, `okta`, `onelogin`, `pingfederate`, `generic`
    pub vendor: String,
    /// domains whose addresses sign in through this IdP (default none); a domain belongs to one entity only, public mail providers cannot be claimed; the list replaces the previous one
    #[schema(max_items = 100)]
    pub email_domains: Vec<String>,
    /// the assertion attribute that holds the email; null or empty: the vendor's default
    #[schema(max_length = 256, required = true)]
    pub email_attribute: Option<String>,
    /// true: every address in the verified domains signs in through this IdP only
    pub enabled: bool,
    /// accept IdP-initiated responses; absent or null: true
    pub allow_idp_initiated: bool,
    /// create accounts for unknown users of the claimed domains at first sign-in; absent or null: false
    pub jit_accounts: bool,
    /// accept SHA-1 signatures; absent or null: false
    pub allow_sha1: bool,
    /// this SP's entity ID (= `sp_metadata_url`)
    #[schema(format = "uri")]
    pub sp_entity_id: String,
    /// assertion consumer service (HTTP-POST binding)
    #[schema(format = "uri")]
    pub acs_url: String,
    #[schema(format = "uri")]
    pub sp_metadata_url: String,
    /// SP-initiated sign-in
    #[schema(format = "uri")]
    pub login_url: String,
    pub idp_entity_id: String,
    /// the IdP's SSO endpoint (HTTP-Redirect binding preferred, else HTTP-POST)
    #[schema(required = true)]
    pub idp_sso_url: Option<String>,
    pub idp_certificates: Vec<SsoConfigIdpCertificatesItem>,
    /// from the IdP metadata: AuthnRequests are signed with the SP key
    pub want_authn_requests_signed: bool,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// the domains the vendor verified for this entity: only these route sign-ins at /login, decide who must use SSO, and are the addresses this IdP may sign in (and create just in time). A PUT or PATCH with the operator key verifies the domains it sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub verified_email_domains: Option<Vec<String>>,
    /// the IdP metadata as uploaded
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub idp_metadata_xml: Option<String>,
    /// a test sign-in with the current IdP configuration passed
    pub tested: bool,
    /// when that test passed
    #[schema(format = DateTime, required = true)]
    pub tested_at: Option<String>,
    /// where the metadata is fetched from (null: uploaded)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_metadata_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub metadata_fetched_at: Option<String>,
    /// why the last refresh failed (the last good metadata stays in use)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub metadata_error_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub warnings: Option<Vec<SsoConfigWarningsItem>>,
}

/// A test sign-in's link.
#[derive(Serialize, ToSchema)]
pub struct SsoTest {
    #[schema(format = "uri")]
    pub url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A refused SAML response.
#[derive(Serialize, ToSchema)]
pub struct SsoFailure {
    #[schema(format = DateTime)]
    pub at: String,
    /// the stable code shown on the refusal page (e.g. `invalid_signature`, `domain_not_verified`, `no_access`, `replayed`)
    pub code: String,
    pub detail: String,
    #[schema(required = true)]
    pub issuer: Option<String>,
    #[schema(required = true)]
    pub name_id: Option<String>,
}
