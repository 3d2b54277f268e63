-- 010_ivr: what the IVR engine (ccd/ivr) reads and writes besides 001's tenants, dids,
-- customers and customer_phones: per-tenant business hours and holidays, which flow a
-- DID runs, callback requests left in the IVR, and the path every IVR session took.

-- ------------------------------------------------------------------ flow routing

-- A DID without a row here runs the engine's default flow (or the one in the AGI URL).
CREATE TABLE ivr_routes (
    number     text PRIMARY KEY REFERENCES dids (number) ON DELETE CASCADE,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    flow       text NOT NULL CHECK (flow ~ '^[A-Za-z0-9_.-]+$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ivr_routes_tenant ON ivr_routes (tenant_id);

COMMENT ON TABLE ivr_routes IS 'DID -> IVR flow name (a *.toml file in the flows directory).';

-- ------------------------------------------------------------------ calendars

-- Weekly opening hours of a tenant's calendar (the name used by a flow's hours node).
-- When a tenant has no rows for a calendar, the flow file's [calendars.<name>] applies.
CREATE TABLE business_hours (
    id        bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id),
    calendar  text NOT NULL CHECK (calendar <> ''),
    weekday   smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- 0 = Monday
    opens     time NOT NULL,
    closes    time NOT NULL CHECK (closes <= '24:00'),            -- 24:00 = end of day
    CHECK (opens < closes),
    UNIQUE (tenant_id, calendar, weekday, opens)
);

COMMENT ON COLUMN business_hours.weekday IS '0 = Monday .. 6 = Sunday, in the tenant''s time zone';

-- Holidays add to the flow file's; a row with opens/closes is a special day with
-- reduced hours instead of a closed day.
CREATE TABLE holidays (
    id        bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id),
    calendar  text NOT NULL CHECK (calendar <> ''),
    day       date NOT NULL,
    name      text NOT NULL DEFAULT '',
    opens     time,
    closes    time CHECK (closes <= '24:00'),
    CHECK ((opens IS NULL) = (closes IS NULL)),
    CHECK (opens IS NULL OR opens < closes)
);
CREATE UNIQUE INDEX holidays_day ON holidays (tenant_id, calendar, day, COALESCE(opens, '00:00'));

-- ------------------------------------------------------------------ callbacks

CREATE TABLE callback_requests (
    id           bigserial PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id),
    uniqueid     text NOT NULL DEFAULT '',                 -- the call that asked
    e164         text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    customer_id  bigint REFERENCES customers (id) ON DELETE SET NULL,
    queue        text NOT NULL CHECK (queue <> ''),
    language     text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'dialing', 'done', 'failed', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    requested_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- a caller who asks twice while the first request is pending still gets one call back
CREATE UNIQUE INDEX callback_requests_one_pending ON callback_requests (tenant_id, e164)
    WHERE status = 'pending';
CREATE INDEX callback_requests_queue ON callback_requests (tenant_id, queue, requested_at)
    WHERE status = 'pending';

-- ------------------------------------------------------------------ IVR paths

-- One row per IVR session (written when it ends, also when the caller hung up in it).
CREATE TABLE ivr_sessions (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    uniqueid    text NOT NULL,                  -- the caller channel's Uniqueid (-> call_legs)
    channel     text NOT NULL DEFAULT '',
    flow        text NOT NULL,
    did         text NOT NULL DEFAULT '',
    caller_num  text NOT NULL DEFAULT '',
    caller_e164 text,
    customer_id bigint REFERENCES customers (id) ON DELETE SET NULL,
    language    text NOT NULL DEFAULT '',
    path        jsonb NOT NULL DEFAULT '[]',    -- [{"node": "main", "type": "menu", "input": "2"}, ...]
    path_text   text NOT NULL DEFAULT '',       -- the same as CCD_IVR_PATH on the channel
    outcome     text NOT NULL,                  -- queue transfer voicemail callback hangup caller_hangup error
    queue       text NOT NULL DEFAULT '',
    priority    integer,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    CHECK (ended_at >= started_at)
);
CREATE INDEX ivr_sessions_tenant_started ON ivr_sessions (tenant_id, started_at);
CREATE INDEX ivr_sessions_uniqueid ON ivr_sessions (uniqueid);
CREATE INDEX ivr_sessions_customer ON ivr_sessions (customer_id) WHERE customer_id IS NOT NULL;
