-- The vault: per-tenant secrets, encrypted at rest by the engine (AES-256-GCM under
-- FM_VAULT_KEY; the row's tenant and key are authenticated with it), and an audit row for
-- every time the engine sealed one into a task (or refused to). Plaintext is never stored.
CREATE TABLE secrets (
  tenant_id   text        NOT NULL DEFAULT '',     -- '' = executions without a tenant
  key         text        NOT NULL,
  ciphertext  bytea       NOT NULL,                -- ciphertext || 16-byte GCM tag
  nonce       bytea       NOT NULL,                -- 12 bytes, fresh per write
  key_id      text        NOT NULL,                -- fingerprint of the vault key that wrote it
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);

CREATE TABLE secret_access (
  id            bigserial   PRIMARY KEY,
  execution_id  text        NOT NULL,               -- no foreign key: the audit outlives the execution
  step_id       text        NOT NULL,
  attempt       integer     NOT NULL,
  tenant_id     text        NOT NULL,
  key           text        NOT NULL,
  pool          text        NOT NULL,               -- <region>/<handler> it was sealed for
  outcome       text        NOT NULL,               -- sealed, or the error code that refused it
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX secret_access_execution ON secret_access (execution_id);
CREATE INDEX secret_access_tenant_key ON secret_access (tenant_id, key, at DESC);
