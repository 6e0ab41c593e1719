-- Every decision a person asked for through this service: one per person and gate.
-- The scheduler remains the judge (quorum, four-eyes, expiry); this table is what
-- lets the service refuse a person's second decision and show a gate's history.
create table decisions (
    gate_id text not null references gates (gate_id),
    approver text not null,
    decision text not null check (decision in ('approve', 'deny')),
    comment text,
    channel text not null,
    command_id text not null unique,
    requested_at timestamptz not null,
    primary key (gate_id, approver)
);

create index decisions_requested on decisions (requested_at desc);

-- The Slack message of a gate: where it is, and which gate state it shows.
-- A notifier posts a message while slack_shows is null and updates it when
-- the gate's state differs from slack_shows (after GateClosed arrives).
alter table gates
    add column slack_channel text,
    add column slack_ts text,
    add column slack_shows text,
    add column slack_attempts integer not null default 0,
    add column slack_next_attempt_at timestamptz,
    add column slack_error text;

create index gates_slack_due on gates (opened_at) where slack_shows is distinct from state;

-- Signatures of Slack callbacks already used: a replay inside the window is refused.
create table slack_callbacks_seen (
    signature text primary key,
    seen_at timestamptz not null
);
