{#- Every raw event, typed and normalised, with the reason it cannot be used (drop_reason) and the
    identifiers that were repaired. stg_events keeps the usable rows; quarantine lists the rest.

    Incremental (macros/incremental_events.sql): a run reprocesses the raw rows loaded since the
    last run (by the load stamp `lifeline load` writes; without stamps, and in a partition run:
    the rows in the window, max stored occurred_at - var event_lookback_days or vars
    partition_start/partition_end), every raw row sharing an event_key with them, so a duplicate
    event_id is ranked against all its copies as in a full refresh, and the stored rows whose
    future timestamp has become plausible; the stored rows of those keys are replaced
    (event_key: event_id, or 'row:' || row_hash when there is none). Known limit: a customer's
    changed country re-reads the phones of that customer's events only among the rows a run
    reprocesses (`lifeline build --full-refresh` re-reads all). -#}
{{ config(
    materialized='incremental',
    unique_key='event_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'lifeline_slice'),
    on_schema_change='fail',
    post_hook="{{ lifeline.store_load_mark(source('raw', 'events'), 'base_events_slice') }}"
) }}
{%- set raw_relation = lifeline.incremental_slice(
        source('raw', 'events'), 'base_events_slice',
        "case when " ~ lifeline.clean_text('source.event_id') ~ " is null then 'row:' || "
            ~ lifeline.raw_event_row_hash('source') ~ " else " ~ lifeline.clean_text('source.event_id') ~ " end",
        'event_key', lifeline.parse_timestamp('source.occurred_at'), 'base_events',
        stored_filter='drop_reason is null',
        text_ts_sql='cast(source.occurred_at as ' ~ dbt.type_string() ~ ')',
        raw_id_sql='cast(source.event_id as ' ~ dbt.type_string() ~ ')',
        recheck_sql="drop_reason = 'implausible_timestamp' and occurred_at >= cast('2000-01-01' as " ~ dbt.type_timestamp()
            ~ ') and occurred_at <= ' ~ lifeline.add_days(1, "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "' as " ~ dbt.type_timestamp() ~ ")")) %}
with source as (
    select * from {{ raw_relation }}
),

default_country as (
    select calling_code from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("default_country") }}'
),

{#- Phones are read with the country of the customer the row belongs to, where known. -#}
customer_calling_codes as (
    select customers.customer_id, calling_codes.calling_code
    from {{ ref('base_customers') }} as customers
    join {{ ref('country_calling_codes') }} as calling_codes
        on calling_codes.country_code = customers.country_code
    where customers.drop_reason is null and customers.customer_id is not null
),

typed as (
    select
        {{ lifeline.clean_text('source.event_id') }} as event_id,
        lower(trim(cast(source.event_type as {{ dbt.type_string() }}))) as event_type,
        {{ lifeline.parse_timestamp('source.occurred_at') }} as occurred_at,
        {{ lifeline.clean_text('source.anonymous_id') }} as anonymous_id,
        {{ lifeline.clean_text('source.user_id') }} as user_id,
        {{ lifeline.clean_text('source.email') }} as email_raw,
        {{ lifeline.clean_text('source.phone') }} as phone_raw,
        nullif(trim(cast(source.session_id as {{ dbt.type_string() }})), '') as session_id,
        nullif(trim(cast(source.product_id as {{ dbt.type_string() }})), '') as product_id,
        nullif(trim(cast(source.cart_id as {{ dbt.type_string() }})), '') as cart_id,
        nullif(trim(cast(source.order_id as {{ dbt.type_string() }})), '') as order_id,
        {{ lifeline.parse_number('source.value') }} as value,
        cast(source.properties as {{ dbt.type_string() }}) as properties,
        coalesce(customer_calling_codes.calling_code, default_country.calling_code) as default_calling_code,
        {{ lifeline.raw_event_row_hash('source') }} as row_hash
    from source
    cross join default_country
    left join customer_calling_codes
        on customer_calling_codes.customer_id = {{ lifeline.clean_text('source.user_id') }}
),

normalised as (
    select
        typed.*,
        {{ lifeline.normalize_email('email_raw') }} as email,
        {{ lifeline.normalize_phone('phone_raw', 'default_calling_code') }} as phone
    from typed
),

ranked as (
    select
        normalised.*,
        row_number() over (
            partition by event_id order by occurred_at nulls last, row_hash
        ) as event_id_rank
    from normalised
),

final as (
    select
        coalesce(event_id, 'row:' || row_hash) as event_key,
        event_id,
        event_type,
        occurred_at,
        anonymous_id,
        user_id,
        email,
        phone,
        session_id,
        product_id,
        cart_id,
        order_id,
        value,
        properties,
        row_hash,
        case
            when event_id is null then 'missing_event_id'
            when occurred_at is null then 'unparseable_timestamp'
            when occurred_at < cast('2000-01-01' as {{ dbt.type_timestamp() }})
              or occurred_at > {{ lifeline.add_days(1, "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
                then 'implausible_timestamp'
            when event_id_rank > 1 then 'duplicate_event_id'
        end as drop_reason,
        case when email_raw is not null and email is null then 'malformed_email' end as email_issue,
        case when phone_raw is not null and phone is null then 'malformed_phone' end as phone_issue,
        {#- When this row was (re)written: the run's start. stg_events re-stages the rows based
            since its last run through it. #}
        {{ lifeline.run_stamp() }} as based_at
    from ranked
)

select * from final
