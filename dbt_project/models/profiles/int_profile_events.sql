{#- Behavioural events with the profile that did them.

    An event's profile is its record's (int_record_profiles: the identifier combination it was
    seen with). An event whose combination is not stitched yet (the identity models have not run
    since it arrived: a landing run builds the behavioural path only, see
    orchestration/automation.py) is resolved the way int_record_profiles resolves a record,
    through its first identifier in identity_map (user_id, email, phone, anonymous_id), so a
    known person's new event reaches the trigger audiences at once; when identity next runs, the
    record gets its row in int_record_profiles and the event is re-attributed with it. After a
    full identity build every record is stitched, so that fallback finds nothing the record
    lookup did not: the results equal a full refresh.

    Incremental (delete+insert on event_id; rows whose event lost its profile are written with a
    null profile_id and removed by the post-hook, which looks only at the rows this run wrote:
    attributed_at = the run's start, so on DuckDB the zone maps skip every older row group instead
    of reading profile_id of every stored row). A run re-attributes only:
      - stg_events rows staged after the newest staged_at stored here (new, late of any age, a
        duplicate that now wins): a filter on stg_events.staged_at instead of comparing every row;
      - the events of records whose profile changed since the last run (int_record_profiles rows
        with changed_at after the newest record_changed_at stored here: merges, splits);
      - the events stored without a record (resolved through the fallback) whose record exists now;
    and drops the stored rows whose stg_events row may be gone (macros/incremental_attribution.sql:
    the rows after the newest occurred_at of the stg_events rows it has seen, or every row when
    stg_events was reprocessed or refreshed since; no comparison of every stored event_id).
    The event_ids of the rows a run drops or removes (both ways) go to the side table
    int_profile_events__removed first (only the last run's are kept; a marker when every row is
    dropped or rebuilt), so that int_profile_last_product looks up only those. -#}
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.profile_events_post_hook() }}"
) }}
{%- set reattribute_all = lifeline.drop_unstaged_rows(ref('stg_events'), 'int_profile_events', log_removed=true) %}
{#- The events' records, read directly where two joins use them (a CTE read twice is
    materialised: every record of every event at 5M people). #}
{%- set record_profiles -%}
    (select * from {{ ref('int_record_profiles') }} where source_table = 'events')
{%- endset %}
with
{% if is_incremental() and not reattribute_all %}
{%- set scoped_records, unstitched_source = 'scoped_records', 'scoped_events' %}
{#- The events of records whose profile changed, in two parts that together are exactly the
    events matching a changed record on all four keys: those whose anonymous_id is one of the
    changed records' (a record's anonymous_id_key is coalesce(anonymous_id, '')), and those
    without one. The IN filter lets DuckDB push the changed records' few anonymous_ids into the
    scan of stg_events, so only matching events are read with all their columns (1M people: 10k
    of 22.7M rows; a join alone read every row's columns, ~5 s of CPU). The changed records are a
    subquery, not a CTE: a CTE read three times is materialised and then nothing is pushed down. #}
{%- set changed_records -%}
    (select * from {{ ref('int_record_profiles') }}
     where source_table = 'events'
       and changed_at > (select coalesce(max(record_changed_at), cast('1900-01-01' as {{ dbt.type_timestamp() }})) from {{ this }}))
{%- endset %}
events as (
    select events.*
    from {{ ref('stg_events') }} as events
    where events.staged_at > (select coalesce(max(staged_at), cast('1900-01-01' as {{ dbt.type_timestamp() }})) from {{ this }})
    {%- for anonymous_filter in ['events.anonymous_id in (select anonymous_id_key from ' ~ changed_records ~ ' as changed_anonymous_ids)',
                                 'events.anonymous_id is null'] %}
    union all
    select events.*
    from {{ ref('stg_events') }} as events
    join {{ changed_records }} as changed_records
        on changed_records.anonymous_id_key = coalesce(events.anonymous_id, '')
        and changed_records.user_id_key = coalesce(events.user_id, '')
        and changed_records.email_key = coalesce(events.email, '')
        and changed_records.phone_key = coalesce(events.phone, '')
    where {{ anonymous_filter }}
    {%- endfor %}
    union all
    select events.*
    from {{ ref('stg_events') }} as events
    join {{ this }} as stored on stored.event_id = events.event_id
    where stored.record_changed_at is null
),

{#- An event in two of those sets comes twice: once is enough. Materialised (a few rows per
    run): record_profiles below reads only the records of these events' anonymous_ids. #}
scoped_events as materialized (
    select * from (
        select events.*, row_number() over (partition by event_id order by occurred_at) as copy_rank
        from events
    ) numbered
    where copy_rank = 1
),

{#- The records of those events (a semi-join on one key, so that the join below builds its hash
    table over them, not over every record: DuckDB cannot tell how few events there are). #}
scoped_records as (
    select * from {{ record_profiles }} as record_profiles
    where anonymous_id_key in (select coalesce(anonymous_id, '') from scoped_events)
),
{% else %}
scoped_events as (
    select * from {{ ref('stg_events') }}
),
{%- set scoped_records, unstitched_source = record_profiles, ref('stg_events') %}
{% endif %}

{#- The events whose record has no profile (not stitched yet), with their identifiers only, and
    the profile the fallback gives them: the four identity_map joins see these few narrow rows,
    not every event with its properties. On a full build they come from a second, narrow scan of
    stg_events (not scoped_events: a CTE read twice is materialised, and materialising every event
    with its properties spilled ~35 GB at 5M people); on an incremental run from the small
    materialised scoped_events. #}
unstitched_events as (
    select events.event_id, events.anonymous_id, events.user_id, events.email, events.phone
    from {{ unstitched_source }} as events
    left {{ lifeline.join_record_profiles('events.anonymous_id', 'events.user_id', 'events.email', 'events.phone', scoped_records) }}
    where record_profiles.profile_id is null
),

unstitched_profiles as (
    select
        events.event_id,
        {{ lifeline.resolved_profile_id() }} as unstitched_profile_id
    from unstitched_events as events
    {{ lifeline.join_identity_map('events', ref('identity_map')) }}
),

{#- Every event once, with its record's profile and, when that is missing, the fallback's: two
    joins for the wide rows. #}
with_profiles as (
    select
        events.*,
        record_profiles.profile_id as record_profile_id,
        record_profiles.changed_at as record_changed_at,
        unstitched_profiles.unstitched_profile_id
    from scoped_events as events
    left {{ lifeline.join_record_profiles('events.anonymous_id', 'events.user_id', 'events.email', 'events.phone', scoped_records) }}
    left join unstitched_profiles on unstitched_profiles.event_id = events.event_id
),

final as (
    select
        coalesce(events.record_profile_id, events.unstitched_profile_id) as profile_id,
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
        events.record_changed_at,
        events.staged_at,
        {#- When this row was written: the run's start (per-profile models read the rows written
            by the current run through it). #}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as attributed_at
    from with_profiles as events
    {#- Incremental: events that lost their profile are written (null profile_id) over their
        stored rows and then removed by the post-hook. #}
    {% if not is_incremental() %}where coalesce(events.record_profile_id, events.unstitched_profile_id) is not null{% endif %}
)

select * from final
