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
  {%- set raw_value = lifeline.run_var(name) -%}
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
    slice are the ones stored, and returns the relation to read rows from (`rows_sql` itself
    when not incremental). rows_sql: a relation or parenthesised query (the input rows);
    key_sql / ts_sql: the row key and its occurred_at over alias `source`; key_column: the
    stored column holding the key; stored_filter: which stored rows set the watermark.

    Raw input (a raw relation, occurred_at as text) passes text_ts_sql and raw_id_sql, and the
    model uses incremental_strategy 'lifeline_slice' with post_hook store_load_mark (below):
      - when the raw table has the load stamp (LOAD_STAMP_COLUMN, written by `lifeline load`) on
        every row, a run without partition vars processes the rows loaded after the newest
        stamp it has read (load_stamp_slice); the look-back is not needed there;
      - otherwise the window (event_window) is found by text: a row whose occurred_at text
        starts with a digit and sorts before the window's lower bound minus 2 days (more than
        any UTC offset) is older than the window or unparseable: it is left out without
        parsing. raw_id_sql, the raw id the key is made from as text, finds the rows sharing
        a key with the window by that raw text (plus every row whose id is null or has a
        leading or trailing space, the only ones whose key may equal another spelling's).
      Either way `<scope_table>_replaced` holds the stored rows the slice replaces, and the check
      counts whole tables (every raw row has one stored row): raw rows outside the slice (and
      before partition_end) must equal stored rows outside it.
    recheck_sql: stored rows to reprocess on every run although no raw row of theirs is new
    (their result depends on the run's time: base_events' future timestamps). -#}
{% macro incremental_slice(rows_sql, scope_table, key_sql, key_column, ts_sql, label, stored_filter='1 = 1',
                           text_ts_sql=none, raw_id_sql=none, recheck_sql='1 = 0') -%}
  {%- if not execute -%}{{ return(rows_sql) }}{%- endif -%}
  {%- set raw_input = text_ts_sql is not none and raw_id_sql is not none -%}
  {%- set stamps = lifeline.load_stamps(rows_sql) if raw_input else none -%}
  {%- set partitioned = lifeline.window_var_timestamp('partition_start') is not none
                        or lifeline.window_var_timestamp('partition_end') is not none -%}
  {%- set mark = lifeline.stored_load_mark() if stamps is not none and is_incremental() else none -%}
  {#- A landing or scheduled partition run (var partition_new_rows, set by orchestration/dbt_assets.py)
      whose new rows all lie in its window reads them by stamp like a run without partition vars;
      the rest of the window is unchanged since it was processed. Otherwise (a new row outside the
      window, or a backfill / re-run of days by hand) it reprocesses its window. -#}
  {%- set new_rows_in_window = false -%}
  {%- if mark is not none and partitioned and lifeline.run_var('partition_new_rows', false) in (true, 'true', 'True') -%}
    {%- set outside = run_query('select count(*) from ' ~ rows_sql ~ ' as source where source.' ~ lifeline.load_stamp_column()
                                ~ ' > ' ~ lifeline.stamp_literal(mark) ~ ' and not '
                                ~ lifeline.in_event_window(ts_sql, lifeline.event_window(none))).columns[0].values()[0] | int -%}
    {%- set new_rows_in_window = outside == 0 -%}
  {%- endif -%}
  {#- What store_load_mark keeps after this run: every row stamped up to it has been processed. -#}
  {%- if raw_input -%}
    {%- do run_query('drop table if exists ' ~ scope_table ~ '_mark') -%}
    {#- A partition run that reads its window, not every new row, leaves the mark where it was. -#}
    {%- set keep = mark if partitioned and is_incremental() and not new_rows_in_window
                   else (stamps.newest if stamps is not none else none) -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ '_mark as select '
                     ~ (lifeline.stamp_literal(keep) if keep is not none else 'cast(null as ' ~ dbt.type_timestamp() ~ ')')
                     ~ ' as loaded_at') -%}
  {%- endif -%}
  {%- if not is_incremental() -%}{{ return(rows_sql) }}{%- endif -%}
  {%- do run_query('drop table if exists ' ~ scope_table) -%}
  {%- if raw_input -%}{%- do run_query('drop table if exists ' ~ scope_table ~ '_replaced') -%}{%- endif -%}
  {%- if raw_input and mark is not none and (not partitioned or new_rows_in_window) -%}
    {%- set outcome = lifeline.load_stamp_slice(rows_sql, scope_table, key_sql, key_column, ts_sql, raw_id_sql, mark,
                                               recheck_sql) -%}
    {%- set input_outside, stored_outside, processing = outcome -%}
    {%- set describe = "rows loaded after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") -%}
  {%- else -%}
  {%- set window = lifeline.event_window('select max(occurred_at) from ' ~ this ~ ' where ' ~ stored_filter) -%}
  {%- set describe = "window " ~ lifeline.describe_window(window) -%}
  {%- set prefiltered = raw_input and window[0] is not none -%}
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
    {%- do run_query('create temporary table ' ~ scope_table ~ '_replaced as select ' ~ key_column ~ ' as _slice_key from '
                     ~ this ~ ' where ' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ ')') -%}
    {%- set newer = "cast('" ~ window[1].strftime("%Y-%m-%d %H:%M:%S") ~ "' as " ~ dbt.type_timestamp() ~ ")" if window[1] is not none else none -%}
    {%- set counts = run_query('select
          (select count(*) from ' ~ rows_sql ~ ' as source),
          (select count(*) from ' ~ scope_table ~ '),
          ' ~ ('(select count(*) from ' ~ rows_sql ~ ' as source where not (' ~ text_ts_sql ~ " >= '0' and " ~ text_ts_sql ~ " < '" ~ old_prefix ~ "') and "
                ~ ts_sql ~ ' >= ' ~ newer ~ ' and ' ~ key_sql ~ ' not in (select _slice_key from ' ~ scope_table ~ '))' if newer else '0') ~ ',
          (select count(*) from ' ~ this ~ '),
          (select count(*) from ' ~ scope_table ~ '_replaced),
          ' ~ ('(select count(*) from ' ~ this ~ ' where occurred_at >= ' ~ newer ~ ' and ' ~ key_column ~ ' not in (select _slice_key from ' ~ scope_table ~ '))' if newer else '0') ~ '') -%}
    {%- set n = counts.rows[0] -%}
    {%- set input_outside = (n[0] | int) - (n[1] | int) - (n[2] | int) -%}
    {%- set stored_outside = (n[3] | int) - (n[4] | int) - (n[5] | int) -%}
    {%- set processing = n[1] -%}
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
    {%- if raw_input -%}
      {%- do run_query('create temporary table ' ~ scope_table ~ '_replaced as select ' ~ key_column ~ ' as _slice_key from '
                       ~ this ~ ' where ' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ ')') -%}
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
  {%- endif -%}
  {%- if input_outside != stored_outside -%}
    {{ log(label ~ " (incremental): " ~ input_outside ~ " input rows outside the " ~ describe ~ " but " ~ stored_outside ~ " stored (rows older than var event_lookback_days arrived, or the input was replaced): reprocessing every row", info=True) }}
    {%- do run_query('drop table ' ~ scope_table) -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts from ' ~ rows_sql ~ ' as source') -%}
    {%- if raw_input -%}{%- do run_query('delete from ' ~ scope_table ~ '_replaced') -%}{%- endif -%}
    {#- Only a real run empties the table; dbt compile/show must not change data. -#}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
  {%- else -%}
    {{ log(label ~ " (incremental): " ~ describe ~ ", processing " ~ processing ~ " rows", info=True) }}
  {%- endif -%}
  {{ return(scope_table) }}
{%- endmacro %}

{#- The load stamp `lifeline load` writes on every raw event and message event row
    (orchestration/load.py LOAD_STAMP_COLUMN). -#}
{% macro load_stamp_column() -%}{{ return('_lifeline_loaded_at') }}{%- endmacro %}

{#- A naive datetime as a SQL timestamp literal (microseconds kept). -#}
{% macro stamp_literal(value) -%}
  {{ return("cast('" ~ value.strftime("%Y-%m-%d %H:%M:%S.%f") ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{#- A timestamp read back through run_query (a datetime, or text on some adapters) as a naive datetime. -#}
{% macro as_naive_datetime(value) -%}
  {%- if value is none -%}{{ return(none) }}{%- endif -%}
  {%- if value is string -%}
    {%- set value = modules.datetime.datetime.fromisoformat(value | replace('Z', '+00:00')) -%}
  {%- endif -%}
  {%- if value.tzinfo is not none -%}
    {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
  {%- endif -%}
  {{ return(value) }}
{%- endmacro %}

{#- The raw relation's load stamps as {'newest': datetime or none}, or none when they cannot be
    used: the column is absent (raw loaded by another tool) or some rows have no stamp (appended
    by another tool after `lifeline load`). -#}
{% macro load_stamps(raw_relation) -%}
  {%- set names = adapter.get_columns_in_relation(raw_relation) | map(attribute='name') | map('lower') | list -%}
  {%- if lifeline.load_stamp_column() not in names -%}{{ return(none) }}{%- endif -%}
  {%- set row = run_query('select max(' ~ lifeline.load_stamp_column() ~ '), count(*) - count(' ~ lifeline.load_stamp_column()
                          ~ ') from ' ~ raw_relation).rows[0] -%}
  {%- if (row[1] | int) > 0 -%}{{ return(none) }}{%- endif -%}
  {{ return({'newest': lifeline.as_naive_datetime(row[0])}) }}
{%- endmacro %}

{#- Where a model keeps the newest load stamp it has processed (one row, one column). -#}
{% macro load_mark_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__load_mark')) }}
{%- endmacro %}

{#- The stored load mark of this model, or none. -#}
{% macro stored_load_mark() -%}
  {%- set relation = lifeline.load_mark_relation() -%}
  {%- if adapter.get_columns_in_relation(relation) | length == 0 -%}{{ return(none) }}{%- endif -%}
  {{ return(lifeline.as_naive_datetime(run_query('select max(loaded_at) from ' ~ relation).columns[0].values()[0])) }}
{%- endmacro %}

{#- Post-hook of the raw-reading models: keeps the mark incremental_slice computed
    (`<scope_table>_mark`), or drops it when the raw table has no load stamps. Inside the model's
    transaction, so the mark and the rows are stored together. -#}
{% macro store_load_mark(raw_relation, scope_table) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set relation = lifeline.load_mark_relation() -%}
  {%- set names = adapter.get_columns_in_relation(raw_relation) | map(attribute='name') | map('lower') | list -%}
  {%- if lifeline.load_stamp_column() not in names -%}
    drop table if exists {{ relation }}
  {%- else -%}
    create table if not exists {{ relation }} (loaded_at {{ dbt.type_timestamp() }});
    delete from {{ relation }};
    insert into {{ relation }} (loaded_at) select loaded_at from {{ scope_table }}_mark where loaded_at is not null
  {%- endif -%}
{%- endmacro %}

{#- The slice of a run by load stamp: the raw rows loaded after `mark`, every raw row sharing a key
    with them or with a stored row matching recheck_sql, and the stored rows they replace
    (`<scope_table>_replaced`). Appended rows sit at the end of the raw table, so the stamp test
    skips the rest by its zone maps; the raw table is read in full only when a key is already
    stored (a duplicate of an earlier event, or a recheck). Returns (raw rows outside the slice,
    stored rows outside it, rows processed); the first two must be equal. -#}
{% macro load_stamp_slice(rows_sql, scope_table, key_sql, key_column, ts_sql, raw_id_sql, mark, recheck_sql) -%}
  {%- set stamp = 'source.' ~ lifeline.load_stamp_column() -%}
  {%- do run_query('create temporary table ' ~ scope_table ~ ' as
      select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts
      from ' ~ rows_sql ~ ' as source
      where ' ~ stamp ~ ' > ' ~ lifeline.stamp_literal(mark)) -%}
  {#- Two branches, not one `in (...) or recheck` filter: a disjunction with a subquery makes the
      database test every stored row against the slice (a mark join), while a plain semi-join and a
      filter the scan can apply cost a fraction of that (0.66 s -> 0.01 s at 100k people). The
      second branch leaves out the keys of the first, so each stored row appears once, as before. -#}
  {%- do run_query('create temporary table ' ~ scope_table ~ '_replaced as
      select ' ~ key_column ~ ' as _slice_key from ' ~ this ~ '
      where ' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ ')
      union all
      select ' ~ key_column ~ ' as _slice_key from ' ~ this ~ '
      where (' ~ recheck_sql ~ ') and not coalesce(' ~ key_column ~ ' in (select _slice_key from ' ~ scope_table ~ '), false)') -%}
  {%- set found = run_query('select count(*) from ' ~ scope_table ~ '_replaced').columns[0].values()[0] | int -%}
  {%- if found > 0 -%}
    {#- Earlier raw rows of these keys, looked up by their raw id's text (see incremental_slice). -#}
    {%- do run_query('insert into ' ~ scope_table ~ '
        select source.*, ' ~ key_sql ~ ' as _slice_key, ' ~ ts_sql ~ ' as _slice_ts
        from ' ~ rows_sql ~ ' as source
        where ' ~ stamp ~ ' <= ' ~ lifeline.stamp_literal(mark) ~ '
          and (' ~ raw_id_sql ~ ' in (select cast(_slice_key as ' ~ dbt.type_string() ~ ') from ' ~ scope_table ~ '_replaced)
               or ' ~ raw_id_sql ~ ' in (select ' ~ raw_id_sql ~ ' from ' ~ scope_table ~ ' as source
                                         where _slice_key in (select _slice_key from ' ~ scope_table ~ '_replaced))
               or ' ~ raw_id_sql ~ " is null or " ~ raw_id_sql ~ " like ' %' or " ~ raw_id_sql ~ " like '% ')
          and " ~ key_sql ~ ' in (select _slice_key from ' ~ scope_table ~ '_replaced)') -%}
    {#- A rechecked key whose raw rows are gone is not replaced: the counts below notice it. -#}
    {%- do run_query('delete from ' ~ scope_table ~ '_replaced where _slice_key not in (select _slice_key from ' ~ scope_table ~ ')') -%}
  {%- endif -%}
  {%- set n = run_query('select (select count(*) from ' ~ rows_sql ~ ' as source), (select count(*) from ' ~ scope_table ~ '),
                                (select count(*) from ' ~ this ~ '), (select count(*) from ' ~ scope_table ~ '_replaced)').rows[0] -%}
  {{ return(((n[0] | int) - (n[1] | int), (n[2] | int) - (n[3] | int), n[1])) }}
{%- endmacro %}

{#- incremental_strategy 'lifeline_slice' of the raw-reading models: deletes the stored rows the
    slice replaces (`<model>_slice_replaced`, from incremental_slice; none at all in the common
    case of new events) and inserts the slice's rows. -#}
{% macro get_incremental_lifeline_slice_sql(arg_dict) -%}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set replaced = target.identifier ~ '_slice_replaced' -%}
  {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
  {%- if run_query('select count(*) from ' ~ replaced).columns[0].values()[0] | int > 0 -%}
    delete from {{ target }} where {{ arg_dict['unique_key'] }} in (select _slice_key from {{ replaced }});
  {% endif -%}
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ arg_dict['temp_relation'] }}
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


{#- The rows an incremental run of a stg_* model re-stages from its base model (`usable_sql`: the
    usable base rows up to as_of, one per key, with base's `based_at`, the start of the run that
    (re)wrote the base row). Returns the relation to read rows from (`usable_sql` itself when not
    incremental); an incremental run reads the temporary table `scope_table`:
      - the base rows written since this model's last run: based_at > max stored staged_at (new
        rows, a duplicate that now wins, an implausible timestamp base rechecked, ...);
      - the rows that became usable because as_of moved forward: occurred_at > max stored occurred_at;
      - in a partition run (vars partition_start / partition_end), also every row in its window
        (event_window), as before.
    The slice replaces the stored rows of its keys (delete+insert). A stored row whose key has no
    usable row any more (its only copy became a losing duplicate) or any other difference outside
    the slice shows in the safety net, which counts whole tables: usable rows outside the slice must
    equal stored rows up to as_of outside it, else every row is re-read (and the log says so). When
    as_of moves back, the model's post-hook deletes the rows after it. ts_column: the rows' time
    (occurred_at; a row whose time is null is usable whatever as_of is). -#}
{% macro staged_slice(usable_sql, scope_table, key_column, label, ts_column='occurred_at') -%}
  {%- if not execute or not is_incremental() -%}{{ return(usable_sql) }}{%- endif -%}
  {%- do run_query('drop table if exists ' ~ scope_table) -%}
  {%- set marks = run_query('select max(staged_at), max(' ~ ts_column ~ ') from ' ~ this).rows[0] -%}
  {%- set staged = lifeline.as_naive_datetime(marks[0]) -%}
  {%- set newest = lifeline.as_naive_datetime(marks[1]) -%}
  {%- set partitioned = lifeline.window_var_timestamp('partition_start') is not none
                        or lifeline.window_var_timestamp('partition_end') is not none -%}
  {%- set conditions = [] -%}
  {%- if staged is not none -%}{%- do conditions.append('source.based_at > ' ~ lifeline.stamp_literal(staged)) -%}{%- endif -%}
  {%- if newest is not none -%}{%- do conditions.append('source.' ~ ts_column ~ ' > ' ~ lifeline.stamp_literal(newest)) -%}{%- endif -%}
  {%- set describe = "rows based after " ~ (staged.strftime("%Y-%m-%d %H:%M:%S.%f") if staged is not none else "-inf")
                     ~ " or after " ~ (newest.strftime("%Y-%m-%d %H:%M:%S") if newest is not none else "-inf") -%}
  {%- if partitioned -%}
    {%- set window = lifeline.event_window(none) -%}
    {%- do conditions.append(lifeline.in_event_window('source.' ~ ts_column, window)) -%}
    {#- The window first: the log line reads "window [...)" as in a raw-reading model's partition run. -#}
    {%- set describe = "window " ~ lifeline.describe_window(window) ~ " or " ~ describe -%}
  {%- endif -%}
  {#- One branch per condition, each leaving out the rows of the branches before it (so a row is
      read once, as with `or`): a disjunction over different columns cannot be applied by the scan,
      so every column of every usable row would be read before filtering (0.65 s at 100k people),
      while each branch's own condition is applied by the scan and skips most of the table by its
      zone maps (based_at grows with the table) or reads only the column it tests (0.05 s). -#}
  {%- set branches = [] -%}
  {%- for condition in conditions -%}
    {%- set earlier = [] -%}
    {%- for before in conditions[:loop.index0] -%}{%- do earlier.append(' and not coalesce(' ~ before ~ ', false)') -%}{%- endfor -%}
    {%- do branches.append('select source.* from ' ~ usable_sql ~ ' as source where (' ~ condition ~ ')' ~ (earlier | join(''))) -%}
  {%- endfor -%}
  {%- do run_query('create temporary table ' ~ scope_table ~ ' as
      ' ~ ((branches | join(' union all ')) if branches else 'select source.* from ' ~ usable_sql ~ ' as source')) -%}
  {#- Stored rows after as_of (it moved back) are not compared: the post-hook deletes them. -#}
  {%- set up_to_as_of = '(' ~ ts_column ~ ' is null or ' ~ ts_column ~ ' <= ' ~ lifeline.as_of() ~ ')' -%}
  {%- set n = run_query('select
        (select count(*) from ' ~ usable_sql ~ ' as source),
        (select count(*) from ' ~ scope_table ~ '),
        (select count(*) from ' ~ this ~ ' where ' ~ up_to_as_of ~ '),
        (select count(*) from ' ~ this ~ ' where ' ~ up_to_as_of ~ ' and ' ~ key_column ~ ' in (select ' ~ key_column ~ ' from ' ~ scope_table ~ '))').rows[0] -%}
  {%- set input_outside = (n[0] | int) - (n[1] | int) -%}
  {%- set stored_outside = (n[2] | int) - (n[3] | int) -%}
  {%- if input_outside != stored_outside -%}
    {{ log(label ~ " (incremental): " ~ input_outside ~ " usable rows outside the " ~ describe ~ " but " ~ stored_outside ~ " stored (a stored row lost its usable base row, or older rows changed): reprocessing every row", info=True) }}
    {%- do run_query('drop table ' ~ scope_table) -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ ' as select source.* from ' ~ usable_sql ~ ' as source') -%}
    {#- Only a real run empties the table; dbt compile/show must not change data. -#}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
  {%- else -%}
    {{ log(label ~ " (incremental): " ~ describe ~ ", processing " ~ n[1] ~ " rows", info=True) }}
  {%- endif -%}
  {{ return(scope_table) }}
{%- endmacro %}

{#- The start of the current run as a SQL timestamp (microseconds kept): the stamp a model writes
    on the rows it (re)writes (based_at, staged_at). -#}
{% macro run_stamp() -%}
cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- Where an incremental model that leaves out rows without a profile keeps their keys, so that a
    later run re-tries only those (int_profile_message_events). -#}
{% macro unresolved_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__unresolved')) }}
{%- endmacro %}

{#- The keys left out at earlier runs for want of a profile: the relation the post-hook
    remember_unresolved keeps, or, when it is missing (dropped by hand), every key of `input`
    not stored (a full comparison, correct but slower). -#}
{% macro unresolved_keys(key_column, input) -%}
  {%- set relation = lifeline.unresolved_relation() -%}
  {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
    {{ return('(select ' ~ key_column ~ ' from ' ~ input ~ ' where ' ~ key_column ~ ' not in (select ' ~ key_column ~ ' from ' ~ this ~ '))') }}
  {%- endif -%}
  {{ return(relation) }}
{%- endmacro %}

{#- Post-hook (before the one deleting the rows without a profile): the keys written by this run
    (stamp_column = the run's start) leave the unresolved list, and those written without a
    profile join it. -#}
{% macro remember_unresolved(key_column, profile_column, stamp_column) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set relation = lifeline.unresolved_relation() -%}
  create table if not exists {{ relation }} ({{ key_column }} {{ dbt.type_string() }});
  delete from {{ relation }} where {{ key_column }} in
      (select {{ key_column }} from {{ this }} where {{ stamp_column }} = {{ lifeline.run_stamp() }});
  insert into {{ relation }} ({{ key_column }})
      select {{ key_column }} from {{ this }} where {{ stamp_column }} = {{ lifeline.run_stamp() }} and {{ profile_column }} is null
{%- endmacro %}
