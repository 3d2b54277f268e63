-- 060_campaign_dropped: a campaign attempt can end 'dropped' - answered, then hung up by
-- Asterisk itself before the call reached the queue, the recorded message or AMD's verdict
-- (a dialplan failure such as "No application 'AMD'", or a restart). It counts as a live
-- call and as an abandon in the abandonment rates (a person may have answered and heard
-- nothing) and is kept apart from 'abandoned' (no agent free in time) in the record.

ALTER TABLE campaign_attempts DROP CONSTRAINT campaign_attempts_outcome_check;
ALTER TABLE campaign_attempts ADD CONSTRAINT campaign_attempts_outcome_check
    CHECK (outcome IN ('', 'answered', 'abandoned', 'dropped', 'machine', 'busy', 'no_answer',
                       'failed', 'congestion', 'unknown', 'not_dialled'));
