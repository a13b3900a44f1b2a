{#- Every distinct combination of identifiers seen together on one record (event, customer,
    order), with when it was seen and how many source rows carry it (source_rows). Collapsing
    events to combinations keeps the graph small: a person's hundreds of page views with one
    cookie are one row.

    Incremental (delete+insert on record_id; macros/identity_incremental.sql): the events part reads
    only the stg_events rows staged after the newest staged_at it has read (column staged_at: the
    newest stg_events.staged_at behind the record), groups them by combination and merges them into
    the stored rows (min first_seen_at, max last_seen_at, sum source_rows). That is exact while no
    stg_events row read before was rewritten or deleted (a duplicate event_id that now wins, as_of
    moving back, stg_events reprocessing every row), which a count shows: the stored source_rows of
    events plus the new rows must equal the rows in stg_events, else every record is rebuilt (and
    the log says so). Customers and orders (small) are recomputed in full and only the records that
    are new or changed are written. A record no source row supports any more is written as a
    tombstone (source_rows = 0); the post-hook moves it to the side table
    int_identity_records__removed, which the models downstream read to drop what it produced.
    changed_at is the start of the run that wrote the row; created_at the start of the run that
    first wrote its combination (a record's identifiers never change, so the models that depend
    only on which identifiers are seen together, int_identity_edges, read the new records only). -#}
{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.identity_records_post_hook() }}"
) }}
{%- do lifeline.identity_require_columns(['source_rows', 'staged_at', 'changed_at', 'created_at']) -%}
{%- set identifiers = ['anonymous_id', 'user_id', 'email', 'phone'] -%}
{%- set has_identifier = 'coalesce(' ~ identifiers | join(', ') ~ ') is not null' -%}
{%- set events_source = '(select * from ' ~ ref('stg_events') ~ ' where ' ~ has_identifier ~ ')' -%}
{%- set incremental_run = namespace(on=false) -%}
{%- if execute and is_incremental() -%}
  {%- set stored = run_query('select max(staged_at), coalesce(sum(source_rows), 0) from ' ~ this ~ ' where source_table = \'events\'').rows[0] -%}
  {%- set mark = lifeline.as_naive_datetime(stored[0]) -%}
  {%- if mark is none -%}
    {{ log("int_identity_records (incremental): no stored event records: rebuilding every record", info=True) }}
  {%- else -%}
    {%- set counts = run_query(lifeline.count_identified_rows(ref('stg_events'), identifiers, 'staged_at', lifeline.stamp_literal(mark))).rows[0] -%}
    {%- if (stored[1] | int) + (counts[1] | int) == (counts[0] | int) -%}
      {{ log("int_identity_records (incremental): " ~ counts[1] ~ " stg_events rows staged after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f"), info=True) }}
      {%- set incremental_run.on = true -%}
      {%- set events_source = '(select * from ' ~ events_source ~ ' staged where staged_at > ' ~ lifeline.stamp_literal(mark) ~ ')' -%}
    {%- else -%}
      {{ log("int_identity_records (incremental): stg_events has " ~ counts[0] ~ " rows with identifiers but the stored records count " ~ stored[1] ~ " plus " ~ counts[1] ~ " staged since (a staged row was rewritten or deleted): rebuilding every record", info=True) }}
    {%- endif -%}
  {%- endif -%}
  {%- if not incremental_run.on and flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
{%- endif %}
with events as (
    select
        'events' as source_table,
        anonymous_id,
        user_id,
        email,
        phone,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at,
        count(*) as source_rows,
        max(staged_at) as staged_at
    from {{ events_source }} as staged
    group by anonymous_id, user_id, email, phone
),

customers as (
    select
        'customers' as source_table,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        customer_id as user_id,
        email,
        phone,
        coalesce(created_at, record_at) as first_seen_at,
        coalesce(record_at, created_at) as last_seen_at,
        1 as source_rows,
        cast(null as {{ dbt.type_timestamp() }}) as staged_at
    from {{ ref('stg_customers') }}
),

orders as (
    select
        'orders' as source_table,
        anonymous_id,
        customer_id as user_id,
        email,
        phone,
        min(ordered_at) as first_seen_at,
        max(ordered_at) as last_seen_at,
        count(*) as source_rows,
        cast(null as {{ dbt.type_timestamp() }}) as staged_at
    from {{ ref('stg_orders') }}
    where coalesce(anonymous_id, customer_id, email, phone) is not null
    group by anonymous_id, customer_id, email, phone
),

unioned as (
    select * from events
    union all
    select * from customers
    union all
    select * from orders
),

keyed as (
    select
        md5(
            source_table || '|' || coalesce(anonymous_id, '') || '|' || coalesce(user_id, '') || '|'
            || coalesce(email, '') || '|' || coalesce(phone, '')
        ) as record_id,
        source_table,
        anonymous_id,
        user_id,
        email,
        phone,
        first_seen_at,
        last_seen_at,
        cast(source_rows as {{ dbt.type_bigint() }}) as source_rows,
        staged_at
    from unioned
),

{% if incremental_run.on %}
{#- The stored records are read where they are used, not through a CTE: DuckDB materialised a CTE
    of every stored record with all its columns (1M people: 4.9M rows, ~3.5 s of CPU), while
    the two reads below take only the columns they need, and the second only the customer and
    order records (a filter pushed into the scan). #}
{#- New event rows merged into the stored record of their combination. #}
merged_events as (
    select
        keyed.record_id,
        keyed.source_table,
        keyed.anonymous_id,
        keyed.user_id,
        keyed.email,
        keyed.phone,
        case when stored.first_seen_at < keyed.first_seen_at then stored.first_seen_at else keyed.first_seen_at end as first_seen_at,
        case when stored.last_seen_at > keyed.last_seen_at then stored.last_seen_at else keyed.last_seen_at end as last_seen_at,
        keyed.source_rows + coalesce(stored.source_rows, 0) as source_rows,
        keyed.staged_at,
        coalesce(stored.created_at, {{ lifeline.run_stamp() }}) as created_at
    from keyed
    left join {{ this }} as stored on stored.record_id = keyed.record_id
    where keyed.source_table = 'events'
),

{#- Customers and orders in full, compared with the stored ones: new or changed rows, and
    tombstones (source_rows = 0) for the stored ones gone. #}
compared as (
    select
        keyed.*,
        stored.record_id as stored_record_id,
        stored.source_table as stored_source_table,
        stored.anonymous_id as stored_anonymous_id,
        stored.user_id as stored_user_id,
        stored.email as stored_email,
        stored.phone as stored_phone,
        stored.first_seen_at as stored_first_seen_at,
        stored.last_seen_at as stored_last_seen_at,
        stored.source_rows as stored_source_rows,
        stored.created_at as stored_created_at
    from (select * from keyed where source_table <> 'events') as keyed
    full outer join (select * from {{ this }} where source_table <> 'events') as stored
        on stored.record_id = keyed.record_id
),

changed_others as (
    select record_id, source_table, anonymous_id, user_id, email, phone, first_seen_at, last_seen_at, source_rows, staged_at,
           coalesce(stored_created_at, {{ lifeline.run_stamp() }}) as created_at
    from compared
    where record_id is not null
      and (stored_record_id is null
           or stored_source_rows <> source_rows
           or not ({{ lifeline.same_value('stored_first_seen_at', 'first_seen_at') }})
           or not ({{ lifeline.same_value('stored_last_seen_at', 'last_seen_at') }}))
    union all
    select stored_record_id, stored_source_table, stored_anonymous_id, stored_user_id, stored_email, stored_phone,
           stored_first_seen_at, stored_last_seen_at, 0, cast(null as {{ dbt.type_timestamp() }}), stored_created_at
    from compared
    where record_id is null
),

written as (
    select * from merged_events
    union all
    select * from changed_others
),
{% else %}
written as (
    select keyed.*, {{ lifeline.run_stamp() }} as created_at
    from keyed
),
{% endif %}

final as (
    select written.*, {{ lifeline.run_stamp() }} as changed_at
    from written
)

select * from final
