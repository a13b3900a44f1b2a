{#- Data tests of incremental models on incremental runs: only the rows the run wrote.

    A test on an incremental model whose rows carry the start of the run that wrote them (based_at,
    staged_at, attributed_at, changed_at: lifeline.run_stamp()) sets
    `config: {where: "<stamp> >= __run_started_at__"}` in its YAML. In a `dbt build` the placeholder
    becomes this invocation's start, so the test reads the rows this run wrote; DuckDB skips the
    older row groups by their min/max, so the filter costs next to nothing. A `dbt test` on its own
    wrote nothing, so its tests read every row. A unique test may be scoped so only when the model
    writes by delete+insert (or merge) on the tested key: a written row replaces every stored row with
    its key, so a duplicate can only be among the rows the run wrote (each YAML says so).
    On `--full-refresh` builds (the nightly_full_check job) and with the var data_tests_full_scan=true
    a `where` holding the placeholder is dropped: the tests scan every row.

    dbt renders YAML configs without project macros, hence the placeholder replaced here (dbt's
    documented override of get_where_subquery). -#}
{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if where and '__run_started_at__' in where and (lifeline.data_tests_full_scan() or invocation_args_dict.get('which') != 'build') -%}
    {%- do return(relation) -%}
  {%- endif -%}
  {%- if where and '__run_started_at__' in where -%}
    {%- set started = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- set where = where | replace('__run_started_at__', started) -%}
  {%- endif -%}
  {%- if where -%}
    {%- do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") -%}
  {%- endif -%}
  {%- do return(relation) -%}
{%- endmacro %}

{#- True when data tests scan whole tables: full-refresh builds, or var data_tests_full_scan. -#}
{% macro data_tests_full_scan() -%}
  {{ return(flags.FULL_REFRESH or (var('data_tests_full_scan', false) | string | lower in ('true', '1', 'yes'))) }}
{%- endmacro %}
