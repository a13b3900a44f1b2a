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
    Two aggregates over the staged model instead of an anti-join of every stored row. -#}

{#- Drops the stored rows of `this` whose row in `staged` (a relation with staged_at and
    occurred_at, as is `this`) may be gone, as described above, in a real run only (dbt
    compile/show change nothing). Returns true when every stored row was dropped (the model then
    attributes every staged row, like a full build), false otherwise. -#}
{% macro drop_unstaged_rows(staged, label) -%}
  {%- if not execute or not is_incremental() -%}{{ return(false) }}{%- endif -%}
  {%- set marks = run_query('select max(staged_at) from ' ~ this).rows[0] -%}
  {%- set newest_stamp = lifeline.as_naive_datetime(marks[0]) -%}
  {%- if newest_stamp is none -%}
    {{ log(label ~ " (incremental): nothing stored, attributing every staged row", info=True) }}
    {{ return(true) }}
  {%- endif -%}
  {%- set kept = run_query('select max(occurred_at) from ' ~ staged ~ ' where staged_at <= '
                           ~ lifeline.stamp_literal(newest_stamp)).rows[0] -%}
  {%- set kept_until = lifeline.as_naive_datetime(kept[0]) -%}
  {%- if kept_until is none -%}
    {{ log(label ~ " (incremental): every row of " ~ staged.identifier ~ " was staged after "
           ~ newest_stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
           ~ " (it was reprocessed or refreshed): attributing every row again", info=True) }}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {{ return(true) }}
  {%- endif -%}
  {{ log(label ~ " (incremental): rows of " ~ staged.identifier ~ " staged up to "
         ~ newest_stamp.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " reach "
         ~ kept_until.strftime("%Y-%m-%d %H:%M:%S") ~ ": stored rows after it are dropped", info=True) }}
  {%- if flags.WHICH in ('run', 'build') -%}
    {%- do run_query('delete from ' ~ this ~ ' where occurred_at > ' ~ lifeline.stamp_literal(kept_until)) -%}
  {%- endif -%}
  {{ return(false) }}
{%- endmacro %}
