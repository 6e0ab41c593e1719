-- The W3C traceparent of the record that opened the gate (ADR 0800): a decision's
-- command continues the run's trace.
alter table gates add column if not exists traceparent text;
