-- 020_agents: agent sessions and pauses, users, statistics, recording pauses.

-- Numbers a tenant's agents may dial or transfer to (regular expressions, full match).
-- Caller-entered digits and panel input never reach a dial string unless they match.
ALTER TABLE tenants ADD COLUMN dial_patterns text[] NOT NULL
    DEFAULT ARRAY['^[0-9]{3,6}$', '^\+?[1-9][0-9]{6,14}$'];

-- Pause reason codes agents may use; tenant_id NULL = offered to every tenant.
CREATE TABLE pause_reasons (
    id        bigserial PRIMARY KEY,
    tenant_id bigint REFERENCES tenants (id) ON DELETE CASCADE,
    code      text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    label     text NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, code)
);
INSERT INTO pause_reasons (tenant_id, code, label) VALUES
    (NULL, 'lunch', 'Lunch'),
    (NULL, 'break', 'Break'),
    (NULL, 'training', 'Training'),
    (NULL, 'meeting', 'Meeting'),
    (NULL, 'acw', 'After-call work'),
    (NULL, 'connection-lost', 'Panel connection lost');

-- A login of an agent at its phone: open while logout_at IS NULL. ccd re-adds the agents
-- of open sessions after an Asterisk restart and restores their pause.
CREATE TABLE agent_sessions (
    id           bigserial PRIMARY KEY,
    tenant_id    bigint NOT NULL,
    agent_id     bigint NOT NULL,
    interface    text NOT NULL,
    login_at     timestamptz NOT NULL DEFAULT now(),
    logout_at    timestamptz,
    paused       boolean NOT NULL DEFAULT false,
    pause_reason text NOT NULL DEFAULT '',
    paused_since timestamptz,
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX agent_sessions_open ON agent_sessions (agent_id) WHERE logout_at IS NULL;
CREATE INDEX agent_sessions_tenant_login ON agent_sessions (tenant_id, login_at);

-- People who log in to the panel and the API (hashes only, never passwords).
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{1,64}$'),
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent_id      bigint REFERENCES agents (id) ON DELETE SET NULL,
    language      text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'zh-CN')),
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant ON users (tenant_id);

-- Per-interval statistics, recomputed from call_events (see ccd/model/stats.py).
CREATE TABLE queue_stats (
    tenant_id        bigint NOT NULL REFERENCES tenants (id),
    queue            text NOT NULL,
    interval_start   timestamptz NOT NULL,
    offered          integer NOT NULL DEFAULT 0,
    answered         integer NOT NULL DEFAULT 0,
    abandoned        integer NOT NULL DEFAULT 0,
    exited           integer NOT NULL DEFAULT 0,
    answered_in_sl   integer NOT NULL DEFAULT 0,
    abandoned_short  integer NOT NULL DEFAULT 0,
    service_level    numeric(6, 2),
    asa              numeric(12, 3),
    avg_wait         numeric(12, 3),
    longest_wait     numeric(12, 3) NOT NULL DEFAULT 0,
    avg_abandon_wait numeric(12, 3),
    talk_seconds     numeric(14, 3) NOT NULL DEFAULT 0,
    hold_seconds     numeric(14, 3) NOT NULL DEFAULT 0,
    wrapup_seconds   numeric(14, 3) NOT NULL DEFAULT 0,
    aht              numeric(12, 3),
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, interval_start)
);
CREATE INDEX queue_stats_tenant ON queue_stats (tenant_id, interval_start);

CREATE TABLE agent_stats (
    tenant_id      bigint NOT NULL REFERENCES tenants (id),
    agent          text NOT NULL,
    interval_start timestamptz NOT NULL,
    seconds        jsonb NOT NULL DEFAULT '{}',   -- state -> seconds
    staffed        numeric(12, 3) NOT NULL DEFAULT 0,
    busy           numeric(12, 3) NOT NULL DEFAULT 0,
    occupancy      numeric(6, 2),
    answered       integer NOT NULL DEFAULT 0,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, interval_start)
);
CREATE INDEX agent_stats_tenant ON agent_stats (tenant_id, interval_start);

-- PCI DSS: stretches of a recording that were muted (e.g. while a card number was read).
CREATE TABLE recording_pauses (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    call_id    text NOT NULL,
    channel    text NOT NULL DEFAULT '',
    paused_at  timestamptz NOT NULL,
    resumed_at timestamptz,
    event_id   uuid UNIQUE
);
CREATE INDEX recording_pauses_call ON recording_pauses (call_id);

-- What the retention job did, for the operator.
CREATE TABLE retention_runs (
    id              bigserial PRIMARY KEY,
    ran_at          timestamptz NOT NULL DEFAULT now(),
    files_deleted   integer NOT NULL DEFAULT 0,
    files_missing   integer NOT NULL DEFAULT 0,
    rows_deleted    integer NOT NULL DEFAULT 0,
    bytes_freed     bigint NOT NULL DEFAULT 0,
    errors          integer NOT NULL DEFAULT 0,
    detail          jsonb NOT NULL DEFAULT '{}'
);
