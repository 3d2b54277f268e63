-- 056_dial_patterns: national-only dial patterns by default; every change recorded.
--
-- sql/020 gave every tenant '^[0-9]{3,6}$' and '^\+?[1-9][0-9]{6,14}$': any 7-15 digit
-- number anywhere in the world, premium-rate and satellite included (toll fraud), and
-- 3-6 digit short codes sent to the trunk (premium directory services ...). Patterns are
-- matched against the number in E.164 (ccd normalises what agents type with the tenant's
-- country, ccd/services/directory.py check_number). A tenant now gets the national numbers
-- of its own country, without the premium-rate and special ranges named below; wider
-- patterns are an explicit choice (`ccd tenants dial-patterns SLUG --allow-...`).

-- National numbers of a country (ISO 3166 alpha-2) in E.164; '{}' for a country ccd has
-- no number plan for (ccd/ivr/phone.py PLANS): such a tenant dials nothing until an
-- administrator chooses its patterns.
CREATE FUNCTION ccd_national_dial_patterns(p_country text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE upper(p_country)
    -- NANP: not 900 / 700 / 500 (premium, carrier and personal services), not the 976
    -- exchange (premium), not the Caribbean NANP countries (international rates)
    WHEN 'US' THEN ARRAY['^\+1(?!900|700|500|242|246|264|268|284|345|441|473|649|658|664|721|758|767|784|809|829|849|868|869|876)[2-9][0-9]{2}(?!976)[0-9]{7}$']
    WHEN 'CA' THEN ARRAY['^\+1(?!900|700|500|242|246|264|268|284|345|441|473|649|658|664|721|758|767|784|809|829|849|868|869|876)[2-9][0-9]{2}(?!976)[0-9]{7}$']
    -- geographic 01/02/03, mobile 07 (not 070 personal, 076 pagers), freephone 0800/0808;
    -- not 09 (premium), 084/087 (revenue share), 070, 118 (directory enquiries)
    WHEN 'GB' THEN ARRAY['^\+44(?:[12][0-9]{8,9}|3[0-9]{9}|7[1-57-9][0-9]{8}|80[08][0-9]{6,7})$']
    -- geographic and 0800, mobile 015-017; not 0900 (premium), 0700 (personal), 0137/0138
    -- (mass calls), 0180 (service), 0118 (directory), 010/012/019
    WHEN 'DE' THEN ARRAY['^\+49(?:(?!700|900)[2-9][0-9]{5,12}|1[5-7][0-9]{8,9})$']
    -- 01-05, 06/07 mobile, 09, 080 freephone; not 081/082 (shared cost), 089 (premium)
    WHEN 'FR' THEN ARRAY['^\+33(?:[1-79][0-9]{8}|80[0-9]{7})$']
    -- not 70 (personal), 803/806/807 (premium), 901/902/905/907 (shared cost, mass calls)
    WHEN 'ES' THEN ARRAY['^\+34(?!70|80[1-9]|90[1-9])[6-9][0-9]{8}$']
    -- fixed 0, mobile 3, freephone 800/803; not 89x (premium), 1xx, 4x, 7x
    WHEN 'IT' THEN ARRAY['^\+39(?:0[0-9]{5,10}|3[0-9]{8,9}|80[03][0-9]{3,6})$']
    -- geographic, 06 mobile, 085/088, 0800; not 090x (premium), 084/087 (personal, VoIP)
    WHEN 'NL' THEN ARRAY['^\+31(?:[1-57][0-9]{8}|6[0-9]{8}|8[58][0-9]{7}|800[0-9]{4,7})$']
    -- not 0990 (premium), 0570 (shared cost), 0180 (mass calls)
    WHEN 'JP' THEN ARRAY['^\+81(?!990|570|180)[1-9][0-9]{8,9}$']
    -- not 060 (premium information)
    WHEN 'KR' THEN ARRAY['^\+82(?!60)[1-9][0-9]{7,9}$']
    -- mobile 13-19, Beijing 10, area codes 2X and 3-9XX
    WHEN 'CN' THEN ARRAY['^\+86(?:1[3-9][0-9]{9}|10[0-9]{8}|[2-9][0-9]{8,10})$']
    WHEN 'HK' THEN ARRAY['^\+852[2-9][0-9]{7}$']
    -- not 020x (premium information)
    WHEN 'TW' THEN ARRAY['^\+886(?!20)[2-9][0-9]{7,8}$']
    -- 3/6 fixed, 8/9 mobile; not 1900 (premium)
    WHEN 'SG' THEN ARRAY['^\+65[3689][0-9]{7}$']
    WHEN 'IN' THEN ARRAY['^\+91[1-9][0-9]{9}$']
    -- 02/03/07/08 geographic, 04 mobile; not 19 (premium), 13/1300/1800, 05 (personal)
    WHEN 'AU' THEN ARRAY['^\+61[23478][0-9]{8}$']
    -- area codes 11-99 without a 0 (not 0300/0500/0800/0900 service numbers)
    WHEN 'BR' THEN ARRAY['^\+55[1-9][1-9][0-9]{8,9}$']
    -- not 900 (premium)
    WHEN 'MX' THEN ARRAY['^\+52(?!900)[1-9][0-9]{9}$']
    ELSE '{}'::text[] END
$$;

COMMENT ON FUNCTION ccd_national_dial_patterns(text) IS
    'National-only dial patterns (E.164) of a country, without its premium-rate ranges.';

-- Every change of a tenant's dial patterns, with what was before and why. Writers say who
-- and why with set_config('ccd.dial_actor' / 'ccd.dial_reason', ..., true).
CREATE TABLE dial_pattern_changes (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    old         text[],
    new         text[] NOT NULL,
    reason      text NOT NULL,
    actor       text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dial_pattern_changes_tenant ON dial_pattern_changes (tenant_id, changed_at);

-- A new tenant gets its country's national patterns unless the INSERT names others; a
-- tenant still on its country's national patterns follows a change of country.
ALTER TABLE tenants ALTER COLUMN dial_patterns DROP DEFAULT;

CREATE FUNCTION ccd_tenant_dial_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.dial_patterns IS NULL THEN
            NEW.dial_patterns := ccd_national_dial_patterns(NEW.default_country);
        END IF;
    ELSIF NEW.default_country IS DISTINCT FROM OLD.default_country
          AND NEW.dial_patterns IS NOT DISTINCT FROM OLD.dial_patterns
          AND OLD.dial_patterns = ccd_national_dial_patterns(OLD.default_country) THEN
        NEW.dial_patterns := ccd_national_dial_patterns(NEW.default_country);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tenants_dial_defaults BEFORE INSERT OR UPDATE OF default_country, dial_patterns
    ON tenants FOR EACH ROW EXECUTE FUNCTION ccd_tenant_dial_defaults();

CREATE FUNCTION ccd_tenant_dial_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.dial_patterns IS NOT DISTINCT FROM OLD.dial_patterns THEN
        RETURN NULL;
    END IF;
    INSERT INTO dial_pattern_changes (tenant_id, old, new, reason, actor)
    VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.dial_patterns END, NEW.dial_patterns,
            COALESCE(NULLIF(current_setting('ccd.dial_reason', true), ''),
                     CASE WHEN TG_OP = 'INSERT' THEN 'new tenant'
                          ELSE 'changed directly in the database' END),
            COALESCE(NULLIF(current_setting('ccd.dial_actor', true), ''), session_user));
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_dial_audit AFTER INSERT OR UPDATE OF dial_patterns, default_country
    ON tenants FOR EACH ROW EXECUTE FUNCTION ccd_tenant_dial_audit();

-- Existing tenants: the two old default patterns go, wherever they are; the tenant's
-- national ones come in; patterns an administrator added are kept. Each change is
-- recorded above and raised as a WARNING (ccd logs it while migrating).
DO $$
DECLARE
    t record;
    old_defaults CONSTANT text[] := ARRAY['^[0-9]{3,6}$', '^\+?[1-9][0-9]{6,14}$'];
    kept text[];
    tightened text[];
BEGIN
    PERFORM set_config('ccd.dial_actor', 'migration 056_dial_patterns', true);
    FOR t IN SELECT id, slug, default_country, dial_patterns FROM tenants
             WHERE dial_patterns && old_defaults ORDER BY id LOOP
        kept := ARRAY(SELECT p FROM unnest(t.dial_patterns) WITH ORDINALITY AS u (p, i)
                      WHERE p <> ALL (old_defaults) ORDER BY i);
        tightened := ccd_national_dial_patterns(t.default_country)
                     || ARRAY(SELECT p FROM unnest(kept) AS k (p)
                              WHERE p <> ALL (ccd_national_dial_patterns(t.default_country)));
        PERFORM set_config('ccd.dial_reason', format(
            'the old default patterns allowed any international, premium-rate or short '
            'number; now national-only for %s', t.default_country), true);
        UPDATE tenants SET dial_patterns = tightened WHERE id = t.id;
        IF tightened = '{}' THEN
            RAISE WARNING 'ccd: tenant % (country %): dial patterns % removed; ccd has no '
                'number plan for %, so the tenant can dial no number until an administrator '
                'runs `ccd tenants dial-patterns % --add-pattern ...`',
                t.slug, t.default_country, t.dial_patterns, t.default_country, t.slug;
        ELSE
            RAISE WARNING 'ccd: tenant %: dial patterns tightened from % to % (national-only '
                'for %; `ccd tenants dial-patterns %` shows what they allow)',
                t.slug, t.dial_patterns, tightened, t.default_country, t.slug;
        END IF;
    END LOOP;
    PERFORM set_config('ccd.dial_reason', '', true);
    PERFORM set_config('ccd.dial_actor', '', true);
END
$$;
