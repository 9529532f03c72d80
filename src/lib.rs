//! latchkey: identity, SSO and license seats for desktop software vendors.

#[macro_use]
pub mod api_doc;
pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod browser;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod licenses;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod onprem;
pub mod ops;
pub mod portal;
pub mod product;
pub mod saml;
pub mod scim;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod web;
