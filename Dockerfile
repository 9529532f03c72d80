# syntax=docker/dockerfile:1
# latchkey's container image: a build stage with the Rust toolchain and the -dev packages, and a
# small Debian runtime stage with only the shared libraries the binary links (docs/packaging.md).
#
#   docker build -t latchkey .
#   docker run -d --name latchkey -p 8080:8080 -v latchkey-data:/var/lib/latchkey \
#       -e LATCHKEY_PUBLIC_URL=http://localhost:8080 latchkey
#   docker exec latchkey latchkey operator-key create --name me
#
# The embedded SQLite database, the master key (created on first start) and mails without SMTP
# live in the volume /var/lib/latchkey. Back up the database and the master key
# (docs/operations.md). For PostgreSQL set LATCHKEY_DATABASE_URL=postgres://...

ARG DEBIAN=bookworm

FROM rust:1-${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target caches speed up rebuilds; the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin latchkey \
 && install -m 0755 target/release/latchkey /usr/local/bin/latchkey

FROM debian:${DEBIAN}-slim
# The shared libraries the binary links (`ldd latchkey`): OpenSSL, libxml2, xmlsec1 with its
# OpenSSL backend (which brings libxslt and libltdl); CA certificates for SMTP over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libxml2 libxmlsec1 libxmlsec1-openssl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/latchkey --shell /usr/sbin/nologin latchkey \
 && install -d -m 0700 -o latchkey -g latchkey /var/lib/latchkey
COPY --from=build /usr/local/bin/latchkey /usr/local/bin/latchkey

USER latchkey:latchkey
WORKDIR /var/lib/latchkey
ENV LATCHKEY_LISTEN=0.0.0.0:8080 \
    LATCHKEY_DATABASE_URL=sqlite:///var/lib/latchkey/latchkey.db?mode=rwc \
    LATCHKEY_MASTER_KEY_FILE=/var/lib/latchkey/master.key \
    LATCHKEY_MAIL_DIR=/var/lib/latchkey/outbox \
    LATCHKEY_LOG_FORMAT=json
VOLUME ["/var/lib/latchkey"]
EXPOSE 8080
# SIGTERM drains: requests in flight finish, then the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
