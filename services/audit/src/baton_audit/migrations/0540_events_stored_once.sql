-- ADR 0540: every value of an event is stored once. The whole envelope document
-- (`envelope`) repeated the payload (`data`) and every attribute that has a column; it is
-- now rebuilt on read from the columns (store.ENVELOPE), and only the attributes without
-- a column of their own are added. `time_text` is the document's time as written (the
-- producer's offset and precision), which `time` (timestamptz) does not keep.
alter table events
    add column time_text text,
    add column specversion text,
    add column datacontenttype text,
    add column traceparent text;
update events set
    time_text = envelope ->> 'time',
    specversion = envelope ->> 'specversion',
    datacontenttype = envelope ->> 'datacontenttype',
    traceparent = envelope ->> 'traceparent';
alter table events
    alter column time_text set not null,
    alter column specversion set not null,
    alter column datacontenttype set not null,
    drop column envelope;

-- No query reads events by id or by correlation id (runs are found by their own
-- correlation_id, runs_correlation): these indexes cost a write per event for nothing.
drop index events_id;
drop index events_correlation;

-- A run's row is rewritten by every batch holding one of its events. Room left on each
-- page lets the new version stay on its page (a HOT update: no index entry is written)
-- when no indexed column changed, which is most events of a run.
alter table runs set (fillfactor = 50);
