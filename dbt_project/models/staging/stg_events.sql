{#- Usable events up to as_of, one per event_id.

    Incremental (macros/incremental_events.sql): a run re-reads from base_events the usable rows
    in the window (max stored occurred_at - var event_lookback_days, or vars partition_start /
    partition_end) and delete+inserts them on event_id; a duplicate that now wins replaces the
    stored copy. Rows older than the window must be unchanged (counted), else every row is
    re-read; when as_of moves back, the post-hook deletes the rows after it. staged_at is the start
    of the run that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where occurred_at > {{ lifeline.as_of() }}"
) }}
{%- set usable -%}
(select * from {{ ref('base_events') }} where drop_reason is null and occurred_at <= {{ lifeline.as_of() }})
{%- endset -%}
{%- set checked_relation = lifeline.incremental_slice(usable, 'stg_events_slice', 'source.event_id', 'event_id',
        'source.occurred_at', 'stg_events', one_row_per_key=true) %}
with checked as (
    select * from {{ checked_relation }} as usable
),

final as (
    select
        event_id,
        event_type,
        occurred_at,
        anonymous_id,
        user_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        session_id,
        product_id,
        cart_id,
        order_id,
        value,
        properties,
        {#- When this row was (re)written: the run's start. Downstream incremental models read the
            rows staged since their last run through it (int_profile_events). #}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as staged_at
    from checked
)

select * from final
