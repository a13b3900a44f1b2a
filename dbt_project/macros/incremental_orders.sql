{#- Incremental processing of the raw tables without an event time (customers, orders, order items).

    A run reads the raw rows loaded since its last run by their load stamp (`lifeline load` stamps
    customers, orders and order_items as it does events; load_stamp_slice in incremental_events.sql),
    every earlier raw row sharing a key with them, and the stored rows `recheck_sql` names; the
    slice replaces the stored rows of its keys (incremental_strategy 'lifeline_slice').

    There is no time window to fall back to: when the raw table has no load stamp column, some rows
    have no stamp (appended by another tool), the model has no stored mark yet, or the safety net
    finds raw rows outside the slice that differ in number from the stored rows outside it (rows
    deleted or the table replaced), the run re-reads every raw row, as a full refresh does, and
    says so in the log. -#}

{#- md5 over the given columns of a raw row as text: the key of a raw row whose id is missing. -#}
{% macro raw_row_hash(alias, columns) -%}
md5(
  {%- for column in columns %}
            {% if not loop.first %}|| '|' || {% endif %}coalesce(cast({{ alias }}.{{ column }} as {{ dbt.type_string() }}), '')
  {%- endfor %}
        )
{%- endmacro %}

{#- The relation an incremental raw-reading model without event time selects from (`rows_sql`
    itself when not incremental): the temporary table `scope_table` (`<model>_slice`, with
    `<scope_table>_replaced`, the stored keys the strategy deletes, and `<scope_table>_mark`, the
    mark store_load_mark keeps). key_sql: the row key over alias `source`; key_column: the stored
    column holding it; raw_id_sql: the raw id the key is made from, as text; recheck_sql: stored
    rows to reprocess although no raw row of theirs is new. -#}
{% macro stamped_slice(rows_sql, scope_table, key_sql, key_column, raw_id_sql, label, recheck_sql='1 = 0') -%}
  {%- if not execute -%}{{ return(rows_sql) }}{%- endif -%}
  {%- set stamps = lifeline.load_stamps(rows_sql) -%}
  {%- set mark = lifeline.stored_load_mark() if stamps is not none and is_incremental() else none -%}
  {%- do run_query('drop table if exists ' ~ scope_table ~ '_mark') -%}
  {%- do run_query('create temporary table ' ~ scope_table ~ '_mark as select '
                   ~ (lifeline.stamp_literal(stamps.newest) if stamps is not none and stamps.newest is not none
                      else 'cast(null as ' ~ dbt.type_timestamp() ~ ')') ~ ' as loaded_at') -%}
  {%- if not is_incremental() -%}{{ return(rows_sql) }}{%- endif -%}
  {%- do run_query('drop table if exists ' ~ scope_table) -%}
  {%- do run_query('drop table if exists ' ~ scope_table ~ '_replaced') -%}
  {%- set no_ts = 'cast(null as ' ~ dbt.type_timestamp() ~ ')' -%}
  {%- if mark is not none -%}
    {%- set input_outside, stored_outside, processing = lifeline.load_stamp_slice(
            rows_sql, scope_table, key_sql, key_column, no_ts, raw_id_sql, mark, recheck_sql) -%}
    {%- set describe = "rows loaded after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") -%}
    {%- if input_outside == stored_outside -%}
      {{ log(label ~ " (incremental): " ~ describe ~ ", processing " ~ processing ~ " rows", info=True) }}
      {{ return(scope_table) }}
    {%- endif -%}
    {%- set why = input_outside ~ " raw rows outside the " ~ describe ~ " but " ~ stored_outside
                  ~ " stored (rows deleted, or the raw table replaced)" -%}
    {%- do run_query('drop table ' ~ scope_table) -%}
  {%- elif stamps is none -%}
    {%- set why = "the raw table has rows without a load stamp (not loaded by `lifeline load`)" -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ '_replaced as select ' ~ key_column ~ ' as _slice_key from ' ~ this ~ ' where 1 = 0') -%}
  {%- else -%}
    {%- set why = "no load mark stored yet" -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ '_replaced as select ' ~ key_column ~ ' as _slice_key from ' ~ this ~ ' where 1 = 0') -%}
  {%- endif -%}
  {{ log(label ~ " (incremental): " ~ why ~ ": reprocessing every row", info=True) }}
  {%- do run_query('delete from ' ~ scope_table ~ '_replaced') -%}
  {%- do run_query('create temporary table ' ~ scope_table ~ ' as select source.*, ' ~ key_sql ~ ' as _slice_key, '
                   ~ no_ts ~ ' as _slice_ts from ' ~ rows_sql ~ ' as source') -%}
  {#- Only a real run empties the table; dbt compile/show must not change data. -#}
  {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
  {{ return(scope_table) }}
{%- endmacro %}

{#- staged_slice (incremental_events.sql) for the customer and order staging models, whose rows'
    time is ts_column (ordered_at, created_at). A macro of its own because orchestration/dbt_assets.py
    partitions the callers of staged_slice by day, and these models are not event-windowed. -#}
{% macro based_slice(usable_sql, scope_table, key_column, ts_column, label) -%}
  {{ return(lifeline.staged_slice(usable_sql, scope_table, key_column, label, ts_column=ts_column)) }}
{%- endmacro %}

{#- The relation stg_order_items selects raw order items from (the raw table itself when not
    incremental). Its rows are aggregated per (order_id, product_id), so the slice is by order: the
    raw rows of every order that has a row loaded since the last run (load stamp); the model
    replaces the stored rows of those orders (delete+insert on order_id). The safety net counts raw
    rows: those loaded up to the stored mark must be as many as the last run read (kept with the
    mark, `<model>__load_mark`.raw_rows), else (rows deleted, the table replaced), and when the
    table has no load stamps or the model no mark, every raw row is re-read. order_id_sql: the
    cleaned order id over alias `source`. -#}
{% macro order_items_slice(rows_sql, scope_table, order_id_sql, label) -%}
  {%- if not execute -%}{{ return(rows_sql) }}{%- endif -%}
  {%- set stamps = lifeline.load_stamps(rows_sql) -%}
  {%- set stamp = 'source.' ~ lifeline.load_stamp_column() -%}
  {%- do run_query('drop table if exists ' ~ scope_table ~ '_mark') -%}
  {%- if stamps is not none and stamps.newest is not none -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ '_mark as select ' ~ lifeline.stamp_literal(stamps.newest)
                     ~ ' as loaded_at, count(*) as raw_rows from ' ~ rows_sql ~ ' as source where '
                     ~ stamp ~ ' <= ' ~ lifeline.stamp_literal(stamps.newest)) -%}
  {%- else -%}
    {%- do run_query('create temporary table ' ~ scope_table ~ '_mark as select cast(null as ' ~ dbt.type_timestamp()
                     ~ ') as loaded_at, cast(0 as ' ~ dbt.type_bigint() ~ ') as raw_rows') -%}
  {%- endif -%}
  {%- if not is_incremental() -%}{{ return(rows_sql) }}{%- endif -%}
  {%- set mark_relation = lifeline.load_mark_relation() -%}
  {%- set mark_columns = adapter.get_columns_in_relation(mark_relation) | map(attribute='name') | map('lower') | list -%}
  {%- set stored = run_query('select max(loaded_at), max(raw_rows) from ' ~ mark_relation).rows[0]
                   if stamps is not none and 'raw_rows' in mark_columns else none -%}
  {%- set mark = lifeline.as_naive_datetime(stored[0]) if stored is not none else none -%}
  {%- do run_query('drop table if exists ' ~ scope_table) -%}
  {%- if mark is not none -%}
    {%- set describe = "orders with rows loaded after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") -%}
    {%- set before = run_query('select count(*) from ' ~ rows_sql ~ ' as source where ' ~ stamp ~ ' <= '
                               ~ lifeline.stamp_literal(mark)).columns[0].values()[0] | int -%}
    {%- if before == (stored[1] | int) -%}
      {%- do run_query('create temporary table ' ~ scope_table ~ ' as
          select source.* from ' ~ rows_sql ~ ' as source
          where ' ~ order_id_sql ~ ' in (select ' ~ order_id_sql ~ ' from ' ~ rows_sql ~ ' as source
                                         where ' ~ stamp ~ ' > ' ~ lifeline.stamp_literal(mark) ~ ')') -%}
      {%- set processing = run_query('select count(*) from ' ~ scope_table).columns[0].values()[0] -%}
      {{ log(label ~ " (incremental): " ~ describe ~ ", processing " ~ processing ~ " rows", info=True) }}
      {{ return(scope_table) }}
    {%- endif -%}
    {%- set why = before ~ " raw rows loaded up to " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " but " ~ stored[1]
                  ~ " read by the last run (rows deleted, or the raw table replaced)" -%}
  {%- elif stamps is none -%}
    {%- set why = "the raw table has rows without a load stamp (not loaded by `lifeline load`)" -%}
  {%- else -%}
    {%- set why = "no load mark stored yet" -%}
  {%- endif -%}
  {{ log(label ~ " (incremental): " ~ why ~ ": reprocessing every row", info=True) }}
  {%- do run_query('create temporary table ' ~ scope_table ~ ' as select source.* from ' ~ rows_sql ~ ' as source') -%}
  {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
  {{ return(scope_table) }}
{%- endmacro %}

{#- Post-hook of stg_order_items: keeps the mark and raw row count order_items_slice computed, or
    drops them when the raw table has no load stamps. -#}
{% macro store_load_count_mark(raw_relation, scope_table) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set relation = lifeline.load_mark_relation() -%}
  {%- set names = adapter.get_columns_in_relation(raw_relation) | map(attribute='name') | map('lower') | list -%}
  drop table if exists {{ relation }}
  {%- if lifeline.load_stamp_column() in names -%};
    create table {{ relation }} as select loaded_at, raw_rows from {{ scope_table }}_mark where loaded_at is not null
  {%- endif -%}
{%- endmacro %}

{#- int_profile_orders: builds the temporary table `affected_table` (profile_id) of the profiles
    whose orders may have changed since the model's last run (max attributed_at) and returns it, or
    none when every profile is recomputed: not incremental, nothing stored, or stg_orders rewrote
    every row since (its fallback, or a refresh: the only ways an order leaves stg_orders other
    than as_of moving back, whose orders the post-hook deletes). See the model. -#}
{% macro affected_order_profiles(stg_orders, record_profiles, affected_table, label) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- do run_query('drop table if exists ' ~ affected_table) -%}
  {%- do run_query('create temporary table ' ~ affected_table ~ ' as select profile_id from ' ~ this ~ ' where 1 = 0') -%}
  {%- set mark = lifeline.as_naive_datetime(run_query('select max(attributed_at) from ' ~ this).columns[0].values()[0]) -%}
  {%- set since = lifeline.stamp_literal(mark) if mark is not none else none -%}
  {%- set counts = run_query('select count(*), count(case when staged_at > ' ~ since ~ ' then 1 end) from ' ~ stg_orders).rows[0]
                   if since is not none else none -%}
  {%- if counts is none or (counts[1] | int) == (counts[0] | int) -%}
    {{ log(label ~ " (incremental): " ~ ("nothing stored" if counts is none else "every stg_orders row was staged after "
           ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f")) ~ ": recomputing every profile", info=True) }}
    {#- Only a real run empties the table; dbt compile/show must not change data. -#}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set keys -%}
    records.anonymous_id_key = coalesce(orders.anonymous_id, '') and records.user_id_key = coalesce(orders.customer_id, '')
    and records.email_key = coalesce(orders.email, '') and records.phone_key = coalesce(orders.phone, '')
  {%- endset -%}
  {%- do run_query('insert into ' ~ affected_table ~ '
      with restaged as (
          select order_id, anonymous_id, customer_id, email, phone from ' ~ stg_orders ~ ' where staged_at > ' ~ since ~ '
      ),
      changed_records as (
          select * from ' ~ record_profiles ~ " where source_table = 'orders' and changed_at > " ~ since ~ '
      ),
      moved as (
          select orders.order_id from ' ~ stg_orders ~ ' as orders join changed_records as records on ' ~ keys ~ '
      ),
      touched as (
          select stored.profile_id from ' ~ this ~ ' as stored
          where stored.order_id in (select order_id from restaged) or stored.order_id in (select order_id from moved)
          union all
          select records.profile_id from restaged as orders
          join ' ~ record_profiles ~ " as records on records.source_table = 'orders' and " ~ keys ~ '
          union all
          select profile_id from changed_records
      )
      select distinct profile_id from touched where profile_id is not null') -%}
  {%- set n = run_query('select count(*) from ' ~ affected_table).columns[0].values()[0] -%}
  {{ log(label ~ " (incremental): orders staged or records changed after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f")
         ~ " (" ~ counts[1] ~ " orders), recomputing " ~ n ~ " profiles", info=True) }}
  {{ return(affected_table) }}
{%- endmacro %}

{#- Post-hook of int_profile_orders: the stored rows of the recomputed profiles that this run did not
    rewrite (their order lost its profile, moved, or is gone). -#}
{% macro drop_unwritten_order_profiles(affected_table) -%}
  {%- if not execute or not is_incremental() -%}{{ return('') }}{%- endif -%}
  delete from {{ this }} where attributed_at <> {{ lifeline.run_stamp() }}
      and profile_id in (select profile_id from {{ affected_table }})
{%- endmacro %}
