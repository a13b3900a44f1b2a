{#- Incremental attribution models (int_profile_events, int_profile_message_events): removing the
    stored rows whose staged row is gone, without comparing every stored row with every staged one.

    A staged model (stg_events, stg_message_events: staged_slice in incremental_events.sql) stamps
    `staged_at` (its run's start) on every row it writes, and loses rows in exactly two ways:
      - its post-hook deletes the rows after as_of when as_of moves back;
      - every row is rewritten (staged_slice's safety net, or --full-refresh), so every row
        carries a stamp later than anything attributed before.
    (A row it rewrites keeps its key and gets a new stamp.) Let M be the newest staged_at stored in
    the attribution model and X the newest occurred_at of the staged rows stamped <= M (the rows
    it has seen and that were not rewritten since):
      - X is null although rows are stored: every staged row was rewritten since (or none is left):
        every stored row is dropped and every staged row attributed again;
      - otherwise a stored row after X is gone or was rewritten (its own unchanged staged row would
        make X at least its occurred_at): it is dropped, and a rewritten one is attributed again
        by the staged_at > M filter of the run. A stored row at or before X cannot have been
        deleted by the post-hook (every deletion removed only rows after an as_of that the
        surviving row with occurred_at X is not after), so it is kept.
    Two aggregates over the staged model instead of an anti-join of every stored row.

    With `log_removed` (int_profile_events), the event_ids of the rows it drops go to the side
    table `<model>__removed` (event_id, removed_at: the run's start) first, and a run that drops or
    rebuilds every row (a full build, nothing stored, every staged row rewritten) writes a marker
    (event_id null) instead; the post-hook (profile_events_post_hook) adds the rows that lost their
    profile. Each run prunes the entries of earlier runs: the side table says what the last run of
    the model removed, so that int_profile_last_product looks up only those among its stored last
    events (or checks every one after a marker). -#}

{#- Drops the stored rows of `this` whose row in `staged` (a relation with staged_at and
    occurred_at, as is `this`) may be gone, as described above, in a real run only (dbt
    compile/show change nothing; `log_removed`: see above). Returns true when every stored row was dropped (the model then
    attributes every staged row, like a full build), false otherwise. -#}
{% macro drop_unstaged_rows(staged, label, log_removed=false) -%}
  {%- if not execute -%}{{ return(false) }}{%- endif -%}
  {%- set writes = flags.WHICH in ('run', 'build') -%}
  {%- set record = log_removed and writes -%}
  {%- if not is_incremental() -%}
    {%- if record -%}{%- do lifeline.run_statements(lifeline.record_removed_events(none)) -%}{%- endif -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set marks = run_query('select max(staged_at) from ' ~ this).rows[0] -%}
  {%- set newest_stamp = lifeline.as_naive_datetime(marks[0]) -%}
  {%- if newest_stamp is none -%}
    {{ log(label ~ " (incremental): nothing stored, attributing every staged row", info=True) }}
    {%- if record -%}{%- do lifeline.run_statements(lifeline.record_removed_events(none)) -%}{%- endif -%}
    {{ return(true) }}
  {%- endif -%}
  {%- set kept = run_query('select max(occurred_at) from ' ~ staged ~ ' where staged_at <= '
                           ~ lifeline.stamp_literal(newest_stamp)).rows[0] -%}
  {%- set kept_until = lifeline.as_naive_datetime(kept[0]) -%}
  {%- if kept_until is none -%}
    {{ log(label ~ " (incremental): every row of " ~ staged.identifier ~ " was staged after "
           ~ newest_stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
           ~ " (it was reprocessed or refreshed): attributing every row again", info=True) }}
    {%- if record -%}{%- do lifeline.run_statements(lifeline.record_removed_events(none)) -%}{%- endif -%}
    {%- if writes -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {{ return(true) }}
  {%- endif -%}
  {{ log(label ~ " (incremental): rows of " ~ staged.identifier ~ " staged up to "
         ~ newest_stamp.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " reach "
         ~ kept_until.strftime("%Y-%m-%d %H:%M:%S") ~ ": stored rows after it are dropped", info=True) }}
  {%- set dropped = 'occurred_at > ' ~ lifeline.stamp_literal(kept_until) -%}
  {%- if record -%}{%- do lifeline.run_statements(lifeline.record_removed_events(dropped)) -%}{%- endif -%}
  {%- if writes -%}{%- do run_query('delete from ' ~ this ~ ' where ' ~ dropped) -%}{%- endif -%}
  {{ return(false) }}
{%- endmacro %}


{#- The side table of the event_ids the current model (int_profile_events) removed in its last run. -#}
{% macro removed_events_relation(model) -%}
  {{ return(lifeline.identity_side_relation(model, '__removed')) }}
{%- endmacro %}

{#- Statements recording, in the side table of `this`, the event_ids of the stored rows matching
    `condition` (SQL) as removed by this run, or, when `condition` is none, the marker "every row"
    (event_id null); entries of earlier runs are pruned first. -#}
{% macro record_removed_events(condition) -%}
  {%- set removed = lifeline.removed_events_relation(this) -%}
  {%- set entries = ('select event_id, ' ~ lifeline.run_stamp() ~ ' from ' ~ this ~ ' where ' ~ condition) if condition is not none
                    else ('select cast(null as ' ~ dbt.type_string() ~ '), ' ~ lifeline.run_stamp()) -%}
  {{ return([
      'create table if not exists ' ~ removed ~ ' (event_id ' ~ dbt.type_string() ~ ', removed_at ' ~ dbt.type_timestamp() ~ ')',
      'delete from ' ~ removed ~ ' where removed_at < ' ~ lifeline.run_stamp(),
      'insert into ' ~ removed ~ ' (event_id, removed_at) ' ~ entries]) }}
{%- endmacro %}

{% macro run_statements(statements) -%}
  {%- for statement in statements -%}{%- do run_query(statement) -%}{%- endfor -%}
{%- endmacro %}

{#- Post-hook of int_profile_events: the rows this run wrote without a profile are recorded as
    removed, then deleted. -#}
{% macro profile_events_post_hook() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set lost = 'attributed_at = ' ~ lifeline.run_stamp() ~ ' and profile_id is null' -%}
  {{ (lifeline.record_removed_events(lost) + ['delete from ' ~ this ~ ' where ' ~ lost]) | join(';\n') }}
{%- endmacro %}

{#- The side table of int_profile_events (`events`) when it tells which events it removed after
    `since` (a SQL timestamp: the start of the caller's last run; default: in this run):
    {'relation': it, 'reason': none, 'entries': SQL condition on its removed_at}, else 'relation'
    none and 'reason' says why not (it is missing, or says every row was removed or rebuilt then).
    It holds the removals of the last run of `events` only. -#}
{% macro events_removed_since(events, since=none) -%}
  {%- set when = ' in this run' if since is none else ' since the last run' -%}
  {%- set entries = ('removed_at >= ' ~ lifeline.run_stamp()) if since is none else ('removed_at > ' ~ since) -%}
  {%- set removed = lifeline.removed_events_relation(events) -%}
  {%- set reason = lifeline.missing_side_table([removed]) -%}
  {%- if reason is none -%}
    {%- set everything = run_query('select count(*) from ' ~ removed ~ ' where event_id is null and ' ~ entries).rows[0][0] -%}
    {%- if everything > 0 -%}{%- set reason = events.identifier ~ ' removed or rebuilt every row' ~ when -%}{%- endif -%}
  {%- endif -%}
  {{ return({'relation': none if reason is not none else removed, 'reason': reason, 'entries': entries}) }}
{%- endmacro %}

{#- For int_profile_last_product: the side table of int_profile_events (`events`) when it tells
    which events it removed in this run, else none (events_removed_since), logged: the caller then
    checks every stored last event. -#}
{% macro events_removed_this_run(events, label) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set found = lifeline.events_removed_since(events) -%}
  {%- if found.reason is not none -%}
    {{ log(label ~ " (incremental): " ~ found.reason ~ ": checking every stored last event", info=True) }}
    {{ return(none) }}
  {%- endif -%}
  {{ log(label ~ " (incremental): checking the stored last events " ~ events.identifier ~ " wrote or removed in this run", info=True) }}
  {{ return(found.relation) }}
{%- endmacro %}
