-- 001_init: ccd's base schema.
--
-- Every row that belongs to a customer company carries tenant_id from the start.
-- Tables that hang off a call reference calls(tenant_id, call_id) with ON UPDATE CASCADE,
-- so when a call's tenant becomes known later (by its queue), its legs, events and
-- recordings follow in the same statement.
-- Applied by ccd.store.migrate in one transaction; never edit this file once released,
-- add sql/NNN_*.sql instead (001-009: store layer, 010+: other components).

-- ------------------------------------------------------------------ tenants

CREATE TABLE tenants (
    id              bigserial PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC',
    default_country text NOT NULL DEFAULT 'US' CHECK (default_country ~ '^[A-Z]{2}$'),
    retention_days  integer NOT NULL DEFAULT 365 CHECK (retention_days > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE tenants IS 'Customer companies; the row with slug ''default'' receives unattributed data.';

INSERT INTO tenants (slug, name) VALUES ('default', 'Default tenant');

-- The default tenant is where the writer puts anything it cannot attribute: it must
-- not disappear, and a time zone must be one PostgreSQL knows.
CREATE FUNCTION ccd_tenants_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.slug = 'default'
       AND (TG_OP = 'DELETE' OR NEW.slug <> 'default') THEN
        RAISE EXCEPTION 'the default tenant cannot be deleted or renamed'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.timezone) THEN
            RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER tenants_guard BEFORE INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION ccd_tenants_guard();

-- ------------------------------------------------------------------ routing

CREATE TABLE dids (
    number      text PRIMARY KEY CHECK (number <> ''),
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dids_tenant ON dids (tenant_id);

COMMENT ON TABLE dids IS 'Dialled numbers (as Asterisk sees them) -> tenant.';

CREATE TABLE queues (
    id                   bigserial PRIMARY KEY,
    tenant_id            bigint NOT NULL REFERENCES tenants (id),
    name                 text NOT NULL UNIQUE CHECK (name <> ''),  -- Asterisk queue names are global
    display_name         text NOT NULL DEFAULT '',
    wrapup_seconds       integer NOT NULL DEFAULT 0 CHECK (wrapup_seconds >= 0),
    sl_threshold_seconds integer NOT NULL DEFAULT 20 CHECK (sl_threshold_seconds > 0),
    recording_policy     text NOT NULL DEFAULT 'always'
                         CHECK (recording_policy IN ('always', 'never', 'on_demand')),
    surveys              boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);

-- Which tenant a call belongs to: its DID, else its queue, else the default tenant.
CREATE FUNCTION ccd_default_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM tenants WHERE slug = 'default'
$$;

CREATE FUNCTION ccd_resolve_tenant(p_did text, p_queue text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT tenant_id FROM dids WHERE number = NULLIF(p_did, '')),
        (SELECT tenant_id FROM queues WHERE name = NULLIF(p_queue, '')),
        ccd_default_tenant())
$$;

-- ------------------------------------------------------------------ customers

CREATE TABLE customers (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    name       text NOT NULL DEFAULT '',
    account_no text,
    vip        boolean NOT NULL DEFAULT false,
    language   text,
    notes      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, account_no),
    UNIQUE (tenant_id, id)
);

CREATE TABLE customer_phones (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    customer_id bigint NOT NULL,
    e164        text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    label       text NOT NULL DEFAULT '',
    -- the unique constraint's index is the (tenant_id, e164) caller-ID lookup index
    CONSTRAINT customer_phones_lookup UNIQUE (tenant_id, e164),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_phones_customer ON customer_phones (customer_id);

-- ------------------------------------------------------------------ agents

CREATE TABLE agents (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    name       text NOT NULL,
    interface  text NOT NULL UNIQUE CHECK (interface ~ '^[A-Za-z0-9_]+/.+$'),  -- e.g. PJSIP/1001
    extension  text NOT NULL DEFAULT '',
    role       text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);

CREATE TABLE agent_skills (
    tenant_id bigint NOT NULL,
    agent_id  bigint NOT NULL,
    queue_id  bigint NOT NULL,
    penalty   integer NOT NULL DEFAULT 0 CHECK (penalty >= 0),
    PRIMARY KEY (agent_id, queue_id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX agent_skills_queue ON agent_skills (queue_id);

-- ------------------------------------------------------------------ calls

CREATE TABLE calls (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants (id),
    call_id          text NOT NULL UNIQUE,          -- Asterisk Linkedid
    direction        text NOT NULL DEFAULT '',      -- inbound | outbound | internal
    did              text NOT NULL DEFAULT '',
    caller_num       text NOT NULL DEFAULT '',
    caller_name      text NOT NULL DEFAULT '',
    dialed           text NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL,
    answered_at      timestamptz,
    ended_at         timestamptz,
    queue            text NOT NULL DEFAULT '',      -- first queue the call joined
    queue_wait       numeric(12, 3),
    queue_position   integer,
    outcome          text NOT NULL DEFAULT '',      -- answered abandoned timeout unanswered ...
    agent            text NOT NULL DEFAULT '',      -- interface, e.g. PJSIP/1001
    agent_name       text NOT NULL DEFAULT '',
    talk_seconds     numeric(12, 3) NOT NULL DEFAULT 0,
    hold_seconds     numeric(12, 3) NOT NULL DEFAULT 0,
    total_seconds    numeric(12, 3) NOT NULL DEFAULT 0,
    hangup_by        text NOT NULL DEFAULT '',      -- caller | agent | system | unknown
    hangup_cause     integer,
    hangup_cause_txt text NOT NULL DEFAULT '',
    end_reason       text NOT NULL DEFAULT '',
    customer_id      bigint REFERENCES customers (id) ON DELETE SET NULL,
    variables        jsonb NOT NULL DEFAULT '{}',
    record           jsonb,                         -- the full CallRecord once the call ended
    open             boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, call_id)
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at);
CREATE INDEX calls_queue_started ON calls (queue, started_at) WHERE queue <> '';
CREATE INDEX calls_agent_started ON calls (agent, started_at) WHERE agent <> '';
CREATE INDEX calls_customer ON calls (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX calls_open ON calls (started_at) WHERE open;

COMMENT ON COLUMN calls.open IS 'true from call_started until call_ended completed the row';

CREATE TABLE call_legs (
    tenant_id  bigint NOT NULL,
    call_id    text NOT NULL,
    uniqueid   text NOT NULL,
    channel    text NOT NULL,
    created_at timestamptz,                         -- channel creation, when ccd saw it
    PRIMARY KEY (call_id, uniqueid),
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, call_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX call_legs_tenant ON call_legs (tenant_id, call_id);

CREATE TABLE call_events (
    event_id   uuid PRIMARY KEY,                    -- the exactly-once key, set when ccd accepted it
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- order in which events were written
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    call_id    text,
    agent      text,
    kind       text NOT NULL,
    ts         timestamptz NOT NULL,
    data       jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, call_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX call_events_call ON call_events (call_id);
CREATE INDEX call_events_kind_ts ON call_events (kind, ts);
CREATE INDEX call_events_tenant_ts ON call_events (tenant_id, ts);
CREATE INDEX call_events_agent_ts ON call_events (agent, ts) WHERE agent IS NOT NULL;

COMMENT ON COLUMN call_events.data IS
    'the domain event as JSON (call_ended without its record, which is calls.record)';

CREATE TABLE recordings (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    call_id    text NOT NULL,
    path       text NOT NULL UNIQUE,
    channel    text NOT NULL DEFAULT '',
    started_at timestamptz,
    stopped_at timestamptz,
    deleted_at timestamptz,
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, call_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_tenant_started ON recordings (tenant_id, started_at)
    WHERE deleted_at IS NULL;

-- ------------------------------------------------------------------ agent states

-- One row per state interval: the interval opened by an agent_state event is closed
-- (ended_at, seconds) by the next agent_state event of the same agent.
CREATE TABLE agent_states (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    agent      text NOT NULL,                       -- interface
    state      text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    call_id    text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    seconds    numeric(12, 3),
    event_id   uuid NOT NULL UNIQUE,                -- the agent_state event that opened it
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX agent_states_agent_started ON agent_states (agent, started_at);
CREATE INDEX agent_states_tenant_started ON agent_states (tenant_id, started_at);
CREATE UNIQUE INDEX agent_states_one_open ON agent_states (agent) WHERE ended_at IS NULL;
