{#- Message events with the profile they concern: by the recipient's email, else phone, in
    identity_map, else the external_id we sent.

    Incremental (delete+insert on message_key). A run resolves only:
      - the stg_message_events rows staged after the newest staged_at stored here (new,
        re-ranked, re-staged): a filter on staged_at, not a comparison of every row;
      - the rows whose recipient email or phone changed, appeared or vanished in identity_map
        since the last run (merges, splits, an identifier that became shared, an unresolved
        recipient who became known): identity_map's list of changes (identity_map__changes,
        macros/message_events_identity.sql, identity_map_changes_since), as int_record_profiles
        reads it, not every stored row resolved again;
    and drops the stored rows whose stg_message_events row may be gone (macros/incremental_attribution.sql).
    When the list does not cover every identity_map run since the last run (identity_map rebuilt
    in full or run twice, a side table missing: logged) it resolves the distinct stored recipients
    again and retries the rows without a profile at an earlier run (their message_keys are kept
    in <this>__unresolved by the post-hook). Rows without a profile are written (a full build
    too, so that they are recorded) and removed by the post-hook, which also records the run in
    <this>__last_run. Only rows this run wrote can lack a profile (attributed_at = the run's start:
    on DuckDB the zone maps skip every older row group instead of reading every profile_id). -#}
{{ config(
    materialized='incremental',
    unique_key='message_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook=["{{ lifeline.remember_unresolved('message_key', 'profile_id', 'attributed_at') }}",
               "{{ lifeline.record_profiles_post_hook() }}",
               "delete from {{ this }} where attributed_at = {{ lifeline.run_stamp() }} and profile_id is null"]
) }}
{%- set reattribute_all = lifeline.drop_unstaged_rows(ref('stg_message_events'), 'int_profile_message_events') %}
{%- set map_changes_since = none if reattribute_all else lifeline.identity_map_changes_since(ref('identity_map'), 'int_profile_message_events', ['email', 'phone']) %}
with identity_map as (
    select identifier_type, identifier_value, profile_id from {{ ref('identity_map') }}
    where identifier_type in ('email', 'phone')
),

{% if is_incremental() and not reattribute_all %}
{% if map_changes_since is not none %}
{#- The email and phone identifiers whose profile_id changed, appeared or vanished in identity_map
    since the last run. #}
changed_identifiers as (
    select identifier_type, identifier_value from {{ lifeline.identity_side_relation(ref('identity_map'), '__changes') }}
    where identifier_type in ('email', 'phone')
),

{% else %}
{#- No list of identity_map's changes since the last run: every stored recipient is resolved again. #}
stored_recipients as (
    select distinct recipient_email, recipient_phone, external_id, profile_id
    from {{ this }}
),

changed_recipients as (
    select stored.recipient_email, stored.recipient_phone, stored.external_id
    from stored_recipients as stored
    left join identity_map as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = stored.recipient_email
    left join identity_map as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = stored.recipient_phone
    where coalesce(by_email.profile_id, by_phone.profile_id, stored.external_id) is null
       or coalesce(by_email.profile_id, by_phone.profile_id, stored.external_id) <> stored.profile_id
),
{% endif %}

messages as (
    select messages.*
    from {{ ref('stg_message_events') }} as messages
    where messages.staged_at > (select coalesce(max(staged_at), cast('1900-01-01' as {{ dbt.type_timestamp() }})) from {{ this }})
    union
    {% if map_changes_since is not none -%}
    {#- Rows whose recipient's email or phone row changed, appeared (an unresolved recipient who
        became known) or vanished. #}
    {#- One branch per column (the union drops a row found by both): `email in (...) or phone in
        (...)` is a disjunction the scan cannot apply, so every column of every staged row would be
        read and tested, while each IN alone is pushed into the scan of its column. #}
    select messages.*
    from {{ ref('stg_message_events') }} as messages
    where messages.recipient_email in (select identifier_value from changed_identifiers where identifier_type = 'email')
    union
    select messages.*
    from {{ ref('stg_message_events') }} as messages
    where messages.recipient_phone in (select identifier_value from changed_identifiers where identifier_type = 'phone')
    {%- else -%}
    select messages.*
    from {{ lifeline.unresolved_keys('message_key', ref('stg_message_events')) }} as unresolved
    join {{ ref('stg_message_events') }} as messages on messages.message_key = unresolved.message_key
    where messages.recipient_email in (select identifier_value from identity_map where identifier_type = 'email')
       or messages.recipient_phone in (select identifier_value from identity_map where identifier_type = 'phone')
    union
    select messages.*
    from {{ ref('stg_message_events') }} as messages
    join changed_recipients
        on coalesce(changed_recipients.recipient_email, '') = coalesce(messages.recipient_email, '')
        and coalesce(changed_recipients.recipient_phone, '') = coalesce(messages.recipient_phone, '')
        and coalesce(changed_recipients.external_id, '') = coalesce(messages.external_id, '')
    {%- endif %}
),
{% else %}
messages as (
    select * from {{ ref('stg_message_events') }}
),
{% endif %}

final as (
    select
        coalesce(by_email.profile_id, by_phone.profile_id, messages.external_id) as profile_id,
        messages.message_key,
        messages.message_id,
        messages.channel,
        messages.event,
        messages.occurred_at,
        messages.campaign,
        messages.recipient_email,
        messages.recipient_phone,
        messages.external_id,
        messages.staged_at,
        {#- When this row was written: the run's start (the post-hook records the rows of this run
            that found no profile). #}
        {{ lifeline.run_stamp() }} as attributed_at
    from messages
    left join identity_map as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = messages.recipient_email
    left join identity_map as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = messages.recipient_phone
    {#- Rows without a profile are written (over their stored rows), recorded as unresolved and
        removed by the post-hook. #}
)

select * from final
