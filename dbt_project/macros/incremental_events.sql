{#- Incremental processing of time-stamped raw rows (events, message events).

    A run processes a *slice*: the raw rows whose occurred_at lies in a window, plus every raw row
    that shares a key with one of them (so a duplicate arriving later is ranked against the copy
    already stored, exactly as a full refresh ranks it), plus rows without a parseable
    occurred_at (they belong to no window; they are dropped and listed in quarantine). The slice
    replaces the stored rows with the same keys (delete+insert on the key).

    The window (vars; timestamps are ISO-8601, without offset = UTC):
      partition_start / partition_end set (e.g. a Dagster daily partition):
          [partition_start - event_lookback_days, partition_end)   (either end may be omitted)
      otherwise:
          [max(occurred_at) already stored - event_lookback_days, open end)
    event_lookback_days (default 3) is how late an event may arrive and still be picked up.

    Safety net: rows outside the window must be unchanged, which is checked by counting (raw rows
    outside the slice = stored rows outside the slice). When the counts differ (an event older
    than the look-back arrived, or the raw table was replaced), the run reprocesses every raw row
    and says so in the log; `--full-refresh` does the same on purpose. -#}

{#- A naive UTC datetime from a var holding an ISO-8601 timestamp (offsets converted), or none
    when the var is unset; anything else fails the run naming the var. -#}
{% macro window_var_timestamp(name) -%}
  {%- set raw_value = var(name, none) -%}
  {%- if raw_value is none or raw_value | string | trim in ('', 'null', 'None') -%}{{ return(none) }}{%- endif -%}
  {%- set text = raw_value | string | trim -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?(Z|z|[+-][0-9]{2}:?[0-9]{2})?$', text) -%}
    {{ exceptions.raise_compiler_error("dbt var " ~ name ~ "=" ~ raw_value ~ " is not an ISO-8601 timestamp: pass e.g. 2026-11-01 or 2026-11-01T00:00:00Z") }}
  {%- endif -%}
  {%- set value = modules.datetime.datetime.fromisoformat(text | replace('z', 'Z')) -%}
  {%- if value.tzinfo is not none -%}
    {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
  {%- endif -%}
  {{ return(value) }}
{%- endmacro %}

{#- The processing window of an incremental model as (lower, upper) naive UTC datetimes, either
    possibly none (unbounded). watermark_sql returns the max occurred_at already stored. -#}
{% macro event_window(watermark_sql) -%}
  {%- set lookback = modules.datetime.timedelta(days=var('event_lookback_days', 3) | float) -%}
  {%- set start = lifeline.window_var_timestamp('partition_start') -%}
  {%- set end = lifeline.window_var_timestamp('partition_end') -%}
  {%- if start is not none or end is not none -%}
    {{ return((start - lookback if start is not none else none, end)) }}
  {%- endif -%}
  {%- set watermark = run_query(watermark_sql).columns[0].values()[0] -%}
  {%- if watermark is none -%}{{ return((none, none)) }}{%- endif -%}
  {%- if watermark is string -%}
    {%- set watermark = modules.datetime.datetime.fromisoformat(watermark[:19]) -%}
  {%- endif -%}
  {{ return((watermark - lookback, none)) }}
{%- endmacro %}

{#- SQL condition: ts_expr is null or inside the window (lower, upper). -#}
{% macro in_event_window(ts_expr, window) -%}
  ({{ ts_expr }} is null
  {%- if window[0] is not none %} or ({{ ts_expr }} >= cast('{{ window[0].strftime("%Y-%m-%d %H:%M:%S") }}' as {{ dbt.type_timestamp() }})
  {%- else %} or (1 = 1
  {%- endif %}
  {%- if window[1] is not none %} and {{ ts_expr }} < cast('{{ window[1].strftime("%Y-%m-%d %H:%M:%S") }}' as {{ dbt.type_timestamp() }}){% endif %}))
{%- endmacro %}

{#- The human-readable window for the log. -#}
{% macro describe_window(window) -%}
  {{ return("[" ~ (window[0].strftime("%Y-%m-%d %H:%M:%S") if window[0] is not none else "-inf") ~ ", "
            ~ (window[1].strftime("%Y-%m-%d %H:%M:%S") if window[1] is not none else "+inf") ~ ")") }}
{%- endmacro %}

{#- Builds the temporary table `scope_table` with the rows an incremental run processes (all
    columns of `rows_sql` plus _slice_key and _slice_ts), checks that the rows outside the
    window are the ones stored, and returns the relation to read rows from (`rows_sql` itself
    when not incremental). rows_sql: a relation or parenthesised query (the input rows);
    key_sql / ts_sql: the row key and its occurred_at over alias `source`; key_column: the
    stored column holding the key; stored_filter: which stored rows set the watermark.

    Raw input (occurred_at as text) passes text_ts_sql and raw_id_sql, so that the costly
    parsing (timestamps, keys) touches only the rows that may matter instead of every raw row:
      - text_ts_sql: the raw occurred_at as text. A row whose text starts with a digit and sorts
        before the window's lower bound minus 2 days (more than any UTC offset) is older than the
        window or unparseable: it is left out without parsing;
      - raw_id_sql: the raw id the key is made from, as text. Rows sharing a key with the window
        are looked up by that raw text (plus every row whose id is null or has a leading or
        trailing space, the only ones whose key may equal another spelling's), then keyed.
    The check then counts whole tables (every raw row has one stored row): raw rows outside the
    slice (and before partition_end) must equal stored rows outside it.

    one_row_per_key: the input has one row per key (stg_* read the usable base rows, ranked one
    per key), so no row outside the window shares a key with it: the slice is a plain filter. -#}
{% macro incremental_slice(rows_sql, scope_table, key_sql, key_column, ts_sql, label, stored_filter='1 = 1',
                           text_ts_sql=none, raw_id_sql=none, one_row_per_key=false) -%}
  {%- if not (is_incremental() and execute) -%}{{ return(rows_sql) }}{%- endif -%}
  {%- set window = lifeline.event_window('select max(occurred_at) from ' ~ this ~ ' where ' ~ stored_filter) -%}
  {%- do run_query('drop table if exists ' ~ scope_table) -%}
  {%- set prefiltered = text_ts_sql is not none and raw_id_sql is not none and window[0] is not none -%}
  {%- if prefiltered -%}
    {%- set old_prefix = (window[0] - modules.datetime.timedelta(days=2)).strftime("%Y-%m-%d") -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as
        with candidates as (
            select ' ~ key_sql ~ ' as _slice_key, ' ~ raw_id_sql ~ ' as _slice_hint, ' ~ ts_sql ~ ' as _slice_ts
            from ' ~ rows_sql ~ ' as source
            where not (' ~ text_ts_sql ~ " >= '0' and " ~ text_ts_sql ~ " < '" ~ old_prefix ~ "')
        ),
        window_keys as (
            select distinct _slice_key, _slice_hint from candidates where " ~ lifeline.in_event_window('_slice_ts', window) ~ '
        ),
        sharing as (
            select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts
            from ' ~ rows_sql ~ ' as source
            where ' ~ raw_id_sql ~ ' in (select _slice_hint from window_keys where _slice_hint is not null)
               or ' ~ raw_id_sql ~ " is null or " ~ raw_id_sql ~ " like ' %' or " ~ raw_id_sql ~ " like '% '" ~ '
        )
        select * from sharing where _slice_key in (select _slice_key from window_keys)') -%}
    {%- set newer = "cast('" ~ window[1].strftime("%Y-%m-%d %H:%M:%S") ~ "' as " ~ dbt.type_timestamp() ~ ")" if window[1] is not none else none -%}
    {%- set counts = run_query('select
          (select count(*) from ' ~ rows_sql ~ ' as source),
          (select count(*) from ' ~ scope_table ~ '),
          ' ~ ('(select count(*) from ' ~ rows_sql ~ ' as source where not (' ~ text_ts_sql ~ " >= '0' and " ~ text_ts_sql ~ " < '" ~ old_prefix ~ "') and "
                ~ ts_sql ~ ' >= ' ~ newer ~ ' and ' ~ key_sql ~ ' not in (select _slice_key from ' ~ scope_table ~ '))' if newer else '0') ~ ',
          (select count(*) from ' ~ this ~ '),
          (select count(*) from ' ~ this ~ ' where ' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ ')),
          ' ~ ('(select count(*) from ' ~ this ~ ' where occurred_at >= ' ~ newer ~ ' and ' ~ key_column ~ ' not in (select _slice_key from ' ~ scope_table ~ '))' if newer else '0') ~ '') -%}
    {%- set n = counts.rows[0] -%}
    {%- set input_outside = (n[0] | int) - (n[1] | int) - (n[2] | int) -%}
    {%- set stored_outside = (n[3] | int) - (n[4] | int) - (n[5] | int) -%}
    {%- set processing = n[1] -%}
  {%- else -%}
    {%- if one_row_per_key -%}
    {#- Each key has one input row: the slice is the window's rows (a filter, no key lookup). -#}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as
        select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts
        from ' ~ rows_sql ~ ' as source
        where ' ~ lifeline.in_event_window(ts_sql, window)) -%}
    {%- else -%}
    {#- The window's keys first (key and timestamp only), then the rows with those keys: every
        column of every input row is not materialised. -#}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as
        with window_keys as (
            select distinct ' ~ key_sql ~ ' as _slice_key
            from ' ~ rows_sql ~ ' as source
            where ' ~ lifeline.in_event_window(ts_sql, window) ~ '
        )
        select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts
        from ' ~ rows_sql ~ ' as source
        where ' ~ key_sql ~ ' in (select _slice_key from window_keys)') -%}
    {%- endif -%}
    {%- set older = "cast('" ~ window[0].strftime("%Y-%m-%d %H:%M:%S") ~ "' as " ~ dbt.type_timestamp() ~ ")" if window[0] is not none else none -%}
    {%- if older is none -%}
      {{ log(label ~ " (incremental): window " ~ lifeline.describe_window(window) ~ ", no lower bound", info=True) }}
      {{ return(scope_table) }}
    {%- endif -%}
    {#- Rows older than the window: input minus those pulled into the slice by their key must
        equal stored minus those the slice replaces. -#}
    {%- set counts = run_query('select
          (select count(*) from ' ~ rows_sql ~ ' as source where ' ~ ts_sql ~ ' < ' ~ older ~ '),
          (select count(*) from ' ~ scope_table ~ ' where _slice_ts < ' ~ older ~ '),
          (select count(*) from ' ~ this ~ ' where occurred_at < ' ~ older ~ '),
          (select count(*) from ' ~ this ~ ' where occurred_at < ' ~ older ~ ' and ' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ ')),
          (select count(*) from ' ~ scope_table ~ ')') -%}
    {%- set n = counts.rows[0] -%}
    {%- set input_outside = (n[0] | int) - (n[1] | int) -%}
    {%- set stored_outside = (n[2] | int) - (n[3] | int) -%}
    {%- set processing = n[4] -%}
  {%- endif -%}
  {%- if input_outside != stored_outside -%}
    {{ log(label ~ " (incremental): " ~ input_outside ~ " input rows outside the window " ~ lifeline.describe_window(window) ~ " but " ~ stored_outside ~ " stored (rows older than var event_lookback_days arrived, or the input was replaced): reprocessing every row", info=True) }}
    {%- do run_query('drop table ' ~ scope_table) -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts from ' ~ rows_sql ~ ' as source') -%}
    {#- Only a real run empties the table; dbt compile/show must not change data. -#}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
  {%- else -%}
    {{ log(label ~ " (incremental): window " ~ lifeline.describe_window(window) ~ ", processing " ~ processing ~ " rows", info=True) }}
  {%- endif -%}
  {{ return(scope_table) }}
{%- endmacro %}

{#- md5 over the raw event's columns as text: identifies a raw row that has no event_id. -#}
{% macro raw_event_row_hash(alias) -%}
md5(
            coalesce(cast({{ alias }}.event_id as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.event_type as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.occurred_at as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.anonymous_id as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.user_id as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.email as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.phone as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.product_id as {{ dbt.type_string() }}), '') || '|'
            || coalesce(cast({{ alias }}.properties as {{ dbt.type_string() }}), '')
        )
{%- endmacro %}

{#- The grain message events are de-duplicated in: message_id, event, occurred_at (as text). -#}
{% macro message_event_key(message_id, event, occurred_at) -%}
coalesce({{ message_id }}, '') || '|' || coalesce({{ event }}, '') || '|' || coalesce(cast({{ occurred_at }} as {{ dbt.type_string() }}), '')
{%- endmacro %}
