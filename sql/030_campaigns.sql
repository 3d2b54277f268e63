-- 030_campaigns: outbound campaigns (preview, progressive and predictive dialling through
-- AMI Originate), notification campaigns, do-not-call lists, scheduled campaign actions,
-- notification results and post-call CSAT surveys (ccd/campaigns).
--
-- Restart safety: an attempt row is written (state 'dialing') BEFORE the Originate is
-- sent; at most one attempt per contact can be open (campaign_attempts_one_open), so a
-- contact can never be dialled twice at the same time, and after a restart the open
-- attempts are resolved from Asterisk and the call store, never redialled blindly.

-- ------------------------------------------------------------------ campaigns

CREATE TABLE campaigns (
    id                   bigserial PRIMARY KEY,
    tenant_id            bigint NOT NULL REFERENCES tenants (id),
    name                 text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    kind                 text NOT NULL DEFAULT 'agents' CHECK (kind IN ('agents', 'notify')),
    dial_mode            text NOT NULL DEFAULT 'progressive'
                         CHECK (dial_mode IN ('preview', 'progressive', 'predictive', 'notify')),
    queue                text NOT NULL DEFAULT '',       -- the agents' Asterisk queue
    state                text NOT NULL DEFAULT 'draft'
                         CHECK (state IN ('draft', 'running', 'paused', 'stopped', 'completed')),
    caller_id            text NOT NULL DEFAULT '' CHECK (caller_id ~ '^\+?[0-9]{0,20}$'),
    caller_name          text NOT NULL DEFAULT '' CHECK (caller_name !~ '[\r\n<>"]'),
    -- the Originate Channel: {e164} = +15551234567, {digits} = 15551234567
    dial_template        text NOT NULL DEFAULT 'PJSIP/{e164}@trunk'
                         CHECK (dial_template ~ '^[A-Za-z0-9_]+/[^\s,]*\{(e164|digits)\}[^\s,]*$'),
    context              text NOT NULL DEFAULT '' CHECK (context ~ '^[A-Za-z0-9_.-]*$'),
    ring_timeout         integer NOT NULL DEFAULT 20 CHECK (ring_timeout BETWEEN 15 AND 120),
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 50),
    retry                jsonb NOT NULL DEFAULT '{}',   -- outcome -> {"delay", "backoff", "max"}
    windows              jsonb NOT NULL DEFAULT '["mon-fri 09:00-20:00", "sat 10:00-18:00"]',
    legal_hours          text NOT NULL DEFAULT '08:00-21:00',
    timezone             text,                           -- contacts without one; NULL = tenant's
    max_abandon_pct      numeric(4, 2) NOT NULL DEFAULT 3.00
                         CHECK (max_abandon_pct > 0 AND max_abandon_pct <= 3),
    abandon_window_hours integer NOT NULL DEFAULT 24 CHECK (abandon_window_hours BETWEEN 1 AND 720),
    max_channels         integer NOT NULL DEFAULT 30 CHECK (max_channels BETWEEN 1 AND 2000),
    amd                  boolean NOT NULL DEFAULT false,
    -- played when a live answer finds no agent within 2 s (seller's name and number)
    abandon_message      text NOT NULL DEFAULT '' CHECK (abandon_message ~ '^[A-Za-z0-9_/.-]*$'),
    -- notifications: {"message": {"en": "custom/reminder-en", ...}, "thanks": {...}}
    prompts              jsonb NOT NULL DEFAULT '{}',
    confirm              boolean NOT NULL DEFAULT false, -- notifications: 1 = confirm, 2 = agent
    language             text NOT NULL DEFAULT 'en',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id),
    CHECK ((kind = 'notify') = (dial_mode = 'notify')),
    CHECK (kind = 'notify' OR queue <> ''),
    CHECK (dial_mode NOT IN ('progressive', 'predictive') OR abandon_message <> '')
);

COMMENT ON TABLE campaigns IS 'Outbound campaigns; state is the operator''s intent, the '
    'instance holding the campaign''s advisory lock dials it.';

-- ------------------------------------------------------------------ contacts

CREATE TABLE campaign_contacts (
    id             bigserial PRIMARY KEY,
    tenant_id      bigint NOT NULL,
    campaign_id    bigint NOT NULL,
    e164           text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    name           text NOT NULL DEFAULT '',
    timezone       text,                                 -- NULL: the campaign's
    language       text NOT NULL DEFAULT '',
    data           jsonb NOT NULL DEFAULT '{}',          -- other CSV columns (shown in preview)
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'dialing', 'preview', 'done', 'dnc', 'exhausted',
                                     'invalid', 'cancelled')),
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),   -- counted attempts
    outcomes       jsonb NOT NULL DEFAULT '{}',          -- outcome -> attempts that ended so
    last_outcome   text NOT NULL DEFAULT '',
    next_at        timestamptz,                          -- not before (retry, calling window)
    reserved_by    text NOT NULL DEFAULT '',             -- preview: the agent's interface
    reserved_until timestamptz,
    line_no        integer,                              -- line in the imported file
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, e164),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, next_at NULLS FIRST, id)
    WHERE status = 'pending';
CREATE INDEX campaign_contacts_status ON campaign_contacts (campaign_id, status);

-- ------------------------------------------------------------------ attempts

CREATE TABLE campaign_attempts (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL,
    campaign_id      bigint NOT NULL,
    contact_id       bigint NOT NULL REFERENCES campaign_contacts (id) ON DELETE CASCADE,
    attempt_no       integer NOT NULL CHECK (attempt_no > 0),
    e164             text NOT NULL,
    mode             text NOT NULL,
    state            text NOT NULL DEFAULT 'dialing'
                     CHECK (state IN ('dialing', 'answered', 'connected', 'done')),
    created_at       timestamptz NOT NULL,               -- written before the Originate
    answered_at      timestamptz,                        -- OriginateResponse Reason 4
    connected_at     timestamptz,                        -- an agent took the call
    ended_at         timestamptz,
    outcome          text NOT NULL DEFAULT ''
                     CHECK (outcome IN ('', 'answered', 'abandoned', 'machine', 'busy', 'no_answer',
                                        'failed', 'congestion', 'unknown', 'not_dialled')),
    reason           integer,                            -- OriginateResponse Reason
    call_id          text NOT NULL DEFAULT '',           -- Asterisk Linkedid (calls.call_id)
    channel          text NOT NULL DEFAULT '',
    agent            text NOT NULL DEFAULT '',           -- who took (preview: who dialled)
    ring_seconds     numeric(8, 3),
    talk_seconds     numeric(12, 3),
    hangup_cause     integer,
    hangup_cause_txt text NOT NULL DEFAULT '',
    disposition      text NOT NULL DEFAULT '' CHECK (disposition ~ '^[a-z0-9_-]{0,32}$'),
    callback_at      timestamptz,                        -- disposition 'callback': call again then
    note             text NOT NULL DEFAULT '',
    runner           text NOT NULL DEFAULT '',           -- host:pid of the ccd that dialled
    detail           text NOT NULL DEFAULT '',           -- how the outcome was established
    CHECK ((state = 'done') = (outcome <> '')),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
-- a contact is never in two calls at once (the double-dial guard)
CREATE UNIQUE INDEX campaign_attempts_one_open ON campaign_attempts (contact_id)
    WHERE state <> 'done';
CREATE INDEX campaign_attempts_open ON campaign_attempts (campaign_id) WHERE state <> 'done';
CREATE INDEX campaign_attempts_ended ON campaign_attempts (campaign_id, ended_at);
CREATE INDEX campaign_attempts_contact ON campaign_attempts (contact_id, id);
CREATE INDEX campaign_attempts_call ON campaign_attempts (call_id) WHERE call_id <> '';

-- ------------------------------------------------------------------ do not call

-- Checked when each number is dialled (not only at import). tenant_id NULL = every tenant.
CREATE TABLE dnc (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint REFERENCES tenants (id) ON DELETE CASCADE,
    e164       text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    source     text NOT NULL DEFAULT '',                 -- cli, agent, notification ...
    note       text NOT NULL DEFAULT '',
    added_at   timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    UNIQUE NULLS NOT DISTINCT (tenant_id, e164)
);
CREATE INDEX dnc_e164 ON dnc (e164);

-- ------------------------------------------------------------------ schedule

-- start / pause / stop at a set time; run by APScheduler, also when ccd was down then.
CREATE TABLE campaign_schedule (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    campaign_id bigint NOT NULL,
    action      text NOT NULL CHECK (action IN ('start', 'pause', 'stop')),
    at          timestamptz NOT NULL,
    done_at     timestamptz,
    result      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_schedule_pending ON campaign_schedule (at) WHERE done_at IS NULL;

-- ------------------------------------------------------------------ results

CREATE TABLE notification_results (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    campaign_id bigint NOT NULL,
    contact_id  bigint NOT NULL REFERENCES campaign_contacts (id) ON DELETE CASCADE,
    attempt_id  bigint NOT NULL UNIQUE REFERENCES campaign_attempts (id) ON DELETE CASCADE,
    call_id     text NOT NULL DEFAULT '',
    language    text NOT NULL DEFAULT '',
    result      text NOT NULL
                CHECK (result IN ('confirmed', 'agent', 'played', 'no_input', 'hangup')),
    digits      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX notification_results_campaign ON notification_results (campaign_id, created_at);

-- Per-tenant survey prompts ({"rate": {"en": "custom/csat-rate"}, "comment": ..., "thanks": ...})
-- and whether callers may leave a recorded comment. No row = the defaults.
CREATE TABLE survey_settings (
    tenant_id           bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    prompts             jsonb NOT NULL DEFAULT '{}',
    comment             boolean NOT NULL DEFAULT true,
    max_comment_seconds integer NOT NULL DEFAULT 60 CHECK (max_comment_seconds BETWEEN 5 AND 600)
);

-- One row per surveyed caller: linked to the call (calls.call_id) and the agent.
CREATE TABLE survey_results (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    call_id         text NOT NULL,
    uniqueid        text NOT NULL DEFAULT '',
    queue           text NOT NULL DEFAULT '',
    agent           text NOT NULL DEFAULT '',            -- interface, e.g. PJSIP/1001
    agent_id        bigint REFERENCES agents (id) ON DELETE SET NULL,
    rating          smallint CHECK (rating BETWEEN 1 AND 5),
    comment_file    text NOT NULL DEFAULT '',
    comment_seconds numeric(8, 3),
    status          text NOT NULL CHECK (status IN ('completed', 'no_rating', 'hangup')),
    language        text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, uniqueid)
);
CREATE INDEX survey_results_tenant_created ON survey_results (tenant_id, created_at);
CREATE INDEX survey_results_agent_created ON survey_results (agent, created_at);
