-- 040_panel: what the agent and supervisor panel (ccd/web) stores besides 001/020's
-- users, customers and calls: wrap-up dispositions, tickets with their history, and a
-- session epoch that lets a logout invalidate every cookie of a user.
--
-- Cross-tenant references are impossible by construction: every foreign key that points
-- at tenant-owned rows includes tenant_id.

-- ------------------------------------------------------------------ sessions

-- Part of every panel session cookie; a logout (or an admin) increments it and every
-- cookie issued before stops working.
ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;

-- ------------------------------------------------------------------ call history

-- The screen pop's "recent interactions": a customer's calls by caller number and by the
-- customer id the IVR set on the channel (each branch of the lookup uses an index).
CREATE INDEX calls_caller_num ON calls (tenant_id, caller_num) WHERE caller_num <> '';
CREATE INDEX calls_ccd_customer ON calls ((variables ->> 'CCD_CUSTOMER_ID'))
    WHERE variables ? 'CCD_CUSTOMER_ID';

-- ------------------------------------------------------------------ wrap-up

-- Disposition codes agents choose after a call; tenant_id NULL = offered to every tenant.
CREATE TABLE disposition_codes (
    id        bigserial PRIMARY KEY,
    tenant_id bigint REFERENCES tenants (id) ON DELETE CASCADE,
    code      text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    label     text NOT NULL,
    label_zh  text NOT NULL DEFAULT '',
    UNIQUE NULLS NOT DISTINCT (tenant_id, code)
);
INSERT INTO disposition_codes (tenant_id, code, label, label_zh) VALUES
    (NULL, 'resolved', 'Resolved on the call', '通话中已解决'),
    (NULL, 'follow-up', 'Follow-up needed', '需要跟进'),
    (NULL, 'escalated', 'Escalated', '已升级'),
    (NULL, 'information', 'Information given', '已提供信息'),
    (NULL, 'complaint', 'Complaint', '投诉'),
    (NULL, 'sale', 'Sale', '销售'),
    (NULL, 'wrong-number', 'Wrong number', '打错电话'),
    (NULL, 'no-action', 'No action', '无需处理');

-- One wrap-up per agent per call (an agent who received a transfer wraps up its part).
-- Saved with the call: deleted with it (retention), follows calls.call_id.
CREATE TABLE call_dispositions (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    call_id     text NOT NULL REFERENCES calls (call_id) ON UPDATE CASCADE ON DELETE CASCADE,
    agent_id    bigint REFERENCES agents (id) ON DELETE SET NULL,
    user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    code        text NOT NULL,
    notes       text NOT NULL DEFAULT '' CHECK (length(notes) <= 4000),
    customer_id bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, agent_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE SET NULL (customer_id)
);
CREATE INDEX call_dispositions_tenant ON call_dispositions (tenant_id, created_at);
CREATE INDEX call_dispositions_customer ON call_dispositions (customer_id)
    WHERE customer_id IS NOT NULL;

-- ------------------------------------------------------------------ tickets (工单)

CREATE TABLE tickets (
    id                bigserial PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id),
    subject           text NOT NULL CHECK (subject <> '' AND length(subject) <= 200),
    description       text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status            text NOT NULL DEFAULT 'new'
                      CHECK (status IN ('new', 'open', 'pending', 'resolved', 'closed')),
    priority          text NOT NULL DEFAULT 'normal'
                      CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    customer_id       bigint,
    call_id           text,                      -- the call it was created from (no FK:
                                                 -- retention may delete the call first)
    assignee_agent_id bigint,
    assignee_queue_id bigint,
    due_at            timestamptz,
    created_by        bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    closed_at         timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
        ON DELETE SET NULL (customer_id),
    FOREIGN KEY (tenant_id, assignee_agent_id) REFERENCES agents (tenant_id, id)
        ON DELETE SET NULL (assignee_agent_id),
    FOREIGN KEY (tenant_id, assignee_queue_id) REFERENCES queues (tenant_id, id)
        ON DELETE SET NULL (assignee_queue_id)
);
CREATE INDEX tickets_tenant_status ON tickets (tenant_id, status, updated_at);
CREATE INDEX tickets_customer ON tickets (tenant_id, customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX tickets_agent ON tickets (assignee_agent_id) WHERE assignee_agent_id IS NOT NULL;
CREATE INDEX tickets_call ON tickets (call_id) WHERE call_id IS NOT NULL;

-- The status flow new -> open -> pending -> resolved -> closed (pending <-> open, a
-- resolved ticket may be reopened; closed is final), enforced here as well as in the panel.
CREATE FUNCTION ccd_ticket_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT ((OLD.status = 'new' AND NEW.status IN ('open', 'pending', 'resolved'))
             OR (OLD.status = 'open' AND NEW.status IN ('pending', 'resolved'))
             OR (OLD.status = 'pending' AND NEW.status IN ('open', 'resolved'))
             OR (OLD.status = 'resolved' AND NEW.status IN ('open', 'closed'))) THEN
            RAISE EXCEPTION 'ticket % cannot go from % to %', OLD.id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.resolved_at := CASE WHEN NEW.status IN ('resolved', 'closed')
                                THEN COALESCE(OLD.resolved_at, now()) END;
        NEW.closed_at := CASE WHEN NEW.status = 'closed' THEN now() END;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER tickets_guard BEFORE UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION ccd_ticket_guard();

-- What happened to a ticket: created, comments, status changes, assignments, due dates.
CREATE TABLE ticket_events (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    ticket_id  bigint NOT NULL,
    user_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    kind       text NOT NULL CHECK (kind IN ('created', 'comment', 'status', 'assigned', 'due')),
    body       text NOT NULL DEFAULT '' CHECK (length(body) <= 10000),
    old_value  text NOT NULL DEFAULT '',
    new_value  text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);
