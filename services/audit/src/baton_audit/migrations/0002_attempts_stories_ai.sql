-- Step attempts, AI interactions and story versions, all derived from the logs alone
-- (times are the events' times), so a rebuild reproduces them exactly.

-- One row per dispatched step attempt (StepDispatched), completed by its outcome
-- (StepSucceeded / StepFailed). retries = attempt - 1; duration = finished_at - dispatched_at.
create table step_attempts (
    attempt_id text not null,
    run_id text not null,
    step text not null,
    attempt integer not null,
    action text,
    queue text,
    input jsonb,
    dispatched_at timestamptz,
    dispatched_event_id text,
    outcome text check (outcome in ('succeeded', 'failed')),
    finished_at timestamptz,
    finished_event_id text,
    output jsonb,
    error_kind text,
    error_type text,
    error_message text,
    will_retry boolean,
    primary key (run_id, attempt_id)
);

-- What an AI step saw and said: the ``ai`` object of a step's output (docs/audit.md).
create table ai_interactions (
    attempt_id text not null,
    run_id text not null,
    step text not null,
    attempt integer not null,
    action text,
    provider text,
    model text,
    prompt jsonb,
    response jsonb,
    tool_calls jsonb,
    input_tokens bigint,
    output_tokens bigint,
    occurred_at timestamptz not null,
    event_id text not null,
    record jsonb not null,
    primary key (run_id, attempt_id)
);

-- Every published story version (baton.stories), with the YAML as published.
create table stories (
    story_id text not null,
    version integer not null,
    owner text,
    published_at timestamptz not null,
    event_id text not null,
    source text not null,
    definition jsonb not null,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    primary key (story_id, version)
);

-- Filters of the query API.
create index runs_correlation on runs (correlation_id) where correlation_id is not null;
create index runs_version_started on runs (story_id, story_version, started_at desc nulls last);
create index events_actor_run on events (actor, run_id) where actor is not null;
