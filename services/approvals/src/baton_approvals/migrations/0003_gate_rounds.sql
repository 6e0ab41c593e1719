-- Gate semantics decided by the scheduler (ADR 0410): new outcomes, the gate's rules as
-- shown to approvers, re-opened (escalated) gates, and Slack follow-ups.
alter table gates drop constraint gates_state_check;
alter table gates add constraint gates_state_check
    check (state in ('pending', 'approved', 'denied', 'cancelled', 'expired', 'escalated'));

alter table gates
    add column required integer not null default 1,
    add column excluded text[] not null default '{}',
    add column context jsonb,
    add column deadline timestamptz,
    add column require_comment_on_deny boolean not null default false,
    add column round integer not null default 1,
    add column escalated_to text[];

-- Slack messages besides a gate's own: a reminder in its thread before the deadline,
-- and the update of a superseded message when the gate re-opens to others.
create table slack_followups (
    id bigserial primary key,
    gate_id text not null references gates (gate_id),
    kind text not null check (kind in ('reminder', 'superseded')),
    channel text,
    ts text,
    text text not null,
    created_at timestamptz not null default now(),
    done_at timestamptz,
    attempts integer not null default 0,
    next_attempt_at timestamptz,
    error text
);

create index slack_followups_due on slack_followups (created_at) where done_at is null;
