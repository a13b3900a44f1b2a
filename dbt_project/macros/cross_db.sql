{#- Cross-database helpers. Each dispatches on the adapter; default__ is ANSI-ish and covers
    PostgreSQL, with duckdb__, snowflake__ and bigquery__ variants where the syntax differs. -#}

{% macro regex_matches(expr, pattern) -%}{{ return(adapter.dispatch('regex_matches', 'lifeline')(expr, pattern)) }}{%- endmacro %}
{% macro default__regex_matches(expr, pattern) -%}({{ expr }} ~ '^({{ pattern }})$'){%- endmacro %}
{% macro duckdb__regex_matches(expr, pattern) -%}regexp_full_match({{ expr }}, '{{ pattern }}'){%- endmacro %}
{% macro snowflake__regex_matches(expr, pattern) -%}regexp_like({{ expr }}, '^({{ pattern }})$'){%- endmacro %}
{% macro bigquery__regex_matches(expr, pattern) -%}regexp_contains({{ expr }}, r'^({{ pattern }})$'){%- endmacro %}

{% macro regex_replace_all(expr, pattern, replacement) -%}{{ return(adapter.dispatch('regex_replace_all', 'lifeline')(expr, pattern, replacement)) }}{%- endmacro %}
{% macro default__regex_replace_all(expr, pattern, replacement) -%}regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g'){%- endmacro %}
{% macro snowflake__regex_replace_all(expr, pattern, replacement) -%}regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}'){%- endmacro %}
{% macro bigquery__regex_replace_all(expr, pattern, replacement) -%}regexp_replace({{ expr }}, r'{{ pattern }}', '{{ replacement }}'){%- endmacro %}

{#- Text -> UTC timestamp without time zone, null when unparseable (never an error). -#}
{% macro parse_timestamp(expr) -%}{{ return(adapter.dispatch('parse_timestamp', 'lifeline')(expr)) }}{%- endmacro %}
{% macro default__parse_timestamp(expr) -%}lifeline_try_timestamp(cast({{ expr }} as text)){%- endmacro %}
{% macro duckdb__parse_timestamp(expr) -%}timezone('UTC', try_cast(trim(cast({{ expr }} as varchar)) as timestamptz)){%- endmacro %}
{% macro snowflake__parse_timestamp(expr) -%}convert_timezone('UTC', try_to_timestamp_tz(cast({{ expr }} as varchar)))::timestamp_ntz{%- endmacro %}
{% macro bigquery__parse_timestamp(expr) -%}datetime(safe_cast(cast({{ expr }} as string) as timestamp), 'UTC'){%- endmacro %}

{% macro parse_number(expr) -%}{{ return(adapter.dispatch('parse_number', 'lifeline')(expr)) }}{%- endmacro %}
{% macro default__parse_number(expr) -%}lifeline_try_numeric(cast({{ expr }} as text)){%- endmacro %}
{% macro duckdb__parse_number(expr) -%}try_cast(trim(cast({{ expr }} as varchar)) as double){%- endmacro %}
{% macro snowflake__parse_number(expr) -%}try_to_double(cast({{ expr }} as varchar)){%- endmacro %}
{% macro bigquery__parse_number(expr) -%}safe_cast(cast({{ expr }} as string) as float64){%- endmacro %}

{#- A stable bucket 0..buckets-1 from the md5 of an expression: identical on every warehouse. -#}
{% macro hash_bucket(expr, buckets) -%}{{ return(adapter.dispatch('hash_bucket', 'lifeline')(expr, buckets)) }}{%- endmacro %}
{% macro default__hash_bucket(expr, buckets) -%}mod(('x' || substr(md5(cast({{ expr }} as text)), 1, 7))::bit(28)::int, {{ buckets }}){%- endmacro %}
{% macro duckdb__hash_bucket(expr, buckets) -%}mod(cast(('0x' || substr(md5(cast({{ expr }} as varchar)), 1, 7)) as bigint), {{ buckets }}){%- endmacro %}
{% macro snowflake__hash_bucket(expr, buckets) -%}mod(to_number(substr(md5({{ expr }}), 1, 7), 'XXXXXXX'), {{ buckets }}){%- endmacro %}
{% macro bigquery__hash_bucket(expr, buckets) -%}mod(cast(concat('0x', substr(to_hex(md5(cast({{ expr }} as string))), 1, 7)) as int64), {{ buckets }}){%- endmacro %}

{#- JSON object text from alternating key/value expressions: json_object_text(["'a'", "col"]). -#}
{% macro json_object_text(pairs) -%}{{ return(adapter.dispatch('json_object_text', 'lifeline')(pairs)) }}{%- endmacro %}
{% macro default__json_object_text(pairs) -%}cast(json_build_object({{ pairs | join(', ') }}) as text){%- endmacro %}
{% macro duckdb__json_object_text(pairs) -%}cast(json_object({{ pairs | join(', ') }}) as varchar){%- endmacro %}
{% macro snowflake__json_object_text(pairs) -%}to_json(object_construct_keep_null({{ pairs | join(', ') }})){%- endmacro %}

{#- A value that changes with every run (as_of, the partition window, partition_new_rows).
    Lifeline passes these in the environment variable LIFELINE_RUN_VARS (a JSON object), not in
    --vars: dbt re-parses the whole project whenever a --vars value differs from the last parse
    (3-4 s per invocation), while this value is read only while executing, so a run reuses the
    last parse (orchestration/dbt_runner.py). A --vars value of the same name still works (dbt run
    by hand); LIFELINE_RUN_VARS wins when it names the var. -#}
{% macro run_var(name, default=none) -%}
  {%- if execute -%}
    {%- set passed = fromjson(env_var('LIFELINE_RUN_VARS', '') or '{}') -%}
    {%- if passed is not mapping -%}
      {{ exceptions.raise_compiler_error("LIFELINE_RUN_VARS must be a JSON object, e.g. {\"as_of\": \"2026-11-01 00:00:00\"}; got: " ~ env_var('LIFELINE_RUN_VARS', '')) }}
    {%- endif -%}
    {%- if name in passed -%}{{ return(passed[name]) }}{%- endif -%}
  {%- endif -%}
  {{ return(var(name, default)) }}
{%- endmacro %}

{% macro as_of() -%}
  {%- set v = lifeline.run_var('as_of') -%}
  {%- if v -%}cast('{{ v }}' as {{ dbt.type_timestamp() }}){%- else -%}cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as {{ dbt.type_timestamp() }}){%- endif -%}
{%- endmacro %}

{% macro add_days(days, expr) -%}{{ dbt.dateadd('day', days, expr) }}{%- endmacro %}
{% macro add_minutes(minutes, expr) -%}{{ dbt.dateadd('minute', minutes, expr) }}{%- endmacro %}
{% macro add_hours(hours, expr) -%}{{ dbt.dateadd('hour', hours, expr) }}{%- endmacro %}

{#- Hour of day (0-23) of a timestamp. -#}
{% macro hour_of(expr) -%}cast(extract(hour from {{ expr }}) as integer){%- endmacro %}
