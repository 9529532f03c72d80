//! SAML 2.0 single sign-on per entity.

pub mod policy;

pub use policy::{sso_entity_for_email, sso_login_url_for};
