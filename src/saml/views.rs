//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! build their answers as these types, so the document and the answer are one definition.
//!
//! Members are declared in alphabetical order (of their names in JSON): the answers were built
//! with `json!` before, whose objects serialise their members sorted, and the same order keeps
//! them byte for byte as they were (the tests below check it).

use serde::Serialize;
use utoipa::ToSchema;

/// A signing certificate of the IdP metadata; every one listed is trusted.
#[derive(Serialize, ToSchema)]
pub struct SsoConfigIdpCertificatesItem {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub not_after: String,
    /// the fingerprint of its DER, lower-case hex
    pub sha256: String,
    /// its subject, `SHORTNAME=value` joined with `, ` (empty when it has none)
    pub subject: String,
}

/// What the SSO view warns about: a certificate warning or a failed metadata refresh.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SsoConfigWarningsItem {
    Certificate(SsoCertificateWarning),
    Metadata(SsoMetadataWarning),
}

/// The last valid signing certificate of the IdP expires within 30 days, or has expired.
#[derive(Serialize, ToSchema)]
pub struct SsoCertificateWarning {
    /// one of: `certificate_expires_soon`, `certificate_expired`
    #[schema(value_type = String, pattern = "^(certificate_expires_soon|certificate_expired)$")]
    pub code: &'static str,
    /// what it means and what to do, in words
    pub detail: String,
    /// the certificate's expiry; RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub not_after: String,
    /// the certificate's fingerprint (of its DER, lower-case hex)
    pub sha256: String,
}

/// The last refresh of the metadata failed; the configuration fetched before stays in use.
#[derive(Serialize, ToSchema)]
pub struct SsoMetadataWarning {
    /// when the refresh failed; RFC 3339, UTC, second precision
    #[schema(format = DateTime, required = true)]
    pub at: Option<String>,
    /// always `metadata_refresh_failed`
    #[schema(value_type = String, pattern = "^metadata_refresh_failed$")]
    pub code: &'static str,
    /// why, in words
    pub detail: String,
}

/// The stored configuration and what to give the IdP.
#[derive(Serialize, ToSchema)]
pub struct SsoConfig {
    /// assertion consumer service (HTTP-POST binding)
    #[schema(format = "uri")]
    pub acs_url: String,
    /// accept IdP-initiated responses
    pub allow_idp_initiated: bool,
    /// accept SHA-1 signatures
    pub allow_sha1: bool,
    /// the assertion attribute that holds the email; null: the vendor's default
    #[schema(max_length = 256, required = true)]
    pub email_attribute: Option<String>,
    /// domains whose addresses sign in through this IdP: claimed by an administrator or verified by the vendor
    #[schema(max_items = 100)]
    pub email_domains: Vec<String>,
    /// true: every address in the verified domains signs in through this IdP only
    pub enabled: bool,
    /// every signing certificate of the metadata
    pub idp_certificates: Vec<SsoConfigIdpCertificatesItem>,
    /// the IdP's entity ID
    pub idp_entity_id: String,
    /// where the metadata is fetched from; null: uploaded
    #[schema(format = "uri", required = true)]
    pub idp_metadata_url: Option<String>,
    /// the IdP metadata in use (as uploaded or last fetched)
    pub idp_metadata_xml: String,
    /// the IdP's SSO endpoint (HTTP-Redirect binding preferred, else HTTP-POST)
    #[schema(required = true)]
    pub idp_sso_url: Option<String>,
    /// create accounts for unknown users of the verified domains at first sign-in
    pub jit_accounts: bool,
    /// SP-initiated sign-in
    #[schema(format = "uri")]
    pub login_url: String,
    /// why the last refresh failed (the last good metadata stays in use); null: it did not
    #[schema(required = true)]
    pub metadata_error: Option<String>,
    /// when the last refresh failed; RFC 3339, UTC, second precision
    #[schema(format = DateTime, required = true)]
    pub metadata_error_at: Option<String>,
    /// the last successful fetch; RFC 3339, UTC, second precision; null: uploaded
    #[schema(format = DateTime, required = true)]
    pub metadata_fetched_at: Option<String>,
    /// this SP's entity ID (= `sp_metadata_url`)
    #[schema(format = "uri")]
    pub sp_entity_id: String,
    /// this SP's metadata, to give the IdP
    #[schema(format = "uri")]
    pub sp_metadata_url: String,
    /// a test sign-in with the current IdP configuration passed
    pub tested: bool,
    /// when that test passed; null: not tested
    #[schema(format = DateTime, required = true)]
    pub tested_at: Option<String>,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// one of: `azure-ad`, `okta`, `onelogin`, `pingfederate`, `generic`
    pub vendor: String,
    /// the domains the vendor verified for this entity: only these route sign-ins at /login, decide who must use SSO, and are the addresses this IdP may sign in (and create just in time). A PUT or PATCH with the operator key verifies the domains it sends.
    pub verified_email_domains: Vec<String>,
    /// from the IdP metadata: AuthnRequests are signed with the SP key
    pub want_authn_requests_signed: bool,
    /// what needs attention (empty: nothing)
    pub warnings: Vec<SsoConfigWarningsItem>,
}

/// A test sign-in's link.
#[derive(Serialize, ToSchema)]
pub struct SsoTest {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// the page to open in a browser; it may be opened again until it expires
    #[schema(format = "uri")]
    pub url: String,
}

/// A refused SAML response.
#[derive(Serialize, ToSchema)]
pub struct SsoFailure {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub at: String,
    /// the stable code shown on the refusal page (e.g. `invalid_signature`, `domain_not_verified`, `no_access`, `replayed`)
    pub code: String,
    /// why, in words
    pub detail: String,
    /// the issuer the response claimed; null: none
    #[schema(required = true)]
    pub issuer: Option<String>,
    /// the NameID the response claimed; null: none
    #[schema(required = true)]
    pub name_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_doc::assert_as_json_macro;

    #[test]
    fn views_serialise_their_members_sorted() {
        let at = || "2026-11-30T09:00:00Z".to_string();
        let s = |v: &str| v.to_string();
        assert_as_json_macro(&SsoConfig {
            acs_url: s("https://id/saml/acme/acs"),
            allow_idp_initiated: true,
            allow_sha1: false,
            email_attribute: None,
            email_domains: vec![s("acme.example")],
            enabled: true,
            idp_certificates: vec![SsoConfigIdpCertificatesItem {
                not_after: at(),
                sha256: s("3f"),
                subject: s("CN=x"),
            }],
            idp_entity_id: s("idp"),
            idp_metadata_url: Some(s("https://idp/metadata")),
            idp_metadata_xml: s("<EntityDescriptor/>"),
            idp_sso_url: None,
            jit_accounts: false,
            login_url: s("https://id/saml/acme/login"),
            metadata_error: Some(s("timeout")),
            metadata_error_at: Some(at()),
            metadata_fetched_at: None,
            sp_entity_id: s("https://id/saml/acme/metadata"),
            sp_metadata_url: s("https://id/saml/acme/metadata"),
            tested: false,
            tested_at: None,
            updated_at: at(),
            vendor: s("okta"),
            verified_email_domains: vec![],
            want_authn_requests_signed: false,
            warnings: vec![
                SsoConfigWarningsItem::Certificate(SsoCertificateWarning {
                    code: "certificate_expired",
                    detail: s("d"),
                    not_after: at(),
                    sha256: s("3f"),
                }),
                SsoConfigWarningsItem::Metadata(SsoMetadataWarning {
                    at: None,
                    code: "metadata_refresh_failed",
                    detail: s("d"),
                }),
            ],
        });
        assert_as_json_macro(&SsoTest { expires_at: at(), url: s("https://id/saml/acme/test?x") });
        assert_as_json_macro(&SsoFailure {
            at: at(),
            code: s("replayed"),
            detail: s("d"),
            issuer: None,
            name_id: Some(s("n")),
        });
    }
}
