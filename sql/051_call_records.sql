-- 051_call_records: what a call record says beyond 001's columns.
--
-- * who asked ccd to hang a call up (hangup_by 'operator' / 'ccd');
-- * supervisor legs (listen / whisper / barge through ChanSpy) are stored as direction 'spy'
--   with the supervisor, the mode and the spied call, never as customer calls;
-- * a call whose end ccd could not see (it ended while the AMI link was down and nothing
--   Asterisk still had told when) keeps NULL durations and the window its end lies in;
-- * a call's tenant: its DID, else the CCD_TENANT tag ccd's own Originates set, else its
--   queue, else its agent's, else the default tenant.

ALTER TABLE calls
    ADD COLUMN hangup_requested_by text NOT NULL DEFAULT '',
    ADD COLUMN supervisor          text NOT NULL DEFAULT '',
    ADD COLUMN spy_mode            text NOT NULL DEFAULT '',
    ADD COLUMN spied_call_id       text NOT NULL DEFAULT '',
    ADD COLUMN end_after           timestamptz,
    ADD COLUMN end_before          timestamptz,
    ALTER COLUMN talk_seconds DROP NOT NULL,
    ALTER COLUMN total_seconds DROP NOT NULL;

COMMENT ON COLUMN calls.hangup_by IS
    'caller | customer | agent | external | supervisor | ivr | operator | ccd | system | unknown';
COMMENT ON COLUMN calls.hangup_requested_by IS
    'operator/ccd hang-ups: who asked (cli:<user>, panel:<user>, api, ccd)';
COMMENT ON COLUMN calls.direction IS 'inbound | outbound | internal | spy';
COMMENT ON COLUMN calls.end_after IS
    'end unknown (ended_at NULL): the call was last seen alive at this time ...';
COMMENT ON COLUMN calls.end_before IS '... and was gone at this one';
COMMENT ON COLUMN calls.talk_seconds IS 'NULL when the end of the call is not known';

CREATE INDEX calls_spied ON calls (spied_call_id) WHERE spied_call_id <> '';

CREATE FUNCTION ccd_call_tenant(p_did text, p_tag text, p_queue text, p_agent text)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT tenant_id FROM dids WHERE number = NULLIF(p_did, '')),
        (SELECT id FROM tenants WHERE p_tag ~ '^[0-9]{1,18}$' AND id = p_tag::bigint),
        (SELECT tenant_id FROM queues WHERE name = NULLIF(p_queue, '')),
        (SELECT tenant_id FROM agents WHERE interface = NULLIF(p_agent, '')),
        ccd_default_tenant())
$$;
