-- 050_queue_stats_talk_unknown: answered calls whose end ccd did not see (the AMI link was
-- down when they ended) have no known talk time; statistics leave them out of talk, hold,
-- wrap-up and AHT and count them here instead (see ccd/model/stats.py).

ALTER TABLE queue_stats ADD COLUMN talk_unknown integer NOT NULL DEFAULT 0;

COMMENT ON COLUMN queue_stats.talk_unknown IS
    'answered calls whose end (and so talk time) is unknown; not in talk/hold/wrapup/aht';
COMMENT ON COLUMN queue_stats.hold_seconds IS
    'time the answering agents held their calls (a hold while connected is also in talk)';
