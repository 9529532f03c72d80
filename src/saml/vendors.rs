//! Vendor presets: where each IdP really puts the user's email.

use std::{fmt, str::FromStr};

use super::{acs::ValidatedAssertion, xml::NAMEID_EMAIL};

pub const AZURE_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
pub const AZURE_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    AzureAd,
    Okta,
    OneLogin,
    PingFederate,
    Generic,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [Self::AzureAd, Self::Okta, Self::OneLogin, Self::PingFederate, Self::Generic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureAd => "azure-ad",
            Self::Okta => "okta",
            Self::OneLogin => "onelogin",
            Self::PingFederate => "pingfederate",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVendor(pub String);

impl fmt::Display for UnknownVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown IdP vendor {:?}: use azure-ad, okta, onelogin, pingfederate or generic", self.0)
    }
}

impl std::error::Error for UnknownVendor {}

impl FromStr for Vendor {
    type Err = UnknownVendor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownVendor(s.to_string()))
    }
}

enum Source {
    Attr(&'static str),
    /// NameID, whatever its format, when it looks like an email.
    NameId,
    /// NameID only when its Format is emailAddress.
    EmailNameId,
}

/// The user's email from a validated assertion: the admin's override attribute first, then the
/// vendor's usual places. Lower-cased; must look like an email. `Err` lists the attribute names
/// that did arrive (never their values), for the error page.
pub fn find_email(vendor: Vendor, override_attr: Option<&str>, a: &ValidatedAssertion) -> Result<String, Vec<String>> {
    use Source::*;
    let preset: &[Source] = match vendor {
        Vendor::AzureAd => &[Attr(AZURE_EMAIL), Attr(AZURE_UPN)],
        Vendor::Okta => &[EmailNameId, Attr("email")],
        Vendor::OneLogin => &[NameId, Attr("User.email")],
        Vendor::PingFederate => &[Attr("mail"), Attr("email"), NameId],
        Vendor::Generic => &[NameId],
    };
    let attr = |name: &str| -> Option<String> {
        a.attributes.iter().filter(|(n, _)| n == name).flat_map(|(_, vs)| vs).find_map(|v| email_shaped(v))
    };
    let name_id = || a.name_id.as_deref().and_then(email_shaped);
    if let Some(found) = override_attr.map(str::trim).filter(|o| !o.is_empty()).and_then(attr) {
        return Ok(found);
    }
    for source in preset {
        let found = match source {
            Attr(name) => attr(name),
            NameId => name_id(),
            EmailNameId if a.name_id_format.as_deref() == Some(NAMEID_EMAIL) => name_id(),
            EmailNameId => None,
        };
        if let Some(found) = found {
            return Ok(found);
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (n, _) in &a.attributes {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    Err(names)
}

/// Lower-cased `local@domain.tld` with nothing odd in it, or None.
fn email_shaped(v: &str) -> Option<String> {
    let v = v.trim();
    let (local, domain) = v.split_once('@')?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && v.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '@' | '<' | '>' | '"' | ',' | ';'));
    ok.then(|| v.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::{
        acs::{SignedElement, validate_response},
        test_support::*,
    };

    fn assertion(name_id: Option<&str>, format: Option<&str>, attrs: &[(&str, &[&str])]) -> ValidatedAssertion {
        ValidatedAssertion {
            assertion_id: "_a".into(),
            issuer: "https://idp.example/".into(),
            in_response_to: None,
            name_id: name_id.map(str::to_string),
            name_id_format: format.map(str::to_string),
            attributes: attrs
                .iter()
                .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
            not_on_or_after_ms: 0,
            session_index: None,
            signed_element: SignedElement::Assertion,
        }
    }

    #[test]
    fn vendor_names_parse() {
        for v in Vendor::ALL {
            assert_eq!(v.as_str().parse::<Vendor>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        let e = "adfs".parse::<Vendor>().unwrap_err();
        assert!(e.to_string().contains("azure-ad"), "{e}");
    }

    #[test]
    fn every_vendor_fixture_yields_the_users_email() {
        for vendor in VENDORS {
            let md = vendor_metadata(vendor);
            let a = validate_response(
                &read(&format!("{vendor}/response.b64")),
                &expected(&md.entity_id, &md.signing_certs_der),
            )
            .unwrap();
            let v: Vendor = vendor.parse().unwrap();
            assert_eq!(find_email(v, None, &a), Ok("alice@acme.example".to_string()), "{vendor}");
        }
    }

    #[test]
    fn each_vendor_looks_where_its_idp_puts_the_email() {
        let email = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
        let unspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
        // Azure: the emailaddress claim, else the UPN claim; never the opaque persistent NameID.
        let a = assertion(Some("x@y.example"), None, &[(AZURE_UPN, &["Bob@Corp.Example"])]);
        assert_eq!(find_email(Vendor::AzureAd, None, &a), Ok("bob@corp.example".into()));
        let a = assertion(None, None, &[(AZURE_UPN, &["upn@corp.example"]), (AZURE_EMAIL, &["mail@corp.example"])]);
        assert_eq!(find_email(Vendor::AzureAd, None, &a), Ok("mail@corp.example".into()));
        // Okta: an emailAddress NameID, else `email` (gosaml2's real sample has an unspecified NameID).
        let a = assertion(Some("russellhaering"), Some(unspecified), &[("email", &["Russell@Scaleft.com"])]);
        assert_eq!(find_email(Vendor::Okta, None, &a), Ok("russell@scaleft.com".into()));
        let a = assertion(Some("x@corp.example"), Some(unspecified), &[("email", &["e@corp.example"])]);
        assert_eq!(find_email(Vendor::Okta, None, &a), Ok("e@corp.example".into()));
        let a = assertion(Some("n@corp.example"), Some(email), &[("email", &["e@corp.example"])]);
        assert_eq!(find_email(Vendor::Okta, None, &a), Ok("n@corp.example".into()));
        // OneLogin: NameID, then User.email.
        let a = assertion(Some("12345"), None, &[("User.email", &["u@corp.example"])]);
        assert_eq!(find_email(Vendor::OneLogin, None, &a), Ok("u@corp.example".into()));
        // PingFederate: mail, email, then NameID.
        let a = assertion(
            Some("n@corp.example"),
            Some(email),
            &[("email", &["e@corp.example"]), ("mail", &["m@corp.example"])],
        );
        assert_eq!(find_email(Vendor::PingFederate, None, &a), Ok("m@corp.example".into()));
        let a = assertion(Some("n@corp.example"), Some(email), &[("firstname", &["N"])]);
        assert_eq!(find_email(Vendor::PingFederate, None, &a), Ok("n@corp.example".into()));
        // Generic: the override, then an email-shaped NameID.
        let a = assertion(Some("N@Corp.Example"), None, &[]);
        assert_eq!(find_email(Vendor::Generic, None, &a), Ok("n@corp.example".into()));
    }

    #[test]
    fn the_override_attribute_comes_first_for_every_vendor() {
        let a = assertion(
            Some("n@corp.example"),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            &[
                ("email", &["e@corp.example"]),
                (AZURE_EMAIL, &["a@corp.example"]),
                ("workEmail", &["", "W@Corp.Example"]),
            ],
        );
        for v in Vendor::ALL {
            assert_eq!(find_email(v, Some("workEmail"), &a), Ok("w@corp.example".into()), "{v}");
            // An override that did not arrive falls back to the preset.
            assert!(find_email(v, Some("missing"), &a).is_ok(), "{v}");
        }
    }

    #[test]
    fn no_email_lists_the_attribute_names_that_arrived_never_values() {
        let a = assertion(
            Some("opaque-id"),
            None,
            &[("firstName", &["Alice"]), ("email", &["not an email"]), ("firstName", &["A"])],
        );
        for v in Vendor::ALL {
            let names = find_email(v, None, &a).unwrap_err();
            assert_eq!(names, vec!["firstName".to_string(), "email".to_string()], "{v}");
        }
    }

    #[test]
    fn only_plausible_emails_are_returned() {
        for bad in [
            "",
            "alice",
            "@corp.example",
            "alice@",
            "alice@corp",
            "a b@corp.example",
            "a@corp..example",
            "a@@corp.example",
            "a@corp.example.",
            "<a@corp.example>",
            "a@corp_example.com",
        ] {
            assert_eq!(email_shaped(bad), None, "{bad:?}");
        }
        assert_eq!(email_shaped("  Alice.Smith+x@Sub.Corp.Example \n"), Some("alice.smith+x@sub.corp.example".into()));
    }
}
