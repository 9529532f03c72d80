-- Audit log (issue 10); SQLite twin of migrations/postgres/0007_audit.sql.
--
-- Writers append events with `seq`, `hash` and `seal_order` NULL, in the transaction of the change they
-- record. One sealer at a time (the lease in `audit_sealer`) gives each event its place in its
-- chain (`chain` = the entity's id, '' for the operator's own events), its hash, and `seal_order`:
-- the global order in which events were sealed, which readers page by.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    chain       TEXT NOT NULL,
    entity      TEXT,
    at          BIGINT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT,
    action      TEXT NOT NULL,
    targets     TEXT NOT NULL,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    details     TEXT NOT NULL,
    seq         BIGINT,
    hash        TEXT,
    seal_order  BIGINT
);
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events(chain, seq);
CREATE UNIQUE INDEX audit_events_seal_order ON audit_events(seal_order);
CREATE INDEX audit_events_unsealed ON audit_events(at, id) WHERE seal_order IS NULL;
-- Pages of one entity, of the operator API, filtered by action or actor or time.
CREATE INDEX audit_events_chain_sealed ON audit_events(chain, seal_order);
CREATE INDEX audit_events_chain_action ON audit_events(chain, action, seal_order);
CREATE INDEX audit_events_chain_actor ON audit_events(chain, actor_id, seal_order);
CREATE INDEX audit_events_chain_at ON audit_events(chain, at);
CREATE INDEX audit_events_action ON audit_events(action, seal_order);
CREATE INDEX audit_events_actor ON audit_events(actor_id, seal_order);
CREATE INDEX audit_events_chain_actor_name ON audit_events(chain, actor_name, seal_order);
CREATE INDEX audit_events_actor_name ON audit_events(actor_name, seal_order);
CREATE INDEX audit_events_at ON audit_events(at);

-- The head of each chain (kept here so that pruning old events does not lose it), and its
-- newest signed checkpoint.
CREATE TABLE audit_chains (
    chain           TEXT PRIMARY KEY,
    entity          TEXT,
    seq             BIGINT NOT NULL,
    hash            TEXT NOT NULL,
    checkpoint_seq  BIGINT NOT NULL DEFAULT 0,
    checkpoint_at   BIGINT NOT NULL DEFAULT 0
);

-- Signed checkpoints of chain heads.
CREATE TABLE audit_checkpoints (
    chain       TEXT NOT NULL,
    entity      TEXT,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    -- The signing key: it stays published while checkpoints it signed are kept.
    kid         TEXT NOT NULL,
    signature   TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_checkpoints_kid ON audit_checkpoints(kid, at);

-- The sealer's lease: one row, taken by a conditional UPDATE, passed on when it expires.
CREATE TABLE audit_sealer (
    id          BIGINT PRIMARY KEY,
    holder      TEXT,
    expires_at  BIGINT NOT NULL,
    last_order  BIGINT NOT NULL
);
INSERT INTO audit_sealer (id, holder, expires_at, last_order) VALUES (1, NULL, 0, 0);
