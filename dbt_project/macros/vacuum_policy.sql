{#- DuckDB: when the row groups of rows deleted by incremental runs are vacuumed (README "Deleted rows").

    An incremental model writes by delete+insert: the deleted rows stay in their row groups until a
    checkpoint vacuums them (merges row groups whose live rows fit in fewer). DuckDB checkpoints at
    every large commit and vacuums then, so by default each incremental model's commit pays for it.
    This policy (called from the on-run-start hook) defers the vacuum of an incremental run
    (DuckDB's max_vacuum_tasks = 0 for the run) while every table of the warehouse holds less than
    the var vacuum_deleted_share (a fraction) of deleted rows. A run that starts with one table at or
    over it, and every --full-refresh run, vacuums as DuckDB does by default: any checkpoint with
    vacuum on reclaims rows deleted while it was off, in every table. So a table holds at most that
    share of deleted rows plus one run's deletes when a run starts.
    A max_vacuum_tasks in the profile's settings is set again on every dbt cursor: it overrides this. -#}
{% macro duckdb_vacuum_policy() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- if flags.FULL_REFRESH -%}
    {{ log("Lifeline vacuum: on (full refresh)", info=True) }}
    {{ return('') }}
  {%- endif -%}
  {%- set limit = var('vacuum_deleted_share', 0.2) | float -%}
  {%- set largest = lifeline.duckdb_largest_deleted_share() -%}
  {%- set described = ('at most %.2f%% deleted rows (%s)' % (100 * largest[1], largest[0])) if largest else 'no incremental table yet' -%}
  {%- if limit <= 0 or (largest and largest[1] >= limit) -%}
    {{ log("Lifeline vacuum: on, " ~ described ~ " (vacuum_deleted_share " ~ limit ~ ")", info=True) }}
    {{ return('') }}
  {%- endif -%}
  {{ log("Lifeline vacuum: deferred, " ~ described ~ " (vacuum_deleted_share " ~ limit ~ ")", info=True) }}
  {{ return('set global max_vacuum_tasks = 0;') }}
{%- endmacro %}

{#- (relation, share of its stored rows that are deleted) of the warehouse's table with the largest
    share, or none when it has no table with rows. Every table, not only the incremental models': side
    tables such as profiles__inputs are written by delete+insert too. duckdb_tables().estimated_size
    counts the stored rows, deleted ones included until a vacuum drops them; count(*) the live rows. -#}
{% macro duckdb_largest_deleted_share() -%}
  {%- set stored = run_query("select schema_name, table_name, estimated_size from duckdb_tables()
                              where database_name = current_database() and not temporary and estimated_size > 0") -%}
  {%- if stored.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
  {%- set counts = [] -%}
  {%- for row in stored.rows -%}
    {%- do counts.append("select '" ~ row[0] ~ "." ~ row[1] ~ "' as relation, 1 - count(*) / " ~ row[2] ~ " as deleted_share from "
                         ~ adapter.quote(row[0]) ~ "." ~ adapter.quote(row[1])) -%}
  {%- endfor -%}
  {%- set largest = run_query(counts | join(' union all ') ~ " order by deleted_share desc limit 1").rows[0] -%}
  {{ return((largest[0], largest[1] | float)) }}
{%- endmacro %}
