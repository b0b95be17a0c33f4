-- User-agent client hints as the browser sent them with the event's request (Sec-CH-UA-Mobile,
-- -Platform, -Model, -Form-Factors; raw structured-field values, "" when not sent), so the device
-- rules can use them and reprocessing can apply newer rules. Older rows take the default ''.
-- Every ADD is IF NOT EXISTS, so the statement can run twice (see SchemaMigrator).
ALTER TABLE {db}.events_raw ADD COLUMN IF NOT EXISTS ch_ua_mobile LowCardinality(String) DEFAULT '' AFTER country, ADD COLUMN IF NOT EXISTS ch_ua_platform LowCardinality(String) DEFAULT '' AFTER ch_ua_mobile, ADD COLUMN IF NOT EXISTS ch_ua_model String DEFAULT '' AFTER ch_ua_platform, ADD COLUMN IF NOT EXISTS ch_ua_form_factors LowCardinality(String) DEFAULT '' AFTER ch_ua_model;
