//! The integration suite: one binary, every test against the real server over HTTP.
//! SQLite by default; set `LATCHKEY_TEST_DATABASE_URL=postgres://...` to run it on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod audit;
mod browser;
mod chromium;
mod cli;
mod helpers;
mod licenses;
mod mail;
mod mfa;
mod operations;
mod portal;
mod private_networks;
mod product;
mod scim;
mod seats;
mod secrets;
mod sso;
mod sso_lifecycle;
mod sso_metadata;
mod tokens;
