-- The postgres driver's tables, created on first use (idempotent). Keys, queue names and
-- channels carry the namespace's configured prefix, so namespaces share these tables.
CREATE TABLE IF NOT EXISTS prism_kv (
    key        bytea PRIMARY KEY,
    value      bytea NOT NULL,
    expires_at timestamptz
);
CREATE TABLE IF NOT EXISTS prism_queue (
    id         bigserial PRIMARY KEY,
    queue      text NOT NULL,
    payload    bytea NOT NULL,
    visible_at timestamptz NOT NULL DEFAULT now(),
    deliveries integer NOT NULL DEFAULT 0,
    receipt    text
);
CREATE INDEX IF NOT EXISTS prism_queue_ready ON prism_queue (queue, visible_at, id);
