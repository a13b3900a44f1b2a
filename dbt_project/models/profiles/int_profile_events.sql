{#- Behavioural events with the profile that did them.

    Incremental (delete+insert on event_id; rows whose record lost its profile are written with
    a null profile_id and removed by the post-hook). A run re-attributes only:
      - stg_events rows not stored as they are (new, late of any age, or a duplicate that now
        wins with another occurred_at): an anti-join on (event_id, occurred_at);
      - the events of records whose profile changed since the last run (int_record_profiles
        rows with changed_at after the newest record_changed_at stored here: merges, splits);
    and deletes stored rows whose (event_id, occurred_at) is no longer in stg_events. -#}
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where profile_id is null"
) }}
{%- if is_incremental() and execute and flags.WHICH in ('run', 'build') -%}
  {%- do run_query('delete from ' ~ this ~ ' where not exists (select 1 from ' ~ ref('stg_events') ~ ' as events
        where events.event_id = ' ~ this ~ '.event_id and events.occurred_at = ' ~ this ~ '.occurred_at)') -%}
{%- endif %}
with record_profiles as (
    select * from {{ ref('int_record_profiles') }}
    where source_table = 'events'
),

{% if is_incremental() %}
changed_records as (
    select * from record_profiles
    where changed_at > (select coalesce(max(record_changed_at), cast('1900-01-01' as {{ dbt.type_timestamp() }})) from {{ this }})
),

events as (
    select events.*
    from {{ ref('stg_events') }} as events
    where not exists (
        select 1 from {{ this }} as stored
        where stored.event_id = events.event_id and stored.occurred_at = events.occurred_at
    )
    union all
    select events.*
    from {{ ref('stg_events') }} as events
    join changed_records
        on changed_records.anonymous_id_key = coalesce(events.anonymous_id, '')
        and changed_records.user_id_key = coalesce(events.user_id, '')
        and changed_records.email_key = coalesce(events.email, '')
        and changed_records.phone_key = coalesce(events.phone, '')
),

{#- An event both new and of a changed record comes twice: once is enough. #}
scoped_events as (
    select * from (
        select events.*, row_number() over (partition by event_id order by occurred_at) as copy_rank
        from events
    ) numbered
    where copy_rank = 1
),
{% else %}
scoped_events as (
    select * from {{ ref('stg_events') }}
),
{% endif %}

final as (
    select
        record_profiles.profile_id,
        events.event_id,
        events.event_type,
        events.occurred_at,
        events.session_id,
        events.product_id,
        events.cart_id,
        events.order_id,
        events.value,
        events.email,
        events.phone,
        events.properties,
        record_profiles.changed_at as record_changed_at,
        {#- When this row was written: the run's start (per-profile models read the rows written
            by the current run through it). #}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as attributed_at
    from scoped_events as events
    {#- Incremental: a left join, so that events whose record lost its profile are written (null
        profile_id) over their stored rows and then removed by the post-hook. #}
    {% if is_incremental() %}left {% endif %}{{ lifeline.join_record_profiles('events.anonymous_id', 'events.user_id', 'events.email', 'events.phone') }}
    {% if not is_incremental() %}where record_profiles.profile_id is not null{% endif %}
)

select * from final
