{#- on-run-start: helper functions the warehouse lacks, and the Python-written prediction table
    (declared as a source) so the first build works before the prediction step has ever run. -#}
{% macro lifeline_prepare_warehouse() -%}
  {%- if execute -%}{{ log("Lifeline per-run vars (" ~ ('LIFELINE_RUN_VARS' if env_var('LIFELINE_RUN_VARS', '') else '--vars')
                             ~ "): as_of " ~ lifeline.run_var('as_of') ~ ", partition window [" ~ lifeline.run_var('partition_start')
                             ~ ", " ~ lifeline.run_var('partition_end') ~ ")", info=True) }}{%- endif -%}
  {{ return(adapter.dispatch('lifeline_prepare_warehouse', 'lifeline')()) }}
{%- endmacro %}

{% macro predictions_table_ddl() -%}
create schema if not exists predictions;
create table if not exists predictions.profile_predictions (
  profile_id {{ dbt.type_string() }}, p_alive double precision, expected_purchases_90d double precision,
  frequency integer, recency_days double precision, t_days double precision, model {{ dbt.type_string() }},
  r double precision, alpha double precision, a double precision, b double precision,
  as_of {{ dbt.type_timestamp() }}, fitted_at {{ dbt.type_timestamp() }}
);
{%- endmacro %}

{% macro default__lifeline_prepare_warehouse() -%}
create or replace function lifeline_try_timestamp(v text) returns timestamp
language plpgsql immutable set timezone = 'UTC' as $$
begin
  if v is null or btrim(v) = '' then return null; end if;
  return (btrim(v)::timestamptz at time zone 'UTC');
exception when others then return null;
end $$;
create or replace function lifeline_try_numeric(v text) returns double precision
language plpgsql immutable as $$
begin
  if v is null or btrim(v) = '' then return null; end if;
  return btrim(v)::double precision;
exception when others then return null;
end $$;
{{ lifeline.predictions_table_ddl() }}
{%- endmacro %}

{% macro duckdb__lifeline_prepare_warehouse() -%}
{{ lifeline.predictions_table_ddl() }}
{{ lifeline.duckdb_vacuum_policy() }}
{%- endmacro %}
