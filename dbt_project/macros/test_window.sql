{#- Data tests of the event tables on incremental runs: only the rows of the run's window.

    A test on an incremental event model (base_events, stg_events, the message events,
    int_profile_events) sets `config: {where: "__event_window__"}` in its YAML. On an incremental
    run the placeholder becomes the rows the run could have (re)written:
      occurred_at null or inside [partition_start - event_lookback_days, partition_end) when a
      partition window is set, else occurred_at >= the newest stored occurred_at minus
      event_lookback_days (the look-back the models re-read);
    `__run_started_at__` becomes this invocation's start (int_profile_events: `attributed_at >=
    __run_started_at__`, the rows this run wrote) in a `dbt build`; a `dbt test` on its own wrote
    nothing, so its tests read every row.
    On `--full-refresh` builds (the nightly_full_check job) and with the var
    data_tests_full_scan=true a `where` holding a placeholder is dropped: the tests scan every row.

    dbt renders YAML configs without project macros, hence placeholders replaced here (dbt's
    documented override of get_where_subquery). -#}
{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if where and lifeline.data_tests_full_scan() and ('__event_window__' in where or '__run_started_at__' in where) -%}
    {%- do return(relation) -%}
  {%- endif -%}
  {%- if where and '__run_started_at__' in where and invocation_args_dict.get('which') != 'build' -%}
    {#- A `dbt test` on its own wrote nothing: "the rows this run wrote" would be none, so it reads every row. -#}
    {%- do return(relation) -%}
  {%- endif -%}
  {%- if where and '__event_window__' in where -%}
    {%- set where = where | replace('__event_window__', lifeline.test_event_window(relation)) -%}
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

{#- SQL condition selecting the rows of an incremental event model inside the run's window. -#}
{% macro test_event_window(relation) -%}
  {%- set start = lifeline.window_var_timestamp('partition_start') -%}
  {%- set end = lifeline.window_var_timestamp('partition_end') -%}
  {%- set lookback_days = var('event_lookback_days', 3) | float -%}
  {%- if start is not none or end is not none -%}
    {%- set lower = start - modules.datetime.timedelta(days=lookback_days) if start is not none else none -%}
    {{ return(lifeline.in_event_window('occurred_at', (lower, end))) }}
  {%- endif -%}
  {%- set newest = '(select max(occurred_at) from ' ~ relation ~ ')' -%}
  {{ return('(occurred_at is null or occurred_at >= ' ~ lifeline.add_days(-(lookback_days | round(0, 'ceil') | int), newest) ~ ')') }}
{%- endmacro %}
