{#- Usable message events up to as_of, one per (message_id, event, occurred_at) = message_key.
    Incremental like stg_events (macros/incremental_events.sql, staged_slice): delete+insert on
    message_key of the usable base_message_events rows based since the last run, after the newest
    stored occurred_at, or in a partition run's window. -#}
{{ config(
    materialized='incremental',
    unique_key='message_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where occurred_at > {{ lifeline.as_of() }}"
) }}
{%- set usable -%}
(select * from {{ ref('base_message_events') }} where drop_reason is null and occurred_at <= {{ lifeline.as_of() }})
{%- endset -%}
{%- set checked_relation = lifeline.staged_slice(usable, 'stg_message_events_slice', 'message_key',
        'stg_message_events') %}
with checked as (
    select * from {{ checked_relation }} as usable
),

final as (
    select
        message_key,
        message_id,
        channel,
        event,
        occurred_at,
        recipient_email,
        recipient_phone,
        campaign,
        external_id,
        {#- When this row was (re)written: the run's start. int_profile_message_events resolves the
            rows staged since its last run through it. #}
        {{ lifeline.run_stamp() }} as staged_at
    from checked
)

select * from final
