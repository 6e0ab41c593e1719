-- Approval gates, projected from baton.tasks.approvals (GateOpened / GateClosed).
create table gates (
    gate_id text primary key,
    run_id text not null,
    story_id text not null,
    story_version integer not null,
    step text not null,
    approvers text[] not null,
    message text,
    state text not null default 'pending'
        check (state in ('pending', 'approved', 'denied', 'cancelled')),
    opened_at timestamptz not null,
    opened_event_id text not null,
    correlation_id text,
    decided_by text,
    comment text,
    closed_at timestamptz,
    closed_event_id text,
    -- The latest decision asked for through this service; the gate's state changes
    -- only when the scheduler's GateClosed arrives.
    decision_requested text check (decision_requested in ('approve', 'deny')),
    decision_requested_by text,
    decision_requested_at timestamptz,
    decision_command_id text
);

create index gates_state_opened on gates (state, opened_at desc);
create index gates_opened on gates (opened_at desc);
create index gates_approvers on gates using gin (approvers);
create index gates_run on gates (run_id);

-- Where the projection stands in each partition: written in the same transaction
-- as the records' effects, so every record is applied exactly once.
create table consumer_positions (
    topic text not null,
    kafka_partition integer not null,
    next_offset bigint not null,
    primary key (topic, kafka_partition)
);
