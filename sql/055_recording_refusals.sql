-- 055_recording_refusals: recording paths ccd refused to index.
--
-- A recording must lie inside its tenant's directory, <recording.dir>/<tenant slug>/
-- (resolved: symbolic links and '..' followed). The writer (ccd/store/recindex.py) keeps
-- every other path out of `recordings` (so export and retention never touch it) and
-- records it here with the call and the reason. Each new row raises a WARNING, which ccd
-- logs (ccd.store.db.log_notice), so a refusal is in ccd's log with its call id.

CREATE TABLE recording_refusals (
    id         bigserial PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    call_id    text NOT NULL,
    path       text NOT NULL,
    reason     text NOT NULL,
    event_id   uuid NOT NULL,               -- the first event that carried the path
    refused_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, path),                 -- refused (and logged) once per call
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, call_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX recording_refusals_call ON recording_refusals (call_id);
CREATE INDEX recording_refusals_tenant_at ON recording_refusals (tenant_id, refused_at);

COMMENT ON TABLE recording_refusals IS
    'Recording paths outside their tenant''s directory: never indexed, exported or deleted.';

CREATE FUNCTION ccd_recording_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'ccd: recording of call % refused: % (%)', NEW.call_id,
        left(NEW.path, 300), NEW.reason;
    RETURN NULL;
END
$$;

CREATE TRIGGER recording_refusals_warn AFTER INSERT ON recording_refusals
    FOR EACH ROW EXECUTE FUNCTION ccd_recording_refused();

-- retention leaves refused files alone and counts them
ALTER TABLE retention_runs ADD COLUMN files_refused integer NOT NULL DEFAULT 0;
