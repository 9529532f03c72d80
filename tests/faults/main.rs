//! The fault suite: the real `latchkey` binary as separate processes, killed with SIGKILL or
//! cut off from its database and its mail server, against real PostgreSQL (a private instance
//! where a test restarts it, so no other test or process is touched), real SQLite files and a
//! real SMTP server. Each test says what must hold after the fault.
//!
//! PostgreSQL tests need the server programs (Debian: /usr/lib/postgresql/*/bin); without them
//! they skip with a note, except in CI (`CI=true`), where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod database_restart;
mod mail;
mod replicas;
mod sqlite;
mod support;
