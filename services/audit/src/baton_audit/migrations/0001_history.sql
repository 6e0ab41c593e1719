-- The queryable history of runs, projected from baton.runs. Every column is derived
-- from the log alone (no wall-clock times), so a rebuild reproduces it exactly.

-- Every event of the log, as written, with its log position.
create table events (
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    id text not null,
    run_id text not null,
    seq bigint,
    type text not null,
    time timestamptz not null,
    source text not null,
    causationid text,
    correlationid text,
    actor text,
    storyid text,
    storyversion integer,
    prevhash text,
    hash text,
    data jsonb not null,
    envelope jsonb not null,
    primary key (kafka_topic, kafka_partition, kafka_offset)
);

create index events_run_seq on events (run_id, seq, kafka_offset);
create index events_id on events (id);
create index events_correlation on events (correlationid) where correlationid is not null;

-- One row per run: its state folded with baton_common.state.evolve, and a summary.
create table runs (
    run_id text primary key,
    story_id text,
    story_version integer,
    status text not null check (
        status in ('unknown', 'running', 'waiting_approval', 'succeeded', 'failed', 'cancelled')
    ),
    started_at timestamptz,
    ended_at timestamptz,
    last_seq bigint,
    correlation_id text,
    dedup_key text,
    event_count integer not null,
    updated_at timestamptz not null,
    state jsonb
);

create index runs_started on runs (started_at desc nulls last, run_id desc);
create index runs_story_started on runs (story_id, started_at desc nulls last);
create index runs_status_started on runs (status, started_at desc nulls last);

-- Approval gates of runs, from ApprovalRequested / ApprovalGranted / ApprovalDenied.
create table approvals (
    gate_id text primary key,
    run_id text not null,
    step text not null,
    approvers text[] not null default '{}',
    message text,
    requested_at timestamptz,
    requested_event_id text,
    decided_at timestamptz,
    decision text check (decision in ('approved', 'denied')),
    approver text,
    comment text,
    channel text,
    decided_event_id text
);

create index approvals_run on approvals (run_id);

-- Where the projection stands in each partition: written in the same transaction
-- as the records' effects, so every record is applied exactly once.
create table consumer_positions (
    topic text not null,
    kafka_partition integer not null,
    next_offset bigint not null,
    primary key (topic, kafka_partition)
);
