{#- Every raw message event typed, with the reason it cannot be used (drop_reason).

    Incremental like base_events (macros/incremental_events.sql): a run reprocesses the raw rows
    loaded since the last run (or, without load stamps and in partition runs, the rows in the
    window) and every raw row with the same message_key (message_id, event, occurred_at:
    the grain duplicates are ranked in), delete+insert on message_key. -#}
{{ config(
    materialized='incremental',
    unique_key='message_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'lifeline_slice'),
    on_schema_change='fail',
    post_hook="{{ lifeline.store_load_mark(source('raw', 'message_events'), 'base_message_events_slice') }}"
) }}
{%- set raw_relation = lifeline.incremental_slice(
        source('raw', 'message_events'), 'base_message_events_slice',
        lifeline.message_event_key(lifeline.clean_text('source.message_id'),
                                   'lower(trim(cast(source.event as ' ~ dbt.type_string() ~ ')))',
                                   lifeline.parse_timestamp('source.occurred_at')),
        'message_key', lifeline.parse_timestamp('source.occurred_at'), 'base_message_events',
        stored_filter='drop_reason is null',
        text_ts_sql='cast(source.occurred_at as ' ~ dbt.type_string() ~ ')',
        raw_id_sql='cast(source.message_id as ' ~ dbt.type_string() ~ ')') %}
with source as (
    select * from {{ raw_relation }}
),

default_country as (
    select calling_code from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("default_country") }}'
),

typed as (
    select
        {{ lifeline.clean_text('source.message_id') }} as message_id,
        lower(trim(cast(source.channel as {{ dbt.type_string() }}))) as channel,
        lower(trim(cast(source.event as {{ dbt.type_string() }}))) as event,
        {{ lifeline.parse_timestamp('source.occurred_at') }} as occurred_at,
        {{ lifeline.clean_text('source.recipient') }} as recipient_raw,
        nullif(trim(cast(source.campaign as {{ dbt.type_string() }})), '') as campaign,
        nullif(trim(cast(source.external_id as {{ dbt.type_string() }})), '') as external_id,
        default_country.calling_code as default_calling_code
    from source
    cross join default_country
),

normalised as (
    select
        typed.*,
        case when recipient_raw like '%@%' then {{ lifeline.normalize_email('recipient_raw') }} end as recipient_email,
        case when recipient_raw not like '%@%' then {{ lifeline.normalize_phone('recipient_raw', 'default_calling_code') }} end as recipient_phone
    from typed
),

ranked as (
    select
        normalised.*,
        row_number() over (
            partition by message_id, event, occurred_at order by recipient_raw
        ) as message_event_rank
    from normalised
),

final as (
    select
        {{ lifeline.message_event_key('message_id', 'event', 'occurred_at') }} as message_key,
        message_id,
        channel,
        event,
        occurred_at,
        recipient_email,
        recipient_phone,
        campaign,
        external_id,
        case
            when message_id is null then 'missing_message_id'
            when occurred_at is null then 'unparseable_timestamp'
            when channel not in ('email', 'sms', 'ads') then 'unknown_channel'
            when message_event_rank > 1 then 'duplicate_message_event'
        end as drop_reason,
        {#- When this row was (re)written: the run's start (stg_message_events re-stages the rows
            based since its last run through it). #}
        {{ lifeline.run_stamp() }} as based_at
    from ranked
)

select * from final
